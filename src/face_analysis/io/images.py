"""Reading images from disk into RGB uint8 arrays, with one clear error per unusable file."""
from __future__ import annotations

import glob
import logging
import os
import posixpath
import re
import stat
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from face_analysis.errors import ImageError
from face_analysis.io import remote

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm")
MAX_PIXELS = 40_000_000  # larger images are decoded at a reduced size (JPEG) or refused
MIN_SIDE = 8
MAX_FILE_BYTES = 512 * 1024 * 1024  # an image file larger than this is refused before reading
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
log = logging.getLogger(__name__)


def _header(data: bytes) -> tuple[str, int, int, int] | None:
    """(format, width, height, pages) from the file header without decoding pixels, when Pillow knows the format."""
    import io

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # only the header is read here; decode_image bounds the pixels itself
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format or "", image.size[0], image.size[1], int(getattr(image, "n_frames", 1) or 1)
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
    if header and header[0] == "TIFF" and header[3] > 1:
        log.warning("warning: %s: a TIFF of %d pages; only the first page is analysed", name, header[3])
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
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # IMREAD_COLOR gives 8-bit BGR whatever the file holds


def is_uri(path: str | Path) -> bool:
    """Whether a path is a URI that pyarrow's file systems read (s3://, gs://, hdfs://, file://...)."""
    return "://" in str(path)


def image_key(name: str, base: str | None = None) -> str:
    """What identifies an image however it is named: a local path made absolute against `base` (default: the
    current folder) with its links resolved; a URI with its scheme and host in lower case and its path
    normalised (file:// URIs as the local path they name)."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    name = str(name)
    if is_uri(name):
        parts = urlsplit(name)
        if parts.scheme.lower() != "file":
            path = posixpath.normpath(re.sub("/+", "/", parts.path)) if parts.path else ""
            return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))
        name = unquote(parts.path)
    try:
        return os.path.realpath(os.path.join(base or os.getcwd(), name))
    except (OSError, ValueError):
        return os.path.join(base or "", name)


def one_line(error: BaseException) -> str:
    """The last non-empty line of an error's message (OpenCV's span several)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def read_image_bytes(path: str | Path, timeout: float | None = remote.DEFAULT_TIMEOUT) -> bytes:
    """The bytes of an image file, refusing without opening it anything that is not a regular file (a FIFO would
    block, a device never ends) and anything over MAX_FILE_BYTES; raises ImageError naming the file and the reason.
    URIs (s3://...) are read through pyarrow's file systems, giving up after `timeout` seconds."""
    data = remote.read_uri_bytes(str(path), MAX_FILE_BYTES, timeout) if is_uri(path) else _read_local_bytes(path)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(path, f"file too large (more than {MAX_FILE_BYTES:,} bytes)")
    return data


def _read_local_bytes(path: str | Path) -> bytes:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(path, "is a folder")
        if not stat.S_ISREG(info.st_mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else
                    "a socket" if stat.S_ISSOCK(info.st_mode) else "a device or special file")
            raise ImageError(path, f"not a regular file ({kind})")
        if info.st_size > MAX_FILE_BYTES:
            raise ImageError(path, f"file too large ({info.st_size:,} bytes, at most {MAX_FILE_BYTES:,})")
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as error:
        raise ImageError(path, f"cannot read ({error.strerror or error})") from None
    return data


def load_image(path: str | Path, timeout: float | None = remote.DEFAULT_TIMEOUT) -> np.ndarray:
    """Read an image file as RGB uint8 (a URI: giving up after `timeout` seconds); raises ImageError naming the
    file and the reason."""
    data = read_image_bytes(path, timeout)
    try:
        return decode_image(data, str(path))
    except ImageError as error:
        if is_video_name(path) and error.reason.startswith("not an image"):
            raise ImageError(path, "a video, not an image: analyse it with --video") from None
        raise


def is_image_name(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def is_video_name(path: str | Path) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def natural_key(text: str) -> list:
    """Sort key putting "img2" before "img10": digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _folder_images(folder: Path) -> Iterator[str]:
    """The image files of a folder and its subfolders (folder links not followed), in natural order."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort(key=natural_key)
        for file in sorted(files, key=natural_key):
            if is_image_name(file):
                yield os.path.join(root, file)


def expand_inputs(inputs: Iterable[str]) -> Iterator[str | ImageError]:
    """Each input file, the images of each folder (recursively, natural order) and each glob's matches, in order.

    Inputs that match nothing or cannot be looked at come out as ImageError so the caller can report them and go on."""
    for item in inputs:
        if not str(item).strip():
            yield ImageError(repr(str(item)), "empty path")
            continue
        path = Path(item)
        try:
            if path.is_dir():
                found = False
                for file in _folder_images(path):
                    found = True
                    yield file
                if not found:
                    yield ImageError(item, "folder holds no images")
            elif path.exists() or path.is_symlink():
                yield str(path)
            elif glob.has_magic(str(item)):
                matches = sorted(glob.glob(str(item), recursive=True), key=natural_key)
                if not matches:
                    yield ImageError(item, "pattern matches no file")
                yield from (m for m in matches if not Path(m).is_dir())
            else:
                yield ImageError(item, "no such file or folder")
        except OSError as error:  # a name longer than the system allows, a folder that vanished...
            yield ImageError(item, f"cannot read ({error.strerror or error})")


def as_rgb(image, bgr: bool = False) -> np.ndarray:
    """An RGB uint8 array from a file path, a PIL image or a NumPy array (RGB, or BGR when `bgr`)."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)) or array.size == 0:
        raise ImageError("<array>", f"not an image array (shape {array.shape}); expected (height, width, 3)")
    if array.dtype == np.uint16:
        array = (array / 257).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2 or array.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(array.reshape(*array.shape[:2], 1), 3, axis=2))
    array = array[..., :3]
    return np.ascontiguousarray(array[..., ::-1] if bgr else array)

