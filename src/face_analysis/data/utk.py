"""UTKFace loading (folders or tarballs), label parsing, de-duplication, leak-free splitting and rebalancing."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis import paths
from face_analysis.errors import DataError, ImageError
from face_analysis.io.images import decode_image, is_image_name
from face_analysis.labels import AGE_BUCKETS, MAX_AGE, age_bucket

log = logging.getLogger(__name__)

SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.10), ("test", 0.20))
# age, gender, race, then anything; tolerates a stray space or a missing dot before the extension
_NAME_PATTERN = re.compile(r"^(\d{1,3})_([01])_([0-4])_\d+\s*\.?(jpe?g|png)?")


@dataclass(frozen=True)
class UtkLabel:
    age: int
    gender: int
    race: int


@dataclass
class UtkDataset:
    """Decoded images (N, S, S, 3 uint8 RGB) and one row per image: name, age, age_lo, age_hi (the age, or an
    age group's interval), age_group, gender, race, race_group, sha256, source."""

    images: np.ndarray
    frame: pd.DataFrame


def parse_utk_name(name: str) -> UtkLabel | None:
    """Labels from a UTKFace file name `age_gender_race_datetime.jpg.chip.jpg`, or None when it has none."""
    match = _NAME_PATTERN.match(os.path.basename(name).strip())
    if not match:
        return None
    age, gender, race = (int(g) for g in match.groups()[:3])
    if age > MAX_AGE:
        return None
    return UtkLabel(age, gender, race)


def _check_archive(path: Path) -> None:
    """Read an archive's member list once, so a damaged one is reported before any work starts."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for _ in archive:
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt archive ({error})") from None


def _resolve_sources(data_paths: Iterable[str | Path]) -> list[Path]:
    sources = [Path(p) for p in data_paths]
    if not sources:
        raise DataError("no data path given")
    for path in sources:
        if not path.exists():
            raise DataError(f"{path}: no such file or folder (download UTKFace, see README)")
        if path.is_file():
            if not tarfile.is_tarfile(path):
                raise DataError(f"{path}: not a folder of images nor a readable .tar.gz archive")
            _check_archive(path)
    return sources


def _is_archive_name(name: str) -> bool:
    return name.lower().endswith((".tar.gz", ".tgz", ".tar"))


def iter_archive(path: Path, keep_paths: bool = False) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the images in a tar archive, read in memory: the file name, or with keep_paths the
    member's path inside the archive (never used to write anywhere)."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and is_image_name(member.name):
                    name = member.name.removeprefix("./") if keep_paths else os.path.basename(member.name)
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt archive ({error})") from None


def iter_image_files(data_paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, bytes) of every image in the folders (recursively, archives inside included)
    and tar archives given.

    Archives are read in memory, never extracted, so member paths cannot escape anywhere."""
    for path in _resolve_sources(data_paths):
        if path.is_file():
            yield from iter_archive(path)
            continue
        for file in sorted(path.rglob("*")):
            if file.is_file() and is_image_name(file.name):
                yield file.name, file.read_bytes()
            elif file.is_file() and _is_archive_name(file.name):
                yield from iter_archive(file)


def decode_square(data: bytes, size: int) -> np.ndarray | None:
    """Decode image bytes to an RGB uint8 array resized to size x size, or None when they are empty, damaged,
    too large or too small (image_io.decode_image's checks, so memory stays bounded)."""
    try:
        image = decode_image(data)
    except ImageError:
        return None
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _cache_key(sources: list[Path], size: int) -> str:
    digest = hashlib.sha256(f"v1:{size}".encode())
    for path in sources:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                stat = file.stat()
                # names as on disk: a name that is not UTF-8 (an old camera's) keeps its bytes
                digest.update(f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode(errors="surrogateescape"))
    return digest.hexdigest()[:16]


def load_utkface(data_paths: Iterable[str | Path], image_size: int, use_cache: bool = True) -> UtkDataset:
    """Decode every labelled UTKFace image under data_paths, skipping (and counting) the unusable ones.

    The decoded arrays are cached under .cache/ so later runs start in seconds."""
    sources = _resolve_sources(data_paths)
    cache = paths.CACHE_DIR / f"utk2-{_cache_key(sources, image_size)}"
    if use_cache and (cache / "labels.csv").is_file():
        log.info("using decoded images cached in %s", cache)
        return UtkDataset(np.load(cache / "images.npy"), pd.read_csv(cache / "labels.csv", dtype={"sha256": str}))
    images, rows, unlabeled, undecodable = [], [], 0, 0
    for name, data in tqdm(iter_image_files(sources), desc="decoding images", unit="img"):
        label = parse_utk_name(name)
        if label is None:
            unlabeled += 1
            continue
        image = decode_square(data, image_size)
        if image is None:
            undecodable += 1
            continue
        images.append(image)
        rows.append((name, label.age, label.gender, label.race, hashlib.sha256(data).hexdigest()))
    log.info("loaded %d images; skipped %d without UTKFace labels, %d that do not decode",
             len(rows), unlabeled, undecodable)
    if not rows:
        raise DataError(f"no labelled UTKFace images in {', '.join(map(str, sources))} "
                        "(names must look like 25_0_1_20170116174525125.jpg.chip.jpg)")
    frame = pd.DataFrame(rows, columns=["name", "age", "gender", "race", "sha256"])
    frame = frame.assign(age_lo=frame["age"], age_hi=frame["age"], age_group="", race_group="", source="utkface")
    dataset = UtkDataset(np.stack(images), frame)
    if use_cache:
        write_cache(cache, dataset)
    return dataset


def write_cache(cache: Path, dataset: UtkDataset) -> None:
    """Keep a decoded data set for later runs (unless this process must not write caches: paths.CACHE_WRITES)."""
    if not paths.CACHE_WRITES:
        return
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    np.save(tmp / "images.npy", dataset.images)
    dataset.frame.to_csv(tmp / "labels.csv", index=False)
    if not cache.exists():
        os.replace(tmp, cache)


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per byte-identical image whose copies agree on the labels; drop groups that conflict."""
    labels = frame.groupby("sha256")[["age_lo", "age_hi", "gender", "race"]].nunique()
    conflicting = labels.index[(labels > 1).any(axis=1)]
    kept = frame[~frame["sha256"].isin(conflicting)].drop_duplicates("sha256", keep="first")
    log.info("de-duplication: %d rows -> %d unique images (%d conflicting groups dropped)",
             len(frame), len(kept), len(conflicting))
    return kept


def split_of(sha256: str) -> str:
    """The split ("train", "val" or "test") of an image, fixed by its content hash alone."""
    position = int(sha256[:8], 16) / 0x100000000
    cumulative = 0.0
    for name, fraction in SPLIT_FRACTIONS:
        cumulative += fraction
        if position < cumulative:
            return name
    return SPLIT_FRACTIONS[-1][0]


def assign_splits(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of frame with a "split" column derived from each image's content hash."""
    return frame.assign(split=frame["sha256"].map(split_of))


def rebalance_ages(train: pd.DataFrame, seed: int = 0, min_fraction: float = 0.5,
                   max_factor: int = 4) -> np.ndarray:
    """Row positions of `train` with under-represented age buckets oversampled.

    Each bucket is repeated up to `min_fraction` of the largest bucket's size, at most `max_factor` times
    its own size. Apply it to the training part only: validation and test keep their natural distribution."""
    rng = np.random.default_rng(seed)
    buckets = train["age_lo"].map(age_bucket).to_numpy()  # an age group's low end is in its bucket
    counts = {b: int((buckets == b).sum()) for b in AGE_BUCKETS}
    largest = max(counts.values())
    positions = [np.arange(len(train))]
    for bucket, count in counts.items():
        if count == 0:
            continue
        target = min(max_factor * count, max(count, round(min_fraction * largest)))
        if target > count:
            members = np.flatnonzero(buckets == bucket)
            positions.append(rng.choice(members, target - count, replace=True))
    return np.concatenate(positions)


def balance_groups(train: pd.DataFrame, positions: np.ndarray, seed: int = 0, max_factor: int = 3) -> np.ndarray:
    """`positions` (rows of train, repeats included) and more draws of labelled photo-set rows, so that every
    race group x gender x age bucket cell reaches the median cell's size (at most max_factor times its own).
    UTKFace rows (no race group) are left as they are. Apply it to the training part only."""
    if "race_group" not in train.columns:
        return positions
    chosen = train.iloc[positions]
    photo = chosen["race_group"].notna().to_numpy()
    if not photo.any():
        return positions
    cells = (chosen["race_group"].astype(str) + "|" + chosen["gender"].astype(str) + "|"
             + chosen["age_lo"].map(age_bucket)).to_numpy()
    names, counts = np.unique(cells[photo], return_counts=True)
    median, rng, extra = float(np.median(counts)), np.random.default_rng(seed + 1), [positions]
    for name, count in zip(names, counts):
        target = min(max_factor * count, max(count, round(median)))
        if target > count:
            extra.append(rng.choice(positions[photo & (cells == name)], target - count, replace=True))
    return np.concatenate(extra)
