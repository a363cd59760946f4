"""Random bytes and random image headers fed to the image decoder: only the clean ImageError comes out."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from face_analysis.io import images as image_io

HEADERS = [b"", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a", b"BM",
           b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n", b"\x00\x00\x00\x0cjP  "]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=2048), tail=st.sampled_from([b"", b"\xff\xd9"]))
def test_decoder_raises_only_image_error(header, body, tail):
    try:
        image = image_io.decode_image(header + body + tail, "fuzz")
    except image_io.ImageError as error:
        assert str(error).startswith("fuzz: ")
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(1, 40000), height=st.integers(1, 40000), fmt=st.sampled_from([".png", ".jpg", ".bmp"]))
def test_any_image_dimensions_decode_and_detect_or_fail_cleanly(width, height, fmt):
    """Real images of any shape (within a pixel budget) and headers claiming any size: decoded and searched
    for faces by both detectors, or refused with an ImageError; never an OpenCV assertion."""
    import cv2

    from face_analysis.detection import detectors as face_detection

    if width * height <= 4_000_000:
        ok, encoded = cv2.imencode(fmt, np.full((height, width, 3), 100, np.uint8))
        assert ok
        data = encoded.tobytes()
    else:
        from test_bad_inputs import png_claiming

        data = png_claiming(width, height)
    try:
        image = image_io.decode_image(data, "fuzz")
    except image_io.ImageError as error:
        assert str(error).startswith("fuzz: ")
        return
    for name in ("yunet", "haar"):
        for max_side in (640, 320, None):
            assert isinstance(face_detection.make_detector(name, max_side).detect(image), list)


def test_special_files_are_refused_without_blocking(tmp_path):
    import os
    import socket

    os.mkfifo(tmp_path / "fifo.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket.jpg"))
    try:
        for path in (tmp_path / "fifo.jpg", tmp_path / "socket.jpg", "/dev/zero", "/dev/null", "/dev/urandom"):
            try:
                image_io.load_image(path)
            except image_io.ImageError as error:
                assert "not a regular file" in error.reason, (path, error)
            else:
                raise AssertionError(f"{path} was read")
        try:
            image_io.load_image(tmp_path)
        except image_io.ImageError as error:
            assert error.reason == "is a folder"
    finally:
        server.close()
