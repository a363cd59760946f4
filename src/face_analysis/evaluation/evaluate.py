"""evaluate(): a saved model on UTKFace chips or on labelled photo sets (through the detector, as `run` sees
them), executed as `run` executes it; figures from metrics, files from report."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis import paths
from face_analysis.data import utk as utk_data
from face_analysis.data.prepare import prepare_data, read_split, select_rows
from face_analysis.evaluation.metrics import compute_metrics, photo_metrics, predict, prediction_frame
from face_analysis.evaluation.report import photo_report, write_report, write_statistics_readme
from face_analysis.io import guard as output_guard
from face_analysis.io.writers import PROBABILITY_COLUMNS, probability_values
from face_analysis.labels import DEFAULT_PRECISION, GENDERS, RACES
from face_analysis.models import store as model_store

log = logging.getLogger(__name__)


def evaluate(model_type: str, model_path: Path | None = None, data_paths=None, split: str = "test",
             stats_dir: Path | None = paths.STATS_DIR, use_cache: bool = True, tta: bool = False,
             precision: str = DEFAULT_PRECISION) -> dict:
    """Evaluate a saved model on UTKFace-named chips as `run` executes it (precision, `--tta` when tta);
    writes the report under stats_dir/model_metrics/<type>_model_stats/."""
    from face_analysis.analyzer import FaceAnalyzer

    data_paths = data_paths or paths.DEFAULT_DATA_PATHS
    if stats_dir is not None:
        sources = output_guard.InputSet(data_paths)
        output_guard.check_stats_folder("--stats_dir", stats_dir, sources, paths.STATS_ENTRIES)
    directory = model_store.resolve_model_dir(model_type, model_path)
    analyzer = FaceAnalyzer(model_type, directory, detector="none", tta=tta, precision=precision)
    model_type = analyzer.model_type
    predicted, images = chip_predictions(analyzer, data_paths, split, use_cache)
    metrics = {"model_type": model_type, "split": split, "precision": precision, "tta": tta,
               **compute_metrics(predicted)}
    if stats_dir is not None:
        history_text = (directory / "history.csv").read_text()
        history = pd.read_csv(io.StringIO(history_text)) if history_text.strip() else None
        out_dir = Path(stats_dir) / "model_metrics" / f"{model_type}_model_stats"
        write_report(metrics, predicted, images, history, out_dir)
        write_statistics_readme(stats_dir)
        log.info("evaluation report written to %s", out_dir)
    return metrics


def chip_predictions(analyzer, data_paths, split: str, use_cache: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """The labels, predictions and probabilities of the UTKFace-named chips of the model's `split` part (its
    saved split; data it never saw: all of it), and the chips."""
    info = analyzer.info
    data = prepare_data(data_paths, info["input_size"], use_cache, info["crop_widen"])
    rows = select_rows(data.frame, read_split(analyzer.model_dir), split)
    if len(rows) == 0:
        raise utk_data.DataError(f"no image of the {split!r} split found in the data given")
    frame, images = data.frame.iloc[rows], data.images[rows]
    return prediction_frame(frame, predict(analyzer.predict_crops, images)), images


def _largest_face_predictions(analyzer, images: list[np.ndarray | None]) -> list:
    """For each photo, the prediction on its largest detected face (as `run` crops it), or None when no face
    was found (or the photo did not decode)."""
    prepared = [analyzer.prepare(image) for image in images if image is not None]
    for p in prepared:  # one face per labelled photo: the largest (detections come largest first)
        p.detections, p.analysable = p.detections[:1], p.analysable[:1]
        p.crops = p.crops[:1] if p.crops is not None else None
    faces = iter(analyzer.finish(prepared))
    return [None if image is None else next(iter(next(faces)), None) for image in images]


def _decoded_or_none(data: bytes, name: str) -> np.ndarray | None:
    from face_analysis.io import images as image_io

    try:
        return image_io.decode_image(data, name)
    except image_io.ImageError as error:
        log.warning("skipped: %s", error)
        return None


def evaluate_photos(model_type: str | None, model_path: Path | None, set_path: Path, split: str = "test",
                    detector: str = "yunet", stats_dir: Path | None = paths.STATS_DIR, tta: bool = False,
                    precision: str = DEFAULT_PRECISION, source: str | None = None) -> dict:
    """Evaluate a saved model on a labelled photo set (FairFace-style CSV) exactly as `run` analyses photos:
    the default detector, the model's crop, the compiled model at `precision` (`--tta` when tta). The part
    evaluated is the set's content-hash split. source: the name of its figures and statistics folder (default:
    the name of the CSV's folder, lower case)."""
    from face_analysis.analyzer import FaceAnalyzer
    from face_analysis.data import labelled as labelled_sets

    if stats_dir is not None:
        sources = output_guard.InputSet([set_path])
        output_guard.check_stats_folder("--stats_dir", stats_dir, sources, paths.STATS_ENTRIES)
    analyzer = FaceAnalyzer(model_type, model_path, detector, min_face=0, tta=tta, precision=precision)
    predicted = photo_predictions(analyzer, set_path, split)
    source = source or labelled_sets.label_csv(set_path).parent.name.lower()
    metrics = {"model_type": analyzer.model_type, "source": source, "split": split, "detector": detector,
               "precision": precision, "tta": tta, **photo_metrics(predicted)}
    if stats_dir is not None:
        out_dir = Path(stats_dir) / "model_metrics" / f"{analyzer.model_type}_model_stats" / source
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out_dir / "report.md").write_text(photo_report(metrics))
        predicted.to_csv(out_dir / "predictions.csv", index=False)
        write_statistics_readme(stats_dir)
        log.info("evaluation report written to %s", out_dir)
    return metrics


