"""The library's entry point: find faces and predict age, gender and race, returning plain dataclasses."""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import face_crop
import face_detection
import lite_model
import model_store
from labels import GENDERS, MAX_AGE, RACES

AGES = np.arange(MAX_AGE + 1, dtype=np.float64)


def age_mean_std(distribution) -> tuple[float, float]:
    """Mean and standard deviation in years of an age distribution over 0..MAX_AGE."""
    distribution = np.asarray(distribution, np.float64)
    mean = float(distribution @ AGES)
    return mean, float(np.sqrt(max(0.0, distribution @ (AGES - mean) ** 2)))


@dataclass
class FacePrediction:
    """One face: its box (x, y, w, h) in image pixels and what the model predicts for it."""

    box: list[int]
    age: float
    age_std: float
    gender: str
    gender_probability: float
    race: str
    race_probabilities: dict[str, float]
    track_id: int | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        if self.track_id is None:
            del data["track_id"]
        return data


@dataclass
class ImageResult:
    """Every face of one image, or the reason it could not be analysed."""

    image: str
    width: int = 0
    height: int = 0
    faces: list[FacePrediction] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        return {"image": self.image, "width": self.width, "height": self.height,
                "faces": [face.to_json() for face in self.faces], "error": self.error}


def predictions_from_outputs(outputs: dict, boxes) -> list[FacePrediction]:
    """Turn the model's softmax outputs for a batch of faces into FacePredictions."""
    age_dist, gender_p, race_p = (np.asarray(outputs[k], np.float64) for k in ("age", "gender", "race"))
    faces = []
    for i, box in enumerate(boxes):
        mean, std = age_mean_std(age_dist[i])
        g, r = int(gender_p[i].argmax()), int(race_p[i].argmax())
        faces.append(FacePrediction(
            box=[int(v) for v in box], age=round(mean, 1), age_std=round(std, 1), gender=GENDERS[g],
            gender_probability=round(float(gender_p[i, g]), 4), race=RACES[r],
            race_probabilities={name: round(float(p), 4) for name, p in zip(RACES, race_p[i])}))
    return faces


class FaceAnalyzer:
    """Loads a saved model (as TFLite, run by LiteRT: no TensorFlow import) and a detector once; analyses
    images or single frames."""

    def __init__(self, model_type: str = "facenet", model_path: str | Path | None = None, detector: str = "yunet"):
        directory = Path(model_path) if model_path else model_store.default_model_dir(model_type)
        self.model, self.info = lite_model.load_lite_model(directory, model_type)
        self.input_size = int(self.info["input_size"])
        self.detector_name = detector
        self._per_thread = threading.local()
        self._model_lock = threading.Lock()  # one interpreter, shared by the threads of a video run
        self._per_thread.detector = face_detection.make_detector(detector)

    @property
    def detector(self):
        """This thread's detector (OpenCV detectors are not shared between threads)."""
        if not hasattr(self._per_thread, "detector"):
            self._per_thread.detector = face_detection.make_detector(self.detector_name)
        return self._per_thread.detector

    def detect_and_crop(self, image: np.ndarray) -> tuple[list, np.ndarray | None]:
        """The boxes of every face and their model-sized crops (None when there is no face)."""
        boxes = self.detector.detect(image)
        return boxes, (self.crops(image, boxes) if boxes else None)

    def crops(self, image: np.ndarray, boxes) -> np.ndarray:
        """The model-sized crops of the given boxes, as a (N, S, S, 3) uint8 array."""
        size = self.input_size
        if self.detector.boxes_are_chips:
            return np.stack([face_crop.whole_image(image[y:y + h, x:x + w], size) for x, y, w, h in boxes])
        crop = self.detector.chip_crop
        return np.stack([face_crop.crop_face(image, box, size, crop["scale"], crop["shift_y"]) for box in boxes])

    def predict_crops(self, crops: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Softmax outputs ("age", "gender", "race") for a batch of model-sized RGB crops."""
        outputs = {"age": [], "gender": [], "race": []}
        for start in range(0, len(crops), batch_size):
            with self._model_lock:
                batch = self.model(np.asarray(crops[start:start + batch_size], np.float32))
            for key in outputs:
                outputs[key].append(np.asarray(batch[key]))
        return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outputs.items()}

    def analyze(self, image: np.ndarray) -> list[FacePrediction]:
        """Every face of an RGB image with its predictions (an empty list when there is none)."""
        boxes, crops = self.detect_and_crop(image)
        if not boxes:
            return []
        return predictions_from_outputs(self.predict_crops(crops), boxes)

    def analyze_image(self, image: np.ndarray, name: str) -> ImageResult:
        return ImageResult(name, int(image.shape[1]), int(image.shape[0]), self.analyze(image))
