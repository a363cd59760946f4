"""Labelled photo sets described by a CSV, such as FairFace: `file,age,gender,race`, one row an image.

The images are the files and .tar.gz archives beside the CSV (matched by file name). Ages are groups
("20-29"), read as intervals of whole years; race groups map onto the project's five classes (labels.py).
Rows that cannot be used (blank fields, unknown labels, no such image) are skipped and counted."""
from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from errors import DataError
from labels import AGE_GROUP_INTERVALS, GENDER_NAMES, RACE_GROUPS, RACES

log = logging.getLogger(__name__)
COLUMNS = ("file", "age", "gender", "race")


@dataclass
class LabelledSet:
    """One row per usable image: name, age_lo, age_hi, age_group, gender, race (class index), race_group,
    and the image's bytes by name."""

    frame: pd.DataFrame
    images: dict[str, bytes]
    skipped: Counter


def label_csv(path: str | Path) -> Path | None:
    """The CSV describing a labelled set at path (the CSV itself, or the one CSV with the right header in a
    folder), or None when path is not such a set."""
    path = Path(path)
    candidates = [path] if path.is_file() else sorted(path.glob("*.csv")) if path.is_dir() else []
    found = [c for c in candidates if c.suffix.lower() == ".csv" and _header(c) == COLUMNS]
    return found[0] if len(found) == 1 else None


def _header(path: Path) -> tuple[str, ...]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            return tuple(cell.strip().lower() for cell in next(csv.reader(file), []))
    except (OSError, UnicodeDecodeError):
        return ()


def parse_rows(rows: list[dict]) -> tuple[pd.DataFrame, Counter]:
    """The usable rows as labels, and how many were skipped for each reason."""
    skipped, usable = Counter(), []
    for row in rows:
        values = {key: (row.get(key) or "").strip() for key in COLUMNS}
        if not all(values.values()):
            skipped["blank field"] += 1
            continue
        interval = AGE_GROUP_INTERVALS.get(values["age"])
        gender = GENDER_NAMES.get(values["gender"].lower())
        race = RACE_GROUPS.get(values["race"])
        if interval is None or gender is None or race is None:
            skipped["unknown label"] += 1
            continue
        usable.append((Path(values["file"]).name, *interval, values["age"], gender, RACES.index(race), values["race"]))
    frame = pd.DataFrame(usable, columns=["name", "age_lo", "age_hi", "age_group", "gender", "race", "race_group"])
    return frame, skipped


def load_labelled_set(path: str | Path) -> LabelledSet:
    """Read a labelled set's CSV and the bytes of the images it names; DataError when nothing is usable."""
    from utk_data import iter_image_files

    csv_path = label_csv(path)
    if csv_path is None:
        raise DataError(f"{path}: not a labelled set (a CSV with the columns {','.join(COLUMNS)})")
    with open(csv_path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
        frame, skipped = parse_rows(list(reader))
    wanted = set(frame["name"])
    images = {name: data for name, data in iter_image_files([csv_path.parent]) if name in wanted}
    missing = ~frame["name"].isin(images)
    skipped["no such image"] += int(missing.sum())
    frame = frame[~missing].drop_duplicates("name").reset_index(drop=True)
    log.info("%s: %d labelled images; skipped %s", csv_path, len(frame),
             ", ".join(f"{n} ({reason})" for reason, n in skipped.items() if n) or "none")
    if frame.empty:
        raise DataError(f"{csv_path}: no usable labelled image (skipped: {dict(skipped)})")
    return LabelledSet(frame, images, skipped)


def load_photo_crops(path: str | Path, size: int, detector: str = "yunet", use_cache: bool = True):
    """A labelled set's faces as `run` sees them: each photo's largest face found by `detector`, cropped with
    that detector's chip crop to size x size (uint8 RGB). Photos where no face is found are left out (and
    counted): `run` could not analyse them either. Cached under .cache/ like the UTKFace images.

    Returns utk_data.UtkDataset with the columns of utk_data's frame plus age_lo, age_hi, race_group, source."""
    import hashlib

    import numpy as np
    from tqdm import tqdm

    import face_crop
    import face_detection
    import paths
    from image_io import decode_image
    from utk_data import UtkDataset, write_cache

    csv_path = label_csv(path)
    if csv_path is None:
        raise DataError(f"{path}: not a labelled set (a CSV with the columns {','.join(COLUMNS)})")
    finder = face_detection.make_detector(detector)
    stat = csv_path.stat()
    key = hashlib.sha256(f"v1:{csv_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{size}:{detector}:"
                         f"{finder.chip_crop}".encode()).hexdigest()[:16]
    cache = paths.CACHE_DIR / f"photos-{key}"
    if use_cache and (cache / "labels.csv").is_file():
        log.info("using face crops cached in %s", cache)
        return UtkDataset(np.load(cache / "images.npy"), pd.read_csv(cache / "labels.csv", dtype={"sha256": str}))
    labelled = load_labelled_set(path)
    crops, keep, not_found = [], [], 0
    for i, name in enumerate(tqdm(labelled.frame["name"], desc=f"finding faces in {csv_path.parent.name}", unit="img")):
        data = labelled.images[name]
        try:
            detections = finder.detect(decode_image(data, name))
        except Exception:  # noqa: BLE001 - an undecodable or odd photo is skipped like one without a face
            detections = []
        if not detections:
            not_found += 1
            continue
        image = decode_image(data, name)
        crop = finder.chip_crop
        crops.append(face_crop.crop_face(image, detections[0].box, size, crop["scale"], crop["shift_y"]))
        keep.append(i)
    log.info("%s: no face found in %d of %d photos; they are left out", csv_path, not_found, len(labelled.frame))
    frame = labelled.frame.iloc[keep].reset_index(drop=True)
    frame = frame.assign(age=(frame["age_lo"] + frame["age_hi"]) / 2,
                         sha256=[hashlib.sha256(labelled.images[n]).hexdigest() for n in frame["name"]],
                         source=csv_path.parent.name.lower())
    dataset = UtkDataset(np.stack(crops), frame)
    if use_cache:
        write_cache(cache, dataset)
    return dataset
