"""The shapes every engine, writer, tracker and HTTP route share: one face's predictions, one image's faces.

Imports nothing from the package but `labels`, so that none of them needs the analyser for a type."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from face_analysis.labels import AGE_BUCKETS, AGE_GROUP_INTERVALS, MAX_AGE

AGES = np.arange(MAX_AGE + 1, dtype=np.float64)
# the first and last whole year of each of the nine age groups (labels.AGE_GROUP_INTERVALS names the last "70+")
GROUP_YEARS = dict(zip(AGE_BUCKETS, AGE_GROUP_INTERVALS.values()))


def _group_matrix() -> np.ndarray:
    """(MAX_AGE + 1, 9): 1 where an age (whole years) falls in a group."""
    matrix = np.zeros((MAX_AGE + 1, len(AGE_BUCKETS)))
    for column, (low, high) in enumerate(GROUP_YEARS.values()):
        matrix[low:min(high, MAX_AGE) + 1, column] = 1
    return matrix


AGE_TO_GROUP = _group_matrix()


def age_mean_std(distribution) -> tuple[float, float]:
    """Mean and standard deviation in years of an age distribution over 0..MAX_AGE."""
    distribution = np.asarray(distribution, np.float64)
    mean = float(distribution @ AGES)
    return mean, float(np.sqrt(max(0.0, distribution @ (AGES - mean) ** 2)))


def age_group_matrix(age_probs) -> np.ndarray:
    """The nine age groups' probabilities of each row of age distributions, (N, MAX_AGE + 1) -> (N, 9)."""
    age_probs = np.asarray(age_probs, np.float64)
    if age_probs.shape[-1] != MAX_AGE + 1:
        raise ValueError(f"an age distribution has {MAX_AGE + 1} values (0..{MAX_AGE}), not {age_probs.shape[-1]}")
    return age_probs @ AGE_TO_GROUP


def age_group_probabilities(age_probs, decimals: int | None = 4) -> dict[str, float]:
    """The probability of each of the nine age groups ("0-2", ..., "70+") from one face's age distribution
    (the model's softmax over ages 0..116): the sum over the group's years, rounded like run's other
    probabilities (decimals=None: not rounded)."""
    groups = age_group_matrix(np.asarray(age_probs, np.float64).reshape(-1))
    return {name: float(p if decimals is None else round(float(p), decimals)) for name, p in zip(AGE_BUCKETS, groups)}


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
    # the nine age groups ("0-2", ..., "70+") from the age distribution: what `report` corrects and counts
    age_group_probabilities: dict[str, float] | None = None
    # `run --people`: the same number is the same person within one run's results (None: not counted, or no
    # --people); it means nothing outside those results
    person: int | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("track_id", "person"):
            if data[key] is None:
                del data[key]
        return data


@dataclass
class ImageResult:
    """Every face of one image, or the reason it could not be analysed."""

    image: str
    width: int = 0
    height: int = 0
    faces: list[FacePrediction] = field(default_factory=list)
    error: str | None = None
    model: str | None = None  # the model type that analysed it ("facenet", "normal"): `report` needs it

    @classmethod
    def from_json(cls, data: dict) -> ImageResult:
        """The result `to_json` gave (as read back from a --json or --parquet output, older ones too)."""
        faces = [FacePrediction(**face) for face in data.get("faces") or []]
        return cls(data["image"], data.get("width") or 0, data.get("height") or 0, faces, data.get("error"),
                   data.get("model"))

    def to_json(self) -> dict:
        return {"image": self.image, "model": self.model, "width": self.width, "height": self.height,
                "faces": [face.to_json() for face in self.faces], "error": self.error}


def face_size(box) -> int:
    return int(max(box[2], box[3]))
