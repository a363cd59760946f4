"""Every labelled source loaded, de-duplicated and split by content hash: what training and evaluation share."""
from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from face_analysis.data import labelled as labelled_sets
from face_analysis.data import utk as utk_data
from face_analysis.labels import INPUT_SIZES
from face_analysis.models import store as model_store

SPLIT_FILE, LEGACY_SPLIT_FILE = "split.csv.gz", "split.csv"  # a saved model's (sha256, split) of each image

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """De-duplicated, split data: frame rows line up with images."""

    images: np.ndarray
    frame: pd.DataFrame

    def part(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.frame["split"].to_numpy() == split)


def load_sources(data_paths, image_size: int, use_cache: bool = True,
                 crop_widen: float = 1.0) -> utk_data.UtkDataset:
    """Every labelled image of the data paths, at image_size: UTKFace chips from UTK-named folders and
    archives, and from each labelled photo set (a CSV such as FairFace's) the faces `run` would find and crop
    (the detector's chip crop widened by crop_widen)."""
    chips, photo_sets = labelled_sets.split_sources(data_paths)
    parts = [utk_data.load_utkface(chips, image_size, use_cache=use_cache)] if chips else []
    parts += [labelled_sets.load_photo_crops(p, image_size, use_cache=use_cache, widen=crop_widen)
              for p in photo_sets]
    if len(parts) == 1:
        return parts[0]
    return utk_data.UtkDataset(np.concatenate([p.images for p in parts]),
                               pd.concat([p.frame for p in parts], ignore_index=True))


def prepare_data(data_paths, image_size: int, use_cache: bool = True, crop_widen: float = 1.0) -> PreparedData:
    """Load every source, drop duplicates, and split by content hash (before any rebalancing or augmentation).

    The split of an image depends on its content alone, so each source is split 70/10/20 on its own."""
    dataset = load_sources(data_paths, INPUT_SIZES["facenet"], use_cache=use_cache, crop_widen=crop_widen)
    frame = utk_data.assign_splits(utk_data.dedupe(dataset.frame))
    images = dataset.images[frame.index.to_numpy()]
    if image_size != images.shape[1]:
        import cv2

        images = np.stack([cv2.resize(im, (image_size, image_size), interpolation=cv2.INTER_AREA) for im in images])
    counts = frame.groupby(["source", "split"]).size().to_dict()
    log.info("split: %s", "; ".join(f"{source} {split} {n}" for (source, split), n in sorted(counts.items())))
    return PreparedData(images, frame.reset_index(drop=True))


def select_rows(frame: pd.DataFrame, split_table: pd.DataFrame, split: str) -> np.ndarray:
    """Rows of frame to evaluate: the saved split's test images, or all of them.

    Images the model never saw in its split (another collection) are all evaluated."""
    if split == "all":
        return np.arange(len(frame))
    known = frame["sha256"].isin(split_table["sha256"])
    if not known.any():
        log.info("none of these images is in the model's saved split: evaluating all %d of them", len(frame))
        return np.arange(len(frame))
    test = set(split_table.loc[split_table["split"] == split, "sha256"])
    return np.flatnonzero(frame["sha256"].isin(test).to_numpy())


def split_files(frame) -> dict[str, bytes]:
    """The files that save a split (sha256, split): SPLIT_FILE, the same bytes for the same split (no time in
    the gzip header)."""
    return {SPLIT_FILE: gzip.compress(model_store.csv_bytes(frame), mtime=0)}


def read_split(directory: Path):
    """A saved model's split (sha256, split) as a DataFrame: SPLIT_FILE, or split.csv in models saved before."""
    directory = Path(directory)
    path = directory / SPLIT_FILE
    if not path.exists() and (directory / LEGACY_SPLIT_FILE).exists():
        path = directory / LEGACY_SPLIT_FILE
    try:
        return pd.read_csv(path, dtype={"sha256": str})
    except FileNotFoundError:
        raise model_store.ModelError(f"{path}: missing; {model_store.RESTORE_HINT}") from None
    except (OSError, ValueError, EOFError) as error:
        raise model_store.ModelError(f"{path}: not a readable split ({error}); {model_store.RESTORE_HINT}") from None
