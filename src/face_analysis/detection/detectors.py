"""Face detectors behind one interface: detect(rgb image) -> list of Detection (box (x, y, w, h), score)."""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import threading
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from face_analysis import paths

DEFAULT_DETECT_SIZE = 1280  # stills: the longest side the detector sees (benchmarks/detectors.py chose it)
MIN_SEARCH_SIDE = 24  # an image (after downscaling) thinner than this holds no face a detector can find


class Detection(NamedTuple):
    """One face found: its box (x, y, w, h) in the image's pixels and the detector's confidence in 0..1
    (None for detectors that give none: Haar, and `none`)."""

    box: tuple[int, int, int, int]
    score: float | None = None


def downscaled(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray | None, float]:
    """(image shrunk so its longer side is at most max_side, the scale used); (None, scale) when the result
    would be too thin to search (an image of extreme aspect ratio)."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width)) if max_side else 1.0
    size = (int(round(width * scale)), int(round(height * scale)))
    if min(size) < MIN_SEARCH_SIDE:
        return None, scale
    if scale < 1.0:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def largest_first(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: -d.box[2] * d.box[3])


class HaarDetector:
    """OpenCV's Haar cascade, run on a grey frame downscaled to at most `max_side`, with a scale step of 1.2 and a
    minimum face size relative to the frame (benchmarks/detectors.py: on the annotated scenes this finds 38 of
    43 faces in a third of the time of the original project's full-frame 1.05 step, which found 39)."""

    name = "haar"
    boxes_are_chips = False
    # on UTKFace chips a Haar box is about as wide as the chip and sits a little high
    chip_crop = {"scale": 0.98, "shift_y": 0.088}

    def __init__(self, xml_path: Path = paths.HAAR_XML, scale_factor: float = 1.2, min_neighbors: int = 3,
                 max_side: int | None = 640, min_face_fraction: float = 0.03):
        self.cascade = cv2.CascadeClassifier(str(xml_path))
        if self.cascade.empty():
            raise RuntimeError(f"{xml_path}: cannot load the Haar cascade")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.max_side, self.min_face_fraction = max_side, min_face_fraction

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face found, largest first, in the image's own pixel coordinates."""
        gray, scale = downscaled(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image,
                                 self.max_side)
        if gray is None:
            return []
        min_side = max(20, int(self.min_face_fraction * min(gray.shape)))
        faces = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(min_side, min_side))
        return largest_first([Detection(tuple(int(round(v / scale)) for v in face)) for face in faces])


class WholeImageDetector:
    """No detection: the whole image is one face that is already cropped like a UTKFace chip."""

    name = "none"
    boxes_are_chips = True
    chip_crop = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection((0, 0, int(image.shape[1]), int(image.shape[0])))]


_LIBRARY_LOCK = threading.Lock()  # detectors are made in several threads; the environment is process-wide


@functools.cache
def _load_libfacedetection():
    """The libfacedetection library inside the `yuface` wheel, loaded once, with its OpenMP runtime on one
    thread: several threads per frame only wait on each other on a small CPU (40 ms against 10 ms a 320x240
    frame on 2 busy cores). The setting is read once, when the library loads.

    yuface's own binding (`yuface.c_detect`) allocates a 36 KB result buffer on every call and never frees
    it, so the library is called here through ctypes with a buffer that the caller owns and reuses."""
    with _LIBRARY_LOCK:
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            spec = importlib.util.find_spec("yuface")  # the package's files, without importing its binding
            if spec is None or not spec.submodule_search_locations:
                raise RuntimeError("the yuface package is not installed: pip install -r requirements.txt")
            library = ctypes.CDLL(str(Path(spec.submodule_search_locations[0]) / "libfacedetection.so.v0.0.3"))
        finally:
            if previous is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = previous
        detect = library._Z14facedetect_cnnPhS_iii  # int *facedetect_cnn(uchar *result, uchar *bgr, w, h, step)
        detect.restype = ctypes.POINTER(ctypes.c_int)
        detect.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        # the library sets up its filters on its first call, without a lock: make that call here, under ours
        blank, result = np.zeros((32, 32, 3), np.uint8), np.zeros(YuNetDetector._RESULT_BYTES, np.uint8)
        detect(result.ctypes.data, blank.ctypes.data, 32, 32, 96)
    return detect


class YuNetDetector:
    """YuNet (libfacedetection, BSD licence; the weights are compiled into the `yuface` wheel), run on a frame
    downscaled to at most `max_side` pixels. One instance is not to be shared between threads."""

    name = "yunet"
    boxes_are_chips = False
    # YuNet boxes are taller than wide and reach above the forehead: a chip is 0.93 of the height, lower down
    chip_crop = {"scale": 0.93, "shift_y": 0.114}
    _RESULT_BYTES = 0x9000  # libfacedetection's result buffer: a face count, then 16 int16 per face

    def __init__(self, confidence: float = 0.6, max_side: int | None = 640):
        self._detect, self.confidence, self.max_side = _load_libfacedetection(), confidence, max_side
        self._result = np.zeros(self._RESULT_BYTES, np.uint8)

    def _faces(self, bgr: np.ndarray) -> np.ndarray:
        """(confidence in %, x, y, w, h) of each face the library finds in a BGR image."""
        bgr = np.ascontiguousarray(bgr)
        found = self._detect(self._result.ctypes.data, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])
        count = found[0] if found else 0
        return np.frombuffer(self._result, np.int16, count=16 * count, offset=4).reshape(count, 16)[:, :5]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face found, largest first, in the image's own pixel coordinates."""
        small, scale = downscaled(image, self.max_side)
        if small is None:
            return []
        rows = self._faces(small[..., ::-1])  # the library wants BGR
        return largest_first([Detection(tuple(int(round(v / scale)) for v in row[1:5]), round(row[0] / 100, 2))
                              for row in rows if row[0] >= 100 * self.confidence])


DETECTORS = {"haar": HaarDetector, "yunet": YuNetDetector, "none": WholeImageDetector}


def make_detector(name: str, max_side: int | None = 640):
    """A detector by name ("yunet", "haar" or "none"); max_side: the longest side it downscales images to
    (None: full size)."""
    try:
        kind = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    return kind() if kind is WholeImageDetector else kind(max_side=max_side)
