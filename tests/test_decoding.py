"""Photos decoded for detection: at the size the detector needs (a JPEG scaled while it is decoded), upright
whatever their EXIF orientation, with boxes in the upright photo's full-size pixels."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.io import images as image_io

STORED = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, 1), 8: lambda a: np.rot90(a, -1)}


def jpeg(rgb: np.ndarray, orientation: int = 1, quality: int = 95) -> bytes:
    """A JPEG whose stored pixels, turned by its EXIF orientation tag, are `rgb` (as a phone writes a portrait)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(STORED[orientation](rgb))).save(buffer, "JPEG", quality=quality,
                                                                         exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def portrait(astronaut_jpg) -> np.ndarray:
    """A 900x1400 upright portrait photo holding the astronaut's face twice, at two sizes."""
    face = cv2.imread(str(astronaut_jpg))[..., ::-1]
    photo = np.full((1400, 900, 3), 110, np.uint8)
    photo[100:612, 50:562] = face
    photo[800:1100, 500:800] = cv2.resize(face, (300, 300), interpolation=cv2.INTER_AREA)
    return photo


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer("normal")


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_photo_stored_sideways_gives_the_faces_of_the_upright_photo(analyzer, portrait, orientation):
    upright = image_io.decode_for_detection(jpeg(portrait), "upright.jpg", analyzer.detect_size)
    turned = image_io.decode_for_detection(jpeg(portrait, orientation), "turned.jpg", analyzer.detect_size)
    assert (turned.width, turned.height) == (upright.width, upright.height) == (900, 1400)
    expected = analyzer.finish([analyzer.prepare(upright)])[0]
    got = analyzer.finish([analyzer.prepare(turned)])[0]
    assert len(expected) == len(got) == 2
    for a, b in zip(expected, got):
        assert np.abs(np.subtract(a.box, b.box)).max() <= 4  # the same place in the upright photo
        # the JPEG blocks of a turned photo fall elsewhere: the pixels differ a little, the predictions too
        assert a.gender == b.gender and a.race == b.race and abs(a.age - b.age) <= a.age_std / 2


def test_a_large_jpeg_is_decoded_at_the_size_the_detector_needs(portrait):
    data = jpeg(cv2.resize(portrait, (1800, 2800)), 6)
    decoded = image_io.decode_for_detection(data, "big.jpg", 640)
    assert decoded.reduction == 4 and (decoded.width, decoded.height) == (1800, 2800)
    assert decoded.pixels.shape[:2] == (700, 450)  # upright, a quarter of each side
    assert image_io.decode_for_detection(data, "big.jpg", 1280).reduction == 2
    assert image_io.decode_for_detection(data, "big.jpg", None).reduction == 1  # --detect_size 0: full size
    assert decoded.full().shape[:2] == (2800, 1800) and decoded.reduction == 1


def test_png_and_small_jpegs_are_decoded_at_full_size(portrait):
    png = cv2.imencode(".png", portrait[..., ::-1])[1].tobytes()
    for data in (png, jpeg(portrait)):
        decoded = image_io.decode_for_detection(data, "photo", 1280)
        assert decoded.reduction == 1 and decoded.pixels.shape[:2] == (1400, 900)


def test_faces_of_a_reduced_decode_are_those_of_the_full_photo(analyzer, portrait):
    """Boxes found in the reduced pixels come back in the full photo's pixels; faces too small there for the
    model's crop are cropped from the photo decoded at full size."""
    big = cv2.resize(portrait, (1800, 2800), interpolation=cv2.INTER_CUBIC)
    data = jpeg(big)
    reduced = analyzer.prepare(image_io.decode_for_detection(data, "big.jpg", analyzer.detect_size))
    full = analyzer.prepare(image_io.decode_image(data, "big.jpg"))
    assert (reduced.width, reduced.height) == (full.width, full.height) == (1800, 2800)
    assert len(reduced.detections) == len(full.detections) == 2
    for a, b in zip(reduced.detections, full.detections):
        assert np.abs(np.subtract(a.box, b.box)).max() <= 0.05 * b.box[3]
    assert reduced.crops.shape == full.crops.shape


def test_upscale_finds_a_small_face_that_the_photo_s_own_size_misses(astronaut_jpg):
    """--upscale enlarges a photo smaller than --detect_size for the detector: a face of about 10 px on a busy
    background is found, and its box comes back in the photo's own pixels."""
    face = cv2.imread(str(astronaut_jpg))[..., ::-1]
    photo = cv2.GaussianBlur(cv2.resize(face, (640, 480)), (0, 0), 3)  # a busy background
    photo[200:256, 300:356] = cv2.resize(face, (56, 56), interpolation=cv2.INTER_AREA)  # its face: about 10 px
    photo = cv2.imdecode(cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])[1], 1)[..., ::-1]

    def small_faces(upscale):
        prepared = FaceAnalyzer("normal", min_face=0, upscale=upscale).prepare(np.ascontiguousarray(photo))
        return [d.box for d in prepared.detections if 300 <= d.box[0] + d.box[2] / 2 <= 356]

    assert small_faces(1) == []
    [(x, y, w, h)] = small_faces(2)
    assert 200 <= y + h / 2 <= 256 and 6 <= max(w, h) <= 20
