"""The shapes every engine, writer, tracker and HTTP route share: one face's predictions, one image's faces.

Imports nothing from the package but `labels`, so that none of them needs the analyser for a type."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from face_analysis.labels import MAX_AGE

AGES = np.arange(MAX_AGE + 1, dtype=np.float64)


def age_mean_std(distribution) -> tuple[float, float]:
    """Mean and standard deviation in years of an age distribution over 0..MAX_AGE."""
    distribution = np.asarray(distribution, np.float64)
    mean = float(distribution @ AGES)
    return mean, float(np.sqrt(max(0.0, distribution @ (AGES - mean) ** 2)))


@dataclass
class FacePrediction:
    """One face: its box (x, y, w, h) in image pixels, how the detector found it, and what the model predicts.

    A face smaller than the analyser's `min_face` is reported (`too_small`) without predictions: the models
    cannot tell much from so few pixels, and confident-looking labels there would mislead."""

    box: list[int]
    age: float | None
    age_std: float | None
    gender: str | None
    gender_probability: float | None
    race: str | None
    race_probabilities: dict[str, float] | None
    detection_score: float | None = None
    face_size: int = 0  # the longer side of the box, in pixels
    too_small: bool = False
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

    @classmethod
    def from_json(cls, data: dict) -> ImageResult:
        """The result `to_json` gave (as read back from a --json or --parquet output)."""
        faces = [FacePrediction(**face) for face in data.get("faces") or []]
        return cls(data["image"], data.get("width") or 0, data.get("height") or 0, faces, data.get("error"))

    def to_json(self) -> dict:
        return {"image": self.image, "width": self.width, "height": self.height,
                "faces": [face.to_json() for face in self.faces], "error": self.error}


def face_size(box) -> int:
    return int(max(box[2], box[3]))
