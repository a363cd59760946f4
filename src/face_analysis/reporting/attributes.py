"""The three attributes a report covers, their classes, where results carry their probabilities, and the
age-group probabilities computed from the model's age distribution."""
from __future__ import annotations

import numpy as np

from face_analysis.errors import FaceAnalysisError
from face_analysis.labels import AGE_BUCKETS, AGE_GROUP_INTERVALS, GENDERS, MAX_AGE, RACES

# attribute -> its classes, in the order of the model's outputs (age groups: FairFace's nine, "70+" last)
ATTRIBUTES: dict[str, tuple[str, ...]] = {"race": RACES, "gender": GENDERS, "age_group": AGE_BUCKETS}
# the field of a `run --json` face that holds each attribute's probabilities (a dict class -> probability);
# gender is also read from "gender" and "gender_probability" (the probability of the predicted gender)
PROBABILITY_FIELDS = {"race": "race_probabilities", "gender": "gender_probabilities",
                      "age_group": "age_group_probabilities"}
# the first and last whole year of each group (labels.AGE_GROUP_INTERVALS names the last one "more than 70")
GROUP_YEARS = dict(zip(AGE_BUCKETS, AGE_GROUP_INTERVALS.values()))
MODEL_FIELD = "model"  # the model type a result was made with (JSON/Parquet: per image; CSV: a column)


class ReportError(FaceAnalysisError):
    """A results file or a calibration cannot be used for a report; the message names it, in one line."""


def csv_column(attribute: str, name: str) -> str:
    """The CSV column of one class's probability: "race_probabilities.white", "age_group_probabilities.0-2"
    (the names pandas.json_normalize gives the JSON fields)."""
    return f"{PROBABILITY_FIELDS[attribute]}.{name}"


CSV_PROBABILITY_COLUMNS = [csv_column(a, name) for a, names in ATTRIBUTES.items() for name in names]


def _group_matrix() -> np.ndarray:
    """(MAX_AGE + 1, 9): 1 where an age (whole years) falls in a group."""
    matrix = np.zeros((MAX_AGE + 1, len(AGE_BUCKETS)))
    for column, (low, high) in enumerate(GROUP_YEARS.values()):
        matrix[low:min(high, MAX_AGE) + 1, column] = 1
    return matrix


AGE_TO_GROUP = _group_matrix()


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


def group_of_age(age: float) -> int:
    """The index of the group a (true) age in years falls in."""
    return int(np.searchsorted([high for _, high in GROUP_YEARS.values()], np.floor(age), side="left"))
