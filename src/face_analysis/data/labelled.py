"""Labelled photo sets described by a CSV, such as FairFace: `file,age,gender,race`, one row an image.

The images are the files and .tar.gz archives beside the CSV (matched by file name). Ages are groups
("20-29"), read as intervals of whole years; race groups map onto the project's five classes (labels.py).
Rows that cannot be used (blank fields, unknown labels, no such image) are skipped and counted."""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis import paths
from face_analysis.data.utk import UtkDataset, iter_archive, write_cache
from face_analysis.detection import crop as face_crop
from face_analysis.detection import detectors as face_detection
from face_analysis.detection.detectors import DEFAULT_DETECT_SIZE
from face_analysis.errors import DataError
from face_analysis.io.images import decode_image, is_image_name
from face_analysis.labels import AGE_GROUP_ALIASES, AGE_GROUP_INTERVALS, GENDER_NAMES, RACE_GROUPS, RACES

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


def check_readable(data_paths) -> None:
    """DataError naming the first data file or folder (inside those given too) this process may not read: a scan
    would pass over it without a word and the figures would leave its images out."""
    def check(path: str, folder: bool) -> None:
        if os.path.exists(path) and not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
            raise DataError(f"{path}: permission denied (the data must be readable)")

    def refuse(error: OSError):
        check(error.filename, os.path.isdir(error.filename))

    for path in map(str, data_paths):
        check(path, os.path.isdir(path))
        for folder, folders, files in os.walk(path, onerror=refuse):
            for names, are_folders in ((folders, True), (files, False)):
                for name in names:
                    check(os.path.join(folder, name), are_folders)


def split_sources(data_paths) -> tuple[list[Path], list[Path]]:
    """(UTKFace-named folders and archives, labelled photo sets) among the data paths, in their order, after
    check_readable; a set given twice (its folder and its CSV too) is kept once."""
    data_paths = [Path(p) for p in data_paths]
    check_readable(data_paths)
    photo_sets, chips, seen = [], [], {}
    for path in data_paths:
        found = label_csv(path)
        if found is None and path.suffix.lower() == ".csv" and path.is_file():
            raise DataError(f"{path}: not a labelled set (its first row is not the comma-separated columns "
                            f"{','.join(COLUMNS)})")
        if found is not None and found.resolve() in seen:
            log.warning("%s: the labelled set %s again: read once", path, seen[found.resolve()])
        elif found is not None:
            seen[found.resolve()] = path
            photo_sets.append(path)
        else:
            chips.append(path)
    return chips, photo_sets


def _images_by_path(folder: Path) -> dict[str, bytes]:
    """The images under a folder (its .tar.gz archives included) by their path relative to it, as a CSV's
    `file` column names them ("train/1.jpg"), archive members by their path inside the archive."""
    images = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and is_image_name(file.name):
            images[file.relative_to(folder).as_posix()] = file.read_bytes()
        elif file.is_file() and file.name.lower().endswith((".tar.gz", ".tgz", ".tar")) and tarfile.is_tarfile(file):
            images.update(iter_archive(file, keep_paths=True))
    return images


def _match(name: str, images: dict[str, bytes], by_basename: dict[str, str | None]) -> str | None:
    """The key of the image a CSV row names: its exact relative path, else its file name when that is unique."""
    name = name.removeprefix("./")
    if name in images:
        return name
    return by_basename.get(Path(name).name)


