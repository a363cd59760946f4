"""Random bytes and random image headers fed to the image decoder: only the clean ImageError comes out."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import image_io

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
