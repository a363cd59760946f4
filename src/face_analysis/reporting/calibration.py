"""The calibration set a model ships with: the model's probabilities for held-out faces (the validation parts
of its training sources) and their true labels, what every correction method of `quantify` is fitted on.

Stored as <model folder>/calibration.npz: per attribute the probability vectors (float16) and the true class
indices (int8, -1 where a face has no label for it), and a JSON "info" entry (model type, classes, counts).
Keeping the predictions rather than a fitted quantifier lets `report` choose the method and resample the set
for its intervals; 4,000 faces take about 130 kB."""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_analysis.labels import AGE_GROUP_INTERVALS
from face_analysis.reporting.attributes import ATTRIBUTES, ReportError, csv_column, derived, group_of_age

FILE_NAME = "calibration.npz"
FORMAT_VERSION = 1
MIN_FACES = 500  # fewest held-out faces labelled for each attribute that `calibrate` stores without --force


@dataclass
class Calibration:
    """Held-out faces: per attribute (m, classes) probabilities and (m,) true class indices (-1: unknown)."""

    model_type: str | None
    probs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.labels.values())))

    def arrays(self, attributes: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The probabilities (float64) and labels of the faces labelled for every one of `attributes` (the
        life stage too, made from the age groups)."""
        pairs = [derived(self.probs, self.labels, a) for a in attributes]
        missing = [a for a, pair in zip(attributes, pairs) if pair is None]
        if missing:
            raise ReportError(f"the calibration set has no {' and '.join(missing)}")
        known = np.logical_and.reduce([labels >= 0 for _, labels in pairs])
        if not known.any():
            raise ReportError(f"the calibration set has no face labelled for {' and '.join(attributes)}")
        return ([probs[known].astype(np.float64) for probs, _ in pairs],
                [labels[known].astype(np.int64) for _, labels in pairs])


def _label_indices(frame, attribute: str) -> np.ndarray:
    """True class indices of a labelled frame's column (names or indices; age groups also from ages, where a
    row has no group: UTKFace's rows beside FairFace's in evaluate's predictions.csv)."""
    import pandas as pd

    names = ATTRIBUTES[attribute]
    from_years = None
    if attribute == "age_group" and ("age_lo" in frame or "age" in frame):
        ages = frame["age_lo"] if "age_lo" in frame else frame["age"]
        ages = pd.to_numeric(ages, errors="coerce").to_numpy(np.float64)
        from_years = np.array([group_of_age(a) if a == a else -1 for a in ages], np.int8)
    if attribute == "age_group" and "age_group" not in frame:
        return from_years
    aliases = {name: i for i, name in enumerate(names)}
    if attribute == "age_group":
        aliases.update({name: i for i, name in enumerate(AGE_GROUP_INTERVALS)})  # FairFace's "more than 70"
    column = frame[attribute]

    def index(value) -> int:
        if isinstance(value, str):
            return aliases.get(value.strip(), aliases.get(value.strip().lower(), -1))
        if value is None or value != value:
            return -1
        return int(value) if 0 <= int(value) < len(names) else -1

    named = np.array([index(v) for v in column], np.int8)
    return named if from_years is None else np.where(named >= 0, named, from_years).astype(np.int8)


def labelled_arrays(frame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Probabilities and true class indices of a labelled prediction table.

    Columns: the true labels "race", "gender" (class names or indices, as labels.RACES and labels.GENDERS)
    and "age_group" (a group name, "more than 70" too) or "age_lo" / "age" (years); the probabilities as
    `run`'s CSV names them: "race_probabilities.white", ..., "gender_probabilities.male", ...,
    "age_group_probabilities.0-2", ... Rows with "found" false (no face detected) are left out; an attribute
    whose label or probability columns are missing is left out."""
    if "found" in frame:
        frame = frame[frame["found"].astype(bool)]
    probs, labels = {}, {}
    for attribute, names in ATTRIBUTES.items():
        columns = [csv_column(attribute, name) for name in names]
        has_label = attribute in frame or (attribute == "age_group" and ("age_lo" in frame or "age" in frame))
        if not has_label or not all(c in frame for c in columns):
            continue
        values = frame[columns].to_numpy(np.float64)
        y = _label_indices(frame, attribute)
        y[~np.isfinite(values).all(1)] = -1
        probs[attribute] = np.nan_to_num(values).astype(np.float32)
        labels[attribute] = y
    return probs, labels


def build_calibration(frame, model_type: str | None) -> Calibration:
    """The calibration of a model from a table of its held-out predictions (see labelled_arrays)."""
    if "found" in frame and not frame["found"].astype(bool).any():
        raise ReportError(f"no face found in any of the {len(frame)} held-out photo(s): nothing to calibrate with")
    probs, labels = labelled_arrays(frame)
    if not probs:
        raise ReportError("the held-out predictions have no probability columns with their true labels")
    for attribute, y in labels.items():
        if (y < 0).all():
            raise ReportError(f"the held-out predictions have no true {attribute}")
    return Calibration(model_type, probs, labels)


def labelled_faces(calibration: Calibration) -> int:
    """The number of faces labelled for the attribute with the fewest labels (what MIN_FACES counts)."""
    return min(int((labels >= 0).sum()) for labels in calibration.labels.values())


def stored_faces(model_dir: str | Path) -> int | None:
    """The number of faces of the calibration a model folder holds, or None when it holds none it can read."""
    try:
        return len(load_calibration(model_dir))
    except ReportError:
        return None


def check_size(calibration: Calibration, model_dir: Path, force: bool) -> str:
    """ReportError when a new calibration has fewer than MIN_FACES labelled faces and not force (the one stored
    is kept); else what storing it replaces, for the user ("" when nothing, or a warning when it is small)."""
    faces, earlier = labelled_faces(calibration), stored_faces(model_dir)
    kept = f"its calibration of {earlier:,} faces is kept" if earlier else "it has no calibration"
    if faces < MIN_FACES and not force:
        raise ReportError(f"{model_dir}: only {faces} held-out face(s) labelled in the data given (the validation "
                          f"part of the model's split); calibrate needs {MIN_FACES} for report's corrections to "
                          f"hold: {kept} (give the data the model was trained on, or --force to store these)")
    notes = [f"replaced the earlier calibration of {earlier:,} faces"] if earlier else []
    if faces < MIN_FACES:
        notes.append(f"warning: {faces} labelled face(s), fewer than the {MIN_FACES} report's corrections need")
    return "; ".join(notes)


def calibration_bytes(calibration: Calibration) -> bytes:
    """The .npz file's content."""
    info = {"format_version": FORMAT_VERSION, "model_type": calibration.model_type, "faces": len(calibration),
            "classes": {a: list(ATTRIBUTES[a]) for a in calibration.probs}}
    arrays = {"info": np.array(json.dumps(info))}
    for attribute in calibration.probs:
        arrays[f"{attribute}_probs"] = np.asarray(calibration.probs[attribute], np.float16)
        arrays[f"{attribute}_labels"] = np.asarray(calibration.labels[attribute], np.int8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_calibration(calibration: Calibration, model_dir: str | Path) -> Path:
    """Write model_dir/calibration.npz (atomically: a temporary file renamed); returns its path, for the
    model's manifest."""
    path = Path(model_dir) / FILE_NAME
    temporary = path.with_name(f".{FILE_NAME}.tmp")
    temporary.write_bytes(calibration_bytes(calibration))
    os.replace(temporary, path)
    return path


def load_calibration(path: str | Path) -> Calibration:
    """A calibration from a model folder (its calibration.npz) or the file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
        if not path.exists():
            raise ReportError(f"{path.parent}: the model has no {FILE_NAME} (trained before calibration was "
                              f"stored with models?); create it with `calibrate --model_path {path.parent} "
                              "--data_path DATA...` (the data it was trained on)")
    try:
        with np.load(path, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            probs, labels = {}, {}
            for attribute, names in info["classes"].items():
                if attribute not in ATTRIBUTES or list(ATTRIBUTES[attribute]) != names:
                    raise ReportError(f"{path}: classes of {attribute} differ from this version's")
                probs[attribute] = data[f"{attribute}_probs"].astype(np.float32)
                labels[attribute] = data[f"{attribute}_labels"].astype(np.int8)
    except ReportError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as error:
        raise ReportError(f"{path}: not a readable calibration file ({str(error).splitlines()[0]})") from None
    if info.get("format_version") != FORMAT_VERSION:
        raise ReportError(f"{path}: calibration format {info.get('format_version')} is not this version's")
    sizes = {len(a) for a in (*probs.values(), *labels.values())}
    if len(sizes) != 1 or not all(p.ndim == 2 and p.shape[1] == len(ATTRIBUTES[a]) and np.isfinite(p).all()
                                  and (p >= 0).all() and labels[a].ndim == 1 and (labels[a] >= -1).all()
                                  and (labels[a] < len(ATTRIBUTES[a])).all() for a, p in probs.items()):
        raise ReportError(f"{path}: not a readable calibration file (no attribute, arrays of different sizes or "
                          "impossible values)")
    return Calibration(info.get("model_type"), probs, labels)


# analysed faces under SMALL_FACE px (box's longer side) get report's note when they are SMALL_SHARE of them or more
SMALL_FACE, SMALL_SHARE = 48, 0.1


def small_faces_notes(small: int, faces: int) -> list[str]:
    """A note where at least SMALL_SHARE of the analysed faces are under SMALL_FACE px (the closer look finds a
    crowd's): the model errs more on them than on the calibration set's full-size faces (docs/report.md)."""
    if not faces or small < SMALL_SHARE * faces:
        return []
    note = (f"{small} of the {faces} analysed faces are under {SMALL_FACE} px; the calibration set's faces are full "
            "size and the model errs more on small ones: on FairFace's test photos shrunk to faces of 36 px, facenet's "
            "intervals held the truth for 92.6 % of the classes (99.4 % at full size) and race was 15.0 points off "
            "(7.6), so read these shares as rougher than their intervals say")
    return [note]
