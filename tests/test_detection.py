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


def _tiny_faces(face_rgb: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A JPEG'd picture of this shape holding copies of the photo shrunk so that its face is about 10 px, 150 px
    apart, and where each copy starts."""
    small = cv2.resize(face_rgb, (47, 47), interpolation=cv2.INTER_AREA)
    picture, corners = np.full((*shape, 3), 120, np.uint8), []
    for top in range(40, shape[0] - 60, 150):
        for left in range(40, shape[1] - 60, 150):
            picture[top:top + 47, left:left + 47] = small
            corners.append((left, top))
    encoded = cv2.imencode(".jpg", picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy(), corners


@pytest.mark.parametrize("shape", [(480, 640), (1280, 1280)])
def test_the_closer_look_finds_the_small_faces_that_one_search_misses(astronaut_rgb, shape):
    """upscale "auto": where YuNet sees a small face, the photo is searched again enlarged (a square photo too,
    whose twice enlarged search would pass the pixels' cap), and the crowd's faces that one search misses are
    found, their boxes in the photo's own pixels, one to a face."""
    picture, corners = _tiny_faces(astronaut_rgb, shape)
    once = face_detection.make_detector("yunet", 1280, 1.0).detect(picture)
    closer = face_detection.make_detector("yunet", 1280, face_detection.AUTO_UPSCALE).detect(picture)
    assert len(once) <= len(corners) // 3
    assert len(closer) == len(corners)
    for left, top in corners:  # the face sits at about (20, 15)-(30, 27) of each 47 px copy
        [(_, _, w, h)] = [d.box for d in closer if left <= d.box[0] + d.box[2] / 2 <= left + 47
                          and top <= d.box[1] + d.box[3] / 2 <= top + 47]
        assert 5 <= max(w, h) <= 16


def test_an_upscale_other_than_auto_or_a_factor_is_refused():
    with pytest.raises(ValueError, match="give 'auto' or a factor"):
        face_detection.make_detector("yunet", 1280, "Auto")


def test_a_photo_without_small_faces_is_searched_once(astronaut_rgb, monkeypatch):
    """The closer look costs nothing where no small face is seen: one search, the same faces as without it."""
    detector = face_detection.make_detector("yunet", 1280, face_detection.AUTO_UPSCALE)
    searched = []
    search = detector._search
    monkeypatch.setattr(detector, "_search", lambda image, resized, threshold: searched.append(resized.shape)
                        or search(image, resized, threshold))
    found = detector.detect(astronaut_rgb)
    assert searched == [astronaut_rgb.shape]
    assert found == face_detection.make_detector("yunet", 1280, 1.0).detect(astronaut_rgb)


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
