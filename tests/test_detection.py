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


def test_yunet_finds_the_faces_of_a_crowd_in_the_image_s_coordinates(crowd_jpg):
    """Boxes come back in the image's own pixels, whatever size the network saw: the same faces at full size
    and downscaled to 640, none outside the image, and no two left on top of each other (suppression)."""
    image = cv2.imread(str(crowd_jpg))[..., ::-1].copy()
    full = face_detection.make_detector("yunet", None).detect(image)
    small = face_detection.make_detector("yunet", 640).detect(image)
    assert len(full) >= 50 and len(small) >= 20
    height, width = image.shape[:2]
    for x, y, w, h in (d.box for d in full):
        assert -w / 2 <= x <= width - w / 2 and -h / 2 <= y <= height - h / 2 and w > 0 and h > 0
    large = [d.box for d in small if d.box[3] >= 60]
    for box in large:  # a large face found at 640 is found at full size too, at the same place
        assert max(iou(box, other.box) for other in full) >= 0.6
    overlapping = [(a, b) for i, a in enumerate(full) for b in full[i + 1:] if iou(a.box, b.box) > 0.45]
    assert overlapping == []


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / float(aw * ah + bw * bh - inter)


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="reads the resident size from /proc")
def test_yunet_memory_stays_bounded_over_many_image_sizes(astronaut_rgb):
    """The network runs on inputs of any size; OpenVINO keeps what it prepares for each size in a bounded
    cache, so a folder of photos of a thousand sizes does not grow the process by a thousand plans."""
    def resident_mb():
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20

    detector = face_detection.YuNetDetector(max_side=None)
    for i in range(60):
        detector.detect(cv2.resize(astronaut_rgb, (96 + 32 * (i % 20), 96 + 32 * (i // 3))))
    before = resident_mb()
    for i in range(200):  # 200 sizes never seen, then the same again
        detector.detect(cv2.resize(astronaut_rgb, (1000 - 2 * i, 120 + 2 * i)))
    grown = resident_mb() - before
    for i in range(200):
        detector.detect(cv2.resize(astronaut_rgb, (1000 - 2 * i, 120 + 2 * i)))
    assert grown < 150 and resident_mb() - before < grown + 10
