"""Reading images from disk into RGB uint8 arrays, with one clear error per unusable file."""
from __future__ import annotations

import glob
import logging
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from face_analysis.errors import ImageError
from face_analysis.io import remote

# what cv2.imdecode reads (GIF and APNG: the first frame; .gif and .avif need OpenCV 4.11 or later); HEIC is not
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".webp", ".avif", ".gif",
                    ".tif", ".tiff", ".jp2", ".pbm", ".pgm", ".ppm", ".pnm", ".pam", ".pfm", ".hdr", ".sr", ".ras")
MAX_PIXELS = 40_000_000  # larger images are decoded at a reduced size (JPEG) or refused
MIN_SIDE = 8
MAX_FILE_BYTES = 512 * 1024 * 1024  # an image file larger than this is refused before reading
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")
log = logging.getLogger(__name__)


def _header(data: bytes) -> tuple[str, int, int, int, int] | None:
    """(format, width, height, pages, EXIF orientation) from the file header without decoding pixels, when Pillow
    knows the format."""
    import io

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # only the header is read here; decode_image bounds the pixels itself
    try:
        with Image.open(io.BytesIO(data)) as image:
            try:
                orientation = int(image.getexif().get(0x0112, 1)) if image.format == "JPEG" else 1
            except Exception:  # noqa: BLE001 - a damaged EXIF block: OpenCV then ignores it too
                orientation = 1
            return (image.format or "", image.size[0], image.size[1], int(getattr(image, "n_frames", 1) or 1),
                    orientation)
    except Exception:  # noqa: BLE001 - a header Pillow cannot parse is left to OpenCV to judge
        return None


def _reduced_flag(width: int, height: int) -> int:
    """OpenCV's flag decoding a JPEG at 1/2, 1/4 or 1/8 size so that it fits MAX_PIXELS."""
    for factor, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (8, cv2.IMREAD_REDUCED_COLOR_8)):
        if width * height / factor**2 <= MAX_PIXELS:
            return flag
    return cv2.IMREAD_REDUCED_COLOR_8


REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass
class DecodedImage:
    """An image decoded for detection: its RGB pixels, upright, at 1/`reduction` of its size (a JPEG scaled while
    it is decoded, which costs a fraction of the full decode), its full upright size, and what it takes to decode
    it at full size for the faces too small in the reduced pixels."""

    pixels: np.ndarray
    reduction: int
    width: int
    height: int
    data: bytes | None = None
    name: str = "<bytes>"

    def full(self) -> np.ndarray:
        """The pixels at full size (decoded now when this holds a reduced decode)."""
        if self.reduction > 1:
            self.pixels, self.reduction, self.data = decode_image(self.data, self.name), 1, None
        return self.pixels


def decode_for_detection(data: bytes, name: str = "<bytes>", detect_size: int | None = None) -> DecodedImage:
    """Decode image bytes as decode_image does, a JPEG at the smallest of 1/2, 1/4 and 1/8 of its size that still
    has `detect_size` pixels on its longer side (None: full size)."""
    header = _header(data) if detect_size and data[:2] == b"\xff\xd8" else None
    if not header or header[0] != "JPEG" or header[1] * header[2] > MAX_PIXELS:
        image = decode_image(data, name)
        return DecodedImage(image, 1, image.shape[1], image.shape[0])
    width, height = (header[2], header[1]) if header[4] in (5, 6, 7, 8) else (header[1], header[2])
    reduction = max(f for f in REDUCED_FLAGS if f == 1 or max(width, height) // f >= detect_size)
    image = decode_image(data, name, REDUCED_FLAGS[reduction], header)
    return DecodedImage(image, reduction, width, height, data if reduction > 1 else None, name)


def decode_image(data: bytes, name: str = "<bytes>", flags: int = cv2.IMREAD_COLOR, header=None) -> np.ndarray:
    """Decode image bytes to RGB uint8, applying EXIF orientation; grayscale, alpha, CMYK and 16-bit are converted.
    `flags`: OpenCV's, a JPEG's IMREAD_REDUCED_COLOR_* decoding it smaller; `header`: _header(data) when known.

    Memory stays bounded: huge JPEGs are decoded at a reduced size, other huge images are refused."""
    if not data:
        raise ImageError(name, "empty file")
    if data[:2] == b"\xff\xd8" and data.rstrip(b"\x00").rfind(b"\xff\xd9") < 0:
        raise ImageError(name, "truncated JPEG (no end-of-image marker)")
    header = header or _header(data)
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
    return load_for_detection(path, timeout).full()


def load_for_detection(path: str | Path, timeout: float | None = remote.DEFAULT_TIMEOUT,
                       detect_size: int | None = None) -> DecodedImage:
    """Read an image file as decode_for_detection does; raises ImageError naming the file and the reason."""
    data = read_image_bytes(path, timeout)
    try:
        return decode_for_detection(data, str(path), detect_size)
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


def _folder_images(folder: Path, skipped: list[str]) -> Iterator[str | ImageError]:
    """The files of a folder and its subfolders that the decoder reads, in natural order; a subfolder that cannot
    be read comes as its ImageError; what is left out (links to folders too) goes to `skipped` as "name (why)"."""
    stack = [os.fspath(folder)]
    while stack:
        current, subfolders = stack.pop(), []
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda entry: natural_key(entry.name))
        except OSError as error:  # the folder itself too: no permission, vanished...
            yield ImageError(current, "permission denied" if isinstance(error, PermissionError)
                             else f"cannot read ({error.strerror or error})")
            continue
        for entry in entries:
            try:
                is_folder = entry.is_dir()
            except OSError:  # a link that loops: the reader names it
                is_folder = False
            if is_folder and not entry.is_symlink():
                subfolders.append(entry.path)
            elif is_image_name(entry.name) and not is_folder and not entry.name.startswith("._"):
                yield entry.path
            else:
                why = ("a link to a folder, not followed" if is_folder else "macOS metadata" if entry.name[:2] == "._"
                       else "a video: use --video" if is_video_name(entry.name) else "not a format this tool reads")
                skipped.append(f"{os.path.relpath(entry.path, folder)}{'/' * is_folder} ({why})")
        stack.extend(reversed(subfolders))


def expand_inputs(inputs: Iterable[str]) -> Iterator[str | ImageError]:
    """Each input file, the images of each folder (recursively, natural order) and each glob's matches, in order.

    Inputs that match nothing or cannot be looked at come out as ImageError so the caller can report them and go
    on; the files a folder holds that are not read are counted and named in a warning."""
    for item in inputs:
        if not str(item).strip():
            yield ImageError(repr(str(item)), "empty path")
            continue
        path = Path(item)
        try:
            if path.is_dir():
                found, skipped = False, []
                for found in _folder_images(path, skipped):
                    yield found
                if skipped:
                    log.warning("warning: %s: %d file(s) skipped: %s%s", item, len(skipped), ", ".join(skipped[:5]),
                                f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
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
        except OSError as error:  # a name longer than the system allows, no permission, a folder that vanished...
            yield ImageError(item, "permission denied" if isinstance(error, PermissionError)
                             else f"cannot read ({error.strerror or error})")


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