def photo_predictions(analyzer, set_path: Path, split: str, model_split: pd.DataFrame | None = None) -> pd.DataFrame:
    """The labels, predictions and probabilities (run's CSV columns; NaN where no face was found) of the photos
    of a labelled set's `split` part: its content-hash split, or with model_split the model's saved one."""
    import hashlib

    from face_analysis.data import labelled as labelled_sets

    labelled = labelled_sets.load_labelled_set(set_path)
    digests = [hashlib.sha256(labelled.images[name]).hexdigest() for name in labelled.frame["name"]]
    frame = utk_data.assign_splits(labelled.frame.assign(sha256=digests).drop_duplicates("sha256"))
    if model_split is not None:
        frame = frame.iloc[select_rows(frame, model_split, split)]
    elif split != "all":
        frame = frame[frame["split"] == split]
    if frame.empty:
        raise utk_data.DataError(f"{set_path}: no photo in its {split!r} part")
    outputs = []
    for start in tqdm(range(0, len(frame), 32), desc="evaluating photos", unit="batch"):
        names = frame["name"].iloc[start:start + 32]
        outputs += _largest_face_predictions(analyzer, [_decoded_or_none(labelled.images[n], n) for n in names])
    probabilities = np.array([probability_values(o) if o else [np.nan] * len(PROBABILITY_COLUMNS) for o in outputs],
                             np.float64).reshape(len(outputs), len(PROBABILITY_COLUMNS))
    return frame.reset_index(drop=True).assign(
        found=[o is not None for o in outputs],
        predicted_age=[o.age if o else np.nan for o in outputs],
        predicted_gender=[GENDERS.index(o.gender) if o else -1 for o in outputs],
        predicted_race=[RACES.index(o.race) if o else -1 for o in outputs],
        **dict(zip(PROBABILITY_COLUMNS, probabilities.T)))


def held_out_predictions(model_path: Path, data_paths, split: str = "val", detector: str = "yunet",
                         use_cache: bool = True) -> pd.DataFrame:
    """The model's predictions with their probabilities and true labels on the `split` part of its saved split
    (`calibrate`: the validation part), each source as `evaluate` runs it: labelled photo sets through the
    detector and the model's crop, the compiled model at its default precision; UTKFace chips as they are, only
    when no photo set is given (users' collections are photos; the chips' errors differ from theirs and, mixed
    in, moved benchmarks/audit.py's corrected race shares on FairFace's validation part from 13 to 45 points of
    error). One table (age labels as "age_lo", years), for reporting.calibration.build_calibration."""
    from face_analysis.analyzer import FaceAnalyzer
    from face_analysis.data import labelled as labelled_sets

    chips, photo_sets = labelled_sets.split_sources(data_paths)
    parts = []
    if chips and not photo_sets:
        analyzer = FaceAnalyzer(None, model_path, detector="none")
        parts.append(chip_predictions(analyzer, chips, split, use_cache)[0].assign(found=True))
    if photo_sets:
        analyzer = FaceAnalyzer(None, model_path, detector, min_face=0)
        parts += [photo_predictions(analyzer, path, split, read_split(analyzer.model_dir)) for path in photo_sets]
    if not parts:
        raise utk_data.DataError("no data given: UTKFace folders or archives, labelled photo sets")
    columns = ["sha256", "age_lo", "gender", "race", "found", "predicted_gender", "predicted_race",
               *PROBABILITY_COLUMNS]
    table = pd.concat([part[columns] for part in parts], ignore_index=True)
    unique = table.drop_duplicates("sha256", ignore_index=True)  # one photo in two sets counts once
    if len(unique) < len(table):
        log.warning("%d photo(s) found in two of the sets given: counted once", len(table) - len(unique))
    return unique


def evaluate_sources(model_type: str | None, model_path: Path | None, data_paths, split: str = "test",
                     detector: str = "yunet", stats_dir: Path | None = paths.STATS_DIR,
                     tta: bool = False, precision: str = DEFAULT_PRECISION) -> dict[str, dict]:
    """Figures per source: UTKFace-named chips together (`evaluate`), each labelled photo set through the
    detector as `run` sees it (`evaluate_photos`)."""
    from face_analysis.data import labelled as labelled_sets

    chips, photo_sets = labelled_sets.split_sources(data_paths)
    results = {}
    if chips:
        results["utkface"] = evaluate(model_type, model_path, chips, split, stats_dir, tta=tta, precision=precision)
    for path in photo_sets:
        name = labelled_sets.label_csv(path).parent.name.lower()
        source, copy = name, 1
        while source in results:  # two sets in folders of the same name (two parts of FairFace): faces-2
            copy += 1
            source = f"{name}-{copy}"
        results[source] = evaluate_photos(model_type, model_path, path, split, detector, stats_dir, tta, precision,
                                          source)
    return results
