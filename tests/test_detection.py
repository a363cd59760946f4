"""The detectors on a real photo, and YuNet's memory use over many calls."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from face_analysis.detection import detectors as face_detection


@pytest.fixture(scope="module")
def astronaut_rgb(astronaut_jpg):
    return cv2.imread(str(astronaut_jpg))[..., ::-1].copy()


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_detector_finds_the_astronaut_face(name, astronaut_rgb):
    detections = face_detection.make_detector(name).detect(astronaut_rgb)
    assert len(detections) == 1
    x, y, w, h = detections[0].box
    assert 140 <= x + w / 2 <= 260 and 40 <= y + h / 2 <= 160 and 60 <= w <= 160  # the face, not the suit
    score = detections[0].score
    assert score is None if name == "haar" else 0.6 <= score <= 1


@pytest.mark.parametrize("name", ["yunet", "haar"])
@pytest.mark.parametrize("shape", [(20, 30000), (30000, 20), (3, 5000), (24, 24)])
def test_detectors_take_images_of_any_shape(name, shape):
    """Extreme aspect ratios once made OpenCV's resize assert (`!dsize.empty()`)."""
    image = np.full((*shape, 3), 128, np.uint8)
    for max_side in (None, 640, 320):
        assert face_detection.make_detector(name, max_side).detect(image) == []


def test_yunet_reads_the_library_result_like_yuface(astronaut_rgb):
    """The ctypes call decodes the same faces as the yuface binding (called once here: it leaks)."""
    import yuface

    bgr = np.ascontiguousarray(astronaut_rgb[..., ::-1])
    expected = yuface.c_detect(bgr)[:, :5]
    got = face_detection.YuNetDetector()._faces(bgr)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="reads the resident size from /proc")
def test_yunet_memory_stays_flat_over_many_calls(astronaut_rgb):
    """yuface's own binding leaked 36 KB a call (400 calls: 14 MB); the detector must not grow."""
    def resident_mb():
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

    detector = face_detection.YuNetDetector()
    small = cv2.resize(astronaut_rgb, (160, 160))
    for _ in range(50):
        detector.detect(small)
    before = resident_mb()
    for _ in range(400):
        detector.detect(small)
    assert resident_mb() - before < 4
