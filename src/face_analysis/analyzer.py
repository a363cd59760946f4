"""The library's entry point: find faces and predict age, gender and race, returning plain dataclasses."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face_analysis.detection import crop as face_crop
from face_analysis.detection import detectors as face_detection
from face_analysis.detection.detectors import DEFAULT_DETECT_SIZE, Detection
from face_analysis.io import images as image_io
from face_analysis.labels import DEFAULT_PRECISION, GENDERS, RACES
from face_analysis.models import compiled as lite_model
from face_analysis.models import store as model_store
from face_analysis.results import FacePrediction, age_group_probabilities, age_mean_std, face_size

DEFAULT_MIN_FACE = 32  # faces smaller than this (longest box side, px) get no predictions (benchmarks/face_size.py)


def too_small_face(detection: Detection) -> FacePrediction:
    """A face found but not analysed: box and score only."""
    box = [int(v) for v in detection.box]
    return FacePrediction(box, None, None, None, None, None, None, detection.score, face_size(box), too_small=True)


def predictions_from_outputs(outputs: dict, detections: list[Detection]) -> list[FacePrediction]:
    """Turn the model's softmax outputs for a batch of faces into FacePredictions."""
    age_dist, gender_p, race_p = (np.asarray(outputs[k], np.float64) for k in ("age", "gender", "race"))
    faces = []
    for i, detection in enumerate(detections):
        mean, std = age_mean_std(age_dist[i])
        g, r = int(gender_p[i].argmax()), int(race_p[i].argmax())
        box = [int(v) for v in detection.box]
        faces.append(FacePrediction(
            box=box, age=round(mean, 1), age_std=round(std, 1), gender=GENDERS[g],
            gender_probability=round(float(gender_p[i, g]), 4), race=RACES[r],
            race_probabilities={name: round(float(p), 4) for name, p in zip(RACES, race_p[i])},
            detection_score=detection.score, face_size=face_size(box),
            age_group_probabilities=age_group_probabilities(age_dist[i])))
    return faces


@dataclass
class PreparedImage:
    """An image after detection and cropping, before the model: what `FaceAnalyzer.finish` completes."""

    width: int
    height: int
    detections: list[Detection]
    analysable: list[bool]  # per detection: large enough to analyse
    crops: np.ndarray | None  # model-sized crops of the analysable faces, in order


class FaceAnalyzer:
    """Loads a saved model (a TFLite file run by OpenVINO: no TensorFlow import) and a detector once; analyses
    images or single frames.

    model_type: "facenet" or "normal"; None reads it from `model_path` (default: facenet).
    detect_size: the longest side, in pixels, that stills are downscaled to before detection (None: full size).
    min_face: faces whose box is smaller than this many pixels are reported without predictions.
    threads: threads for the model and OpenCV (default: the cores this process may use).
    tta: average each face's outputs with those of its mirror image (twice the time; README: what it gains).
    precision: "int8" (the model's quantized file, the default) or "float32"."""

    def __init__(self, model_type: str | None = None, model_path: str | Path | None = None,
                 detector: str = "yunet", detect_size: int | None = DEFAULT_DETECT_SIZE,
                 min_face: int = DEFAULT_MIN_FACE, threads: int | None = None, tta: bool = False,
                 precision: str = DEFAULT_PRECISION):
        directory = self.model_dir = model_store.resolve_model_dir(model_type, model_path)
        self.threads = threads or lite_model.available_cores()
        cv2.setNumThreads(self.threads)
        self.model, self.info = lite_model.load_lite_model(directory, model_type, self.threads, precision)
        self.model_type = self.info["model_type"]
        self.input_size = int(self.info["input_size"])
        self.detector_name, self.detect_size, self.min_face, self.tta = detector, detect_size, min_face, tta
        self._per_thread = threading.local()
        self._model_lock = threading.Lock()  # one interpreter, shared by the threads of a video run
        self._per_thread.detector = face_detection.make_detector(detector, detect_size)

    @property
    def detector(self):
        """This thread's detector (OpenCV detectors are not shared between threads)."""
        if not hasattr(self._per_thread, "detector"):
            self._per_thread.detector = face_detection.make_detector(self.detector_name, self.detect_size)
        return self._per_thread.detector

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """Detect the faces of an RGB image and crop the ones large enough to analyse (thread-safe)."""
        detections = self.detector.detect(image)
        analysable = [self.detector.boxes_are_chips or face_size(d.box) >= self.min_face for d in detections]
        boxes = [d.box for d, ok in zip(detections, analysable) if ok]
        return PreparedImage(int(image.shape[1]), int(image.shape[0]), detections, analysable,
                             self.crops(image, boxes) if boxes else None)

    def finish(self, prepared: list[PreparedImage]) -> list[list[FacePrediction]]:
        """The faces of each prepared image, the crops of all of them going through the model together."""
        crops = [p.crops for p in prepared if p.crops is not None]
        outputs = self.predict_crops(np.concatenate(crops)) if crops else None
        start, results = 0, []
        for p in prepared:
            count = sum(p.analysable)
            part = {k: v[start:start + count] for k, v in outputs.items()} if count else None
            start += count
            analysed = iter(predictions_from_outputs(part, [d for d, ok in zip(p.detections, p.analysable) if ok])
                            if count else [])
            results.append([next(analysed) if ok else too_small_face(d) for d, ok in zip(p.detections, p.analysable)])
        return results

    def crops(self, image: np.ndarray, boxes) -> np.ndarray:
        """The model-sized crops of the given boxes, as a (N, S, S, 3) uint8 array."""
        size = self.input_size
        if self.detector.boxes_are_chips:
            return np.stack([face_crop.whole_image(image[y:y + h, x:x + w], size) for x, y, w, h in boxes])
        crop, widen = self.detector.chip_crop, self.info["crop_widen"]  # the model's crop
        return np.stack([face_crop.crop_face(image, box, size, crop["scale"] * widen, crop["shift_y"])
                         for box in boxes])

    def predict_crops(self, crops: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Softmax outputs ("age", "gender", "race") for a batch of model-sized RGB crops."""
        outputs = {"age": [], "gender": [], "race": []}
        for start in range(0, len(crops), batch_size):
            batch = np.asarray(crops[start:start + batch_size], np.float32)
            count = len(batch)
            if self.tta:
                batch = np.concatenate([batch, batch[:, :, ::-1]])
            with self._model_lock:
                result = self.model(batch)
            for key in outputs:
                values = np.asarray(result[key])
                outputs[key].append((values[:count] + values[count:]) / 2 if self.tta else values)
        return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outputs.items()}

    def analyze(self, image, bgr: bool = False) -> list[FacePrediction]:
        """Every face of an image with its predictions (an empty list when there is none).

        image: a file path, a PIL image, or a NumPy array of RGB pixels (H, W, 3) uint8; `bgr=True` for
        OpenCV's BGR order. Grayscale, alpha and 16-bit arrays are converted."""
        return self.finish([self.prepare(image_io.as_rgb(image, bgr))])[0]
