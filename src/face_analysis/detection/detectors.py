"""Face detectors behind one interface: detect(rgb image) -> list of Detection (box (x, y, w, h), score)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from face_analysis import paths

DEFAULT_DETECT_SIZE = 1280  # stills: the longest side the detector sees (benchmarks/detectors.py chose it)

RETRY_SCALE = 0.75  # YuNet: an image where no face is found is searched again at this scale (FairFace photos)
MIN_SEARCH_SIDE = 24  # an image (after downscaling) thinner than this holds no face a detector can find
# YuNet's closer look (run's default --upscale "auto"): where the network sees a small face (a box under
# CLOSER_LOOK_BELOW px in the pixels searched, scored at least CLOSER_LOOK_HINT), a crowd's smaller faces are likely
# beside it, which it finds only enlarged: the image is searched again at twice the size, at most CLOSER_LOOKS times
# and CLOSER_LOOK_PIXELS a search (less enlarged where twice would pass it, but at least CLOSER_LOOK_LEAST times: a
# square photo's look), and the faces under 4 x CLOSER_LOOK_BELOW px found there are kept (an enlarged
# photo's large blurred shapes are no faces). Chosen on FairFace's validation photos shrunk into crowds and the
# photos of benchmarks/photo_speed.py (docs/run.md, "Crowds and small faces")
CLOSER_LOOK_BELOW, CLOSER_LOOK_HINT, CLOSER_LOOKS, CLOSER_LOOK_PIXELS, CLOSER_LOOK_LEAST = 32, 0.3, 2, 5_000_000, 1.4
AUTO_UPSCALE = "auto"  # run's default --upscale: no enlargement but the closer look


class Detection(NamedTuple):
    """One face found: its box (x, y, w, h) in the image's pixels and the detector's confidence in 0..1
    (None for detectors that give none: Haar, and `none`)."""

    box: tuple[int, int, int, int]
    score: float | None = None


def resized(image: np.ndarray, scale: float) -> np.ndarray | None:
    """The image resized by `scale` (area averaging to shrink, bilinear to enlarge); None when the result would be
    too thin to search (an image of extreme aspect ratio)."""
    height, width = image.shape[:2]
    size = (int(round(width * scale)), int(round(height * scale)))
    if min(size) < MIN_SEARCH_SIDE:
        return None
    if scale == 1.0:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)


def downscaled(image: np.ndarray, max_side: int | None, max_upscale: float = 1.0) -> tuple[np.ndarray | None, float]:
    """(image resized so its longer side is max_side: shrunk, or enlarged by at most `max_upscale`; the scale
    used); (None, scale) when the result would be too thin to search."""
    scale = min(max_upscale, max_side / max(image.shape[:2])) if max_side else 1.0
    return resized(image, scale), scale


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


@functools.cache
def _compiled_yunet(path: Path = paths.YUNET_ONNX):
    """YuNet's network compiled once per process by OpenVINO for this CPU, for inputs of any size; each thread
    makes its own request on one inference thread (the pipeline runs a detector per core)."""
    import openvino

    config = {"INFERENCE_NUM_THREADS": 1, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
              "CPU_RUNTIME_CACHE_CAPACITY": 16}
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    names = [next(n for n in output.get_names() if n[:3] in ("cls", "obj", "bbo", "kps")) for output in compiled.outputs]
    return compiled, names


class YuNetDetector:
    """YuNet (Wu, Peng and Yu, 2023; the authors' ONNX network yunet_n, Apache-2.0, shipped in resources/) run by
    OpenVINO on a frame downscaled to at most `max_side` pixels, decoded as its authors do: an anchor-free box per
    cell of the stride 8, 16 and 32 grids, scored sqrt(class x objectness), then non-maximum suppression.
    One instance is not to be shared between threads."""

    name = "yunet"
    boxes_are_chips = False
    # YuNet boxes are taller than wide and reach above the forehead: a chip is 0.947 of the height, lower
    # down (the crop of the libfacedetection boxes the models learned from, benchmarks/detector_agreement.py)
    chip_crop = {"scale": 0.947, "shift_y": 0.128}
    STRIDES = (8, 16, 32)
    NMS_THRESHOLD = 0.45  # as libfacedetection, which ran YuNet before

    def __init__(self, confidence: float = 0.6, max_side: int | None = 640, max_upscale: float = 1.0,
                 closer_look: bool = False):
        compiled, self._names = _compiled_yunet()
        self._request, self.confidence, self.max_side = compiled.create_infer_request(), confidence, max_side
        self.max_upscale = max_upscale  # small images are enlarged up to this much toward max_side
        self.closer_look = closer_look  # search again enlarged where small faces are seen (_closer_looks)

    def _faces(self, bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (x, y, w, h) as floats, scores) of the faces the network finds in a BGR image scored at least
        `threshold`, before suppression."""
        height, width = bgr.shape[:2]
        padded_h, padded_w = -(-height // 32) * 32, -(-width // 32) * 32
        blob = np.zeros((1, 3, padded_h, padded_w), np.float32)
        blob[0, :, :height, :width] = bgr.transpose(2, 0, 1)
        outputs = dict(zip(self._names, self._request.infer({0: blob}).values()))
        boxes, scores = [], []
        for stride in self.STRIDES:
            score = np.sqrt(np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1) *
                            np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1))
            cells = np.flatnonzero(score >= threshold)
            rows, cols = np.divmod(cells, padded_w // stride)
            box = outputs[f"bbox_{stride}"][0, cells]
            size = np.exp(box[:, 2:4]) * stride
            centre = (np.stack([cols, rows], 1) + box[:, :2]) * stride
            boxes.append(np.concatenate([centre - size / 2, size], 1))
            scores.append(score[cells])
        return np.concatenate(boxes), np.concatenate(scores)

    def _search(self, image: np.ndarray, resized_image: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """The faces found in the image resized, their boxes in the image's own pixels."""
        boxes, scores = self._faces(resized_image[..., ::-1], threshold)  # the network learned from BGR
        sx, sy = resized_image.shape[1] / image.shape[1], resized_image.shape[0] / image.shape[0]
        return boxes / np.array([sx, sy, sx, sy]), scores

    def _closer_looks(self, image: np.ndarray, scale: float, boxes: np.ndarray,
                      threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """The closer look's searches (boxes, scores) after one at `scale` found these boxes: while a small face
        was seen, the image searched at twice the scale (less where that passes CLOSER_LOOK_PIXELS, but at least
        CLOSER_LOOK_LEAST times), keeping the faces that are small there."""
        looks = []
        for _ in range(CLOSER_LOOKS):
            if not (boxes[:, 2:].max(1, initial=0) * scale < CLOSER_LOOK_BELOW).any():
                break
            closer = min(2 * scale, np.sqrt(CLOSER_LOOK_PIXELS / (image.shape[0] * image.shape[1])))
            if closer < CLOSER_LOOK_LEAST * scale:  # the pixels' cap leaves too little enlargement to find more
                break
            scale = closer
            boxes, scores = self._search(image, resized(image, scale), threshold)
            small = boxes[:, 2:].max(1, initial=0) * scale < 4 * CLOSER_LOOK_BELOW
            boxes, scores = boxes[small], scores[small]
            looks.append((boxes, scores))
        return looks

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face found, largest first, in the image's own pixel coordinates: searched at the size max_side
        asks for, and at full size too when that was an enlargement (a face that fills a small photo is missed
        enlarged); with closer_look, where a small face is seen there, at twice and four times that size too (a
        crowd; _closer_looks); a photo where none is found is searched again at RETRY_SCALE (such a face is
        often missed at one scale and found at another)."""
        small, scale = downscaled(image, self.max_side, self.max_upscale)
        if small is None:
            return []
        threshold = min(self.confidence, CLOSER_LOOK_HINT) if self.closer_look else self.confidence
        found = [self._search(image, small, threshold)] + ([self._search(image, image, threshold)] if scale > 1 else [])
        closer = self._closer_looks(image, scale, found[0][0], threshold) if self.closer_look else []
        boxes, scores = (np.concatenate(parts) for parts in zip(*found, *closer))
        boxes, scores = boxes[scores >= self.confidence], scores[scores >= self.confidence]
        retry = resized(image, min(scale, 1) * RETRY_SCALE) if not len(boxes) else None
        if retry is not None:
            boxes, scores = self._search(image, retry, self.confidence)
        keep = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.confidence, self.NMS_THRESHOLD),
                          int).reshape(-1)
        if closer:  # a small face's box from one scale can hold its box from another, too unlike for the IoU
            keep = _outside_each_other(boxes, keep)
        return largest_first([Detection(tuple(int(round(v)) for v in box), round(float(score), 2))
                              for box, score in zip(boxes[keep], scores[keep])])


def _outside_each_other(boxes: np.ndarray, order: np.ndarray, inside: float = 0.6) -> np.ndarray:
    """The indices of `order` (best first) whose box does not lie, by `inside` of the smaller box's area, within
    a better one's or around it."""
    corners, areas = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1), boxes[:, 2] * boxes[:, 3]
    kept: list[int] = []
    for i in order:
        sides = np.minimum(corners[kept, 2:], corners[i, 2:]) - np.maximum(corners[kept, :2], corners[i, :2])
        if not (np.clip(sides, 0, None).prod(1) >= inside * np.minimum(areas[kept], areas[i])).any():
            kept.append(i)
    return np.asarray(kept, int)


DETECTORS = {"haar": HaarDetector, "yunet": YuNetDetector, "none": WholeImageDetector}


def make_detector(name: str, max_side: int | None = 640, max_upscale: float | str = 1.0):
    """A detector by name ("yunet", "haar" or "none"); max_side: the longest side it resizes images to (None:
    full size); max_upscale (YuNet): how much it may enlarge a smaller image toward max_side, to find small faces,
    or AUTO_UPSCALE: not at all, but the closer look where small faces are found (YuNetDetector.detect)."""
    try:
        kind = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    if kind is WholeImageDetector:
        return kind()
    auto = max_upscale == AUTO_UPSCALE
    if isinstance(max_upscale, str) and not auto:
        raise ValueError(f"upscale {max_upscale!r}: give {AUTO_UPSCALE!r} or a factor from 1 to 4")
    options = {"max_upscale": 1.0 if auto else max_upscale, "closer_look": auto} if kind is YuNetDetector else {}
    return kind(max_side=max_side, **options)
