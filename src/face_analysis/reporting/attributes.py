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
# a coarser attribute made from the age groups: children and teenagers, adults, elders
LIFE_STAGES: tuple[str, ...] = ("0-19", "20-59", "60+")
LIFE_STAGE_OF_GROUP = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])  # the life stage of each of the nine age groups
# the attributes each attribute's correction is stratified by (report's joint classes, then summed over them):
# the model's race errors differ between children, adults and elders; chosen on the validation part of FairFace
# (benchmarks/audit.py --unstratified compares). Gender is corrected unstratified: on FairFace's validation
# halves its errors by race or by life stage moved the estimate less than their own calibration errors did
# (docs/report.md), so they widen its interval instead (SPANNED_BY)
STRATA: dict[str, tuple[str, ...]] = {"race": ("life_stage",)}
# the other corrections (method, strata) whose intervals an attribute's default interval also spans: where they
# disagree, the calibration set does not settle which errors a collection's faces have (gender: the errors by
# race, which one community's faces have, and by life stage, which children's faces have; age groups: counted
# against corrected, which differ on a collection of one life stage); chosen on FairFace's validation halves
# (docs/report.md)
SPANNED_BY: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "gender": (("acc", ("race",)), ("acc", ("life_stage",))), "age_group": (("emq_bcts", ()),)}


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


def derived(probs: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None, name: str):
    """(probabilities, labels or None) of an attribute or of the life stage (made from the age groups), or
    None when they are not at hand."""
    if name in probs:
        return probs[name], None if labels is None else labels[name]
    if name != "life_stage" or "age_group" not in probs:
        return None
    stage_probs = np.zeros((len(probs["age_group"]), len(LIFE_STAGES)), np.float64)
    np.add.at(stage_probs.T, LIFE_STAGE_OF_GROUP, np.asarray(probs["age_group"], np.float64).T)
    if labels is None:
        return stage_probs, None
    groups = labels["age_group"]
    return stage_probs, np.where(groups >= 0, LIFE_STAGE_OF_GROUP[np.clip(groups, 0, 8)], -1).astype(np.int8)
