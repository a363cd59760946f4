"""Reading images from disk into RGB uint8 arrays, with one clear error per unusable file."""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm")
MAX_PIXELS = 40_000_000  # larger images are decoded at a reduced size (JPEG) or refused
MIN_SIDE = 8


class ImageError(RuntimeError):
    """An input image cannot be used; the message names the file and the reason."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def _header(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) from the file header without decoding pixels, when Pillow knows the format."""
    import io

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # only the header is read here; decode_image bounds the pixels itself
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format or "", image.size[0], image.size[1]
    except Exception:  # noqa: BLE001 - a header Pillow cannot parse is left to OpenCV to judge
        return None


def _reduced_flag(width: int, height: int) -> int:
    """OpenCV's flag decoding a JPEG at 1/2, 1/4 or 1/8 size so that it fits MAX_PIXELS."""
    for factor, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (8, cv2.IMREAD_REDUCED_COLOR_8)):
        if width * height / factor**2 <= MAX_PIXELS:
            return flag
    return cv2.IMREAD_REDUCED_COLOR_8


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode image bytes to RGB uint8, applying EXIF orientation; grayscale, alpha, CMYK and 16-bit are converted.

    Memory stays bounded: huge JPEGs are decoded at a reduced size, other huge images are refused."""
    if not data:
        raise ImageError(name, "empty file")
    if data[:2] == b"\xff\xd8" and data.rstrip(b"\x00").rfind(b"\xff\xd9") < 0:
        raise ImageError(name, "truncated JPEG (no end-of-image marker)")
    header = _header(data)
    flags = cv2.IMREAD_COLOR
    if header and header[1] * header[2] > MAX_PIXELS:
        if header[0] != "JPEG" or header[1] * header[2] > 64 * 4 * MAX_PIXELS:
            raise ImageError(name, f"image too large ({header[1]}x{header[2]} pixels, at most {MAX_PIXELS:,})")
        flags = _reduced_flag(header[1], header[2])
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as error:
        if "validateInputImageSize" in str(error):
            raise ImageError(name, "image too large (its header claims more pixels than OpenCV accepts)") from None
        raise ImageError(name, f"cannot decode ({str(error).strip().splitlines()[-1]})") from None
    if image is None or image.size == 0:
        raise ImageError(name, "not an image or a damaged one")
    if image.shape[0] * image.shape[1] > 4 * MAX_PIXELS:
        raise ImageError(name, f"image too large ({image.shape[1]}x{image.shape[0]} pixels)")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ImageError(name, f"image too small ({image.shape[1]}x{image.shape[0]} pixels)")
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8; raises ImageError naming the file and the reason."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as error:
        raise ImageError(path, f"cannot read ({error.strerror or error})") from None
    return decode_image(data, str(path))


def is_image_name(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def expand_inputs(inputs: Iterable[str]) -> Iterator[str | ImageError]:
    """Each input file, the images of each folder (recursively, sorted) and each glob's matches, in order.

    Inputs that match nothing come out as ImageError so the caller can report them and go on."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = False
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for file in sorted(files):
                    if is_image_name(file):
                        found = True
                        yield os.path.join(root, file)
            if not found:
                yield ImageError(item, "folder holds no images")
        elif path.exists() or path.is_symlink():
            yield str(path)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                yield ImageError(item, "pattern matches no file")
            yield from (m for m in matches if not Path(m).is_dir())
        else:
            yield ImageError(item, "no such file or folder")
