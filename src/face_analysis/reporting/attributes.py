"""The three attributes a report covers, their classes and where results carry their probabilities (the
age-group probabilities themselves are computed in face_analysis.results, where `run` makes them)."""
from __future__ import annotations

import numpy as np

from face_analysis.errors import FaceAnalysisError
from face_analysis.labels import AGE_BUCKETS, GENDERS, RACES
from face_analysis.results import GROUP_YEARS, age_group_matrix, age_group_probabilities  # noqa: F401 (re-exported)

# attribute -> its classes, in the order of the model's outputs (age groups: FairFace's nine, "70+" last)
ATTRIBUTES: dict[str, tuple[str, ...]] = {"race": RACES, "gender": GENDERS, "age_group": AGE_BUCKETS}
# the field of a `run --json` face that holds each attribute's probabilities (a dict class -> probability);
# gender is also read from "gender" and "gender_probability" (the probability of the predicted gender)
PROBABILITY_FIELDS = {"race": "race_probabilities", "gender": "gender_probabilities",
                      "age_group": "age_group_probabilities"}
MODEL_FIELD = "model"  # the model type a result was made with (JSON/Parquet: per image; CSV: a column)


class ReportError(FaceAnalysisError):
    """A results file or a calibration cannot be used for a report; the message names it, in one line."""


def csv_column(attribute: str, name: str) -> str:
    """The CSV column of one class's probability: "race_probabilities.white", "age_group_probabilities.0-2"
    (the names pandas.json_normalize gives the JSON fields)."""
    return f"{PROBABILITY_FIELDS[attribute]}.{name}"


CSV_PROBABILITY_COLUMNS = [csv_column(a, name) for a, names in ATTRIBUTES.items() for name in names]


def group_of_age(age: float) -> int:
    """The index of the group a (true) age in years falls in."""
    return int(np.searchsorted([high for _, high in GROUP_YEARS.values()], np.floor(age), side="left"))