def _header(path: Path) -> tuple[str, ...]:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as file:
            return tuple(cell.strip().lower() for cell in next(csv.reader(file), []))
    except (OSError, UnicodeDecodeError, csv.Error):
        return ()


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8 (read as surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_rows(rows: list[dict]) -> tuple[pd.DataFrame, Counter]:
    """The usable rows as labels, and how many were skipped for each reason."""
    skipped, usable = Counter(), []
    for row in rows:
        values = {key: (row.get(key) or "").strip() for key in COLUMNS}
        if any("\x00" in value for value in values.values()):
            skipped["NUL byte"] += 1
            continue
        if not all(map(_is_utf8, values.values())):
            skipped["not UTF-8"] += 1
            continue
        if not all(values.values()):
            skipped["blank field"] += 1
            continue
        values["age"] = AGE_GROUP_ALIASES.get(values["age"], values["age"])
        interval = AGE_GROUP_INTERVALS.get(values["age"])
        gender = GENDER_NAMES.get(values["gender"].lower())
        race = RACE_GROUPS.get(values["race"])
        if interval is None or gender is None or race is None:
            skipped["unknown label"] += 1
            continue
        usable.append((values["file"], *interval, values["age"], gender, RACES.index(race), values["race"]))
    frame = pd.DataFrame(usable, columns=["name", "age_lo", "age_hi", "age_group", "gender", "race", "race_group"])
    return frame, skipped


def _skipped_text(skipped: Counter) -> str:
    """"3 row(s) skipped: 2 NUL byte, 1 blank field", or "" when none was."""
    total = sum(skipped.values())
    return f"{total} row(s) skipped: " + ", ".join(f"{n} {why}" for why, n in skipped.items() if n) if total else ""


def load_labelled_set(path: str | Path) -> LabelledSet:
    """Read a labelled set's CSV and the bytes of the images it names; DataError when nothing is usable."""
    csv_path = label_csv(path)
    if csv_path is None:
        raise DataError(f"{path}: not a labelled set (a CSV with the columns {','.join(COLUMNS)})")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as file:  # names as on disk
            reader = csv.DictReader(file)
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
            frame, skipped = parse_rows(list(reader))
    except csv.Error as error:
        raise DataError(f"{csv_path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    if frame.empty:
        raise DataError(f"{csv_path}: no usable row ({_skipped_text(skipped) or 'only its header'})")
    found = _images_by_path(csv_path.parent)
    by_basename: dict[str, str | None] = {}
    for key in found:  # a file name shared by two images (train/1.jpg, val/1.jpg) matches neither by name alone
        by_basename[Path(key).name] = None if Path(key).name in by_basename else key
    keys = [_match(name, found, by_basename) for name in frame["name"]]
    missing = np.array([key is None for key in keys], bool)
    frame = frame.assign(name=[key or "" for key in keys])[~missing]
    repeated = frame.duplicated(["name", "age_group", "gender", "race_group"]).to_numpy()
    frame = frame[~repeated]
    conflicting = frame.duplicated("name", keep=False).to_numpy()  # one image, two labels: neither is trusted
    frame = frame[~conflicting].reset_index(drop=True)
    skipped.update({"no such image": int(missing.sum()), "repeated row": int(repeated.sum()),
                    "conflicting labels": int(conflicting.sum())})
    skipped = +skipped  # the reasons met only
    images = {name: found[name] for name in frame["name"]}
    log.info("%s: %d labelled images; %s", csv_path, len(frame), _skipped_text(skipped) or "no row skipped")
    if frame.empty:
        raise DataError(f"{csv_path}: no usable labelled image ({_skipped_text(skipped)})")
    return LabelledSet(frame, images, skipped)


def load_photo_crops(path: str | Path, size: int, detector: str = "yunet", use_cache: bool = True,
                     widen: float = 1.0):
    """A labelled set's faces as `run` sees them: each photo's largest face found by `detector`, cropped with
    that detector's chip crop widened by `widen` to size x size (uint8 RGB). Photos where no face is found are
    left out (and counted): `run` could not analyse them either. Cached under .cache/ like the UTKFace images.

    Returns utk_data.UtkDataset with the columns of utk_data's frame plus age_lo, age_hi, race_group, source."""
    csv_path = label_csv(path)
    if csv_path is None:
        raise DataError(f"{path}: not a labelled set (a CSV with the columns {','.join(COLUMNS)})")
    finder = face_detection.make_detector(detector, DEFAULT_DETECT_SIZE)  # as `run` searches photos
    stat = csv_path.stat()
    key = hashlib.sha256(f"v1:{csv_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{size}:{detector}:"
                         f"{finder.chip_crop}{'' if widen == 1.0 else f':{widen}'}".encode()).hexdigest()[:16]
    cache = paths.CACHE_DIR / f"photos-{key}"
    if use_cache and (cache / "labels.csv").is_file():
        log.info("using face crops cached in %s", cache)
        return UtkDataset(np.load(cache / "images.npy"), pd.read_csv(cache / "labels.csv", dtype={"sha256": str}))
    labelled = load_labelled_set(path)
    crops, keep, not_found = [], [], 0
    for i, name in enumerate(tqdm(labelled.frame["name"], desc=f"finding faces in {csv_path.parent.name}", unit="img")):
        try:
            image = decode_image(labelled.images[name], name)
            detections = finder.detect(image)
        except Exception:  # noqa: BLE001 - an undecodable or odd photo is skipped like one without a face
            detections = []
        if not detections:
            not_found += 1
            continue
        crop = finder.chip_crop
        crops.append(face_crop.crop_face(image, detections[0].box, size, crop["scale"] * widen, crop["shift_y"]))
        keep.append(i)
    log.info("%s: no face found in %d of %d photos; they are left out", csv_path, not_found, len(labelled.frame))
    if not crops:
        raise DataError(f"{csv_path}: no face found in any of its {len(labelled.frame)} photos")
    frame = labelled.frame.iloc[keep].reset_index(drop=True)
    frame = frame.assign(age=(frame["age_lo"] + frame["age_hi"]) / 2,
                         sha256=[hashlib.sha256(labelled.images[n]).hexdigest() for n in frame["name"]],
                         source=csv_path.parent.name.lower())
    dataset = UtkDataset(np.stack(crops), frame)
    if use_cache:
        write_cache(cache, dataset)
    return dataset
