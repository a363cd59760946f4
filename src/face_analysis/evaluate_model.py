"""Evaluating a saved model on UTKFace: figures per group (age bucket, race, gender), tables and plots."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix
from tqdm import tqdm

from face_analysis import model_store, output_guard, paths, plots, train_model, utk_data
from face_analysis.analyzer import AGES
from face_analysis.labels import AGE_BUCKETS, DEFAULT_PRECISION, GENDERS, MODEL_TYPES, RACES, age_bucket

log = logging.getLogger(__name__)
CHILDHOOD_END = 10  # per-race figures are also reported for this age and over


def predict(predict_batch, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Softmax outputs on uint8 images, batch by batch with a progress bar; predict_batch maps a float32
    batch to the outputs (FaceAnalyzer.predict_crops, a Keras model's predict_on_batch)."""
    outputs = {"age": [], "gender": [], "race": []}
    for start in tqdm(range(0, len(images), batch_size), desc="evaluating", unit="batch"):
        batch = predict_batch(np.asarray(images[start:start + batch_size], np.float32))
        for key in outputs:
            outputs[key].append(np.asarray(batch[key]))
    return {k: np.concatenate(v) for k, v in outputs.items()}


def prediction_frame(frame: pd.DataFrame, outputs: dict) -> pd.DataFrame:
    """The labels with the predicted age, gender and race of each image."""
    return frame.assign(
        predicted_age=outputs["age"].astype(np.float64) @ AGES,
        predicted_gender=outputs["gender"].argmax(1), predicted_race=outputs["race"].argmax(1),
        bucket=frame["age"].map(age_bucket)).reset_index(drop=True)


def _group_figures(predicted: pd.DataFrame, column: str, names) -> list[dict]:
    rows = []
    for key, group in predicted.groupby(column, sort=True):
        rows.append({column: names[key] if names else key, "images": len(group),
                     "age_mae": float((group["predicted_age"] - group["age"]).abs().mean()),
                     "gender_accuracy": float((group["predicted_gender"] == group["gender"]).mean()),
                     "race_accuracy": float((group["predicted_race"] == group["race"]).mean())})
    return rows


def compute_metrics(predicted: pd.DataFrame) -> dict:
    """All the figures of an evaluation, JSON-ready."""
    error = (predicted["predicted_age"] - predicted["age"]).abs()
    by_bucket = [{"bucket": b, "images": int((predicted["bucket"] == b).sum()),
                  "age_mae": float(error[predicted["bucket"] == b].mean()) if (predicted["bucket"] == b).any() else None}
                 for b in AGE_BUCKETS]
    metrics = {
        "images": len(predicted),
        "age_mae": float(error.mean()),
        "gender_accuracy": float((predicted["predicted_gender"] == predicted["gender"]).mean()),
        "race_accuracy": float((predicted["predicted_race"] == predicted["race"]).mean()),
        "age_mae_by_bucket": by_bucket,
        "by_race": _group_figures(predicted, "race", RACES),
        # infants' gender is close to a guess, and UTKFace's races hold very different shares of infants
        # (a fifth of its asian faces are 0-2 years old, 1 % of its black ones), so the per-race gender
        # figures are also given without children
        "by_race_age_10_plus": _group_figures(predicted[predicted["age"] >= CHILDHOOD_END], "race", RACES),
        "by_gender": _group_figures(predicted, "gender", GENDERS),
    }
    for column, names in (("gender", GENDERS), ("race", RACES)):
        labels = list(range(len(names)))
        metrics[f"{column}_report"] = classification_report(
            predicted[column], predicted[f"predicted_{column}"], labels=labels, target_names=list(names),
            output_dict=True, zero_division=0)
        metrics[f"{column}_confusion"] = confusion_matrix(
            predicted[column], predicted[f"predicted_{column}"], labels=labels).tolist()
    return metrics


def write_report(metrics: dict, predicted: pd.DataFrame, images: np.ndarray, history: pd.DataFrame | None,
                 out_dir: Path) -> None:
    """Figures as JSON and CSV, and the plots, into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "report.md").write_text(markdown_report(metrics))
    summary = {k: metrics[k] for k in ("images", "age_mae", "gender_accuracy", "race_accuracy")}
    pd.DataFrame([summary]).to_csv(out_dir / "summary.csv", index=False)
    pd.DataFrame(metrics["age_mae_by_bucket"]).to_csv(out_dir / "age_mae_by_bucket.csv", index=False)
    pd.DataFrame(metrics["by_race"]).to_csv(out_dir / "by_race.csv", index=False)
    pd.DataFrame(metrics["by_gender"]).to_csv(out_dir / "by_gender.csv", index=False)
    for column, names in (("gender", GENDERS), ("race", RACES)):
        pd.DataFrame(metrics[f"{column}_report"]).transpose().to_csv(out_dir / f"{column}_report.csv")
        pd.DataFrame(metrics[f"{column}_confusion"], index=names, columns=names).to_csv(
            out_dir / f"{column}_confusion.csv")
        plots.plot_confusion(np.array(metrics[f"{column}_confusion"]), names, out_dir / f"{column}_confusion.png")
    predicted.to_csv(out_dir / "predictions.csv", index=False)
    plots.plot_age_scatter(predicted, out_dir / "age_predicted_vs_true.png")
    plots.plot_mae_by_bucket(metrics["age_mae_by_bucket"], metrics["age_mae"], out_dir / "age_mae_by_bucket.png")
    plots.plot_prediction_grid(images, predicted, out_dir / "prediction_grid.png")
    if history is not None and len(history):
        plots.plot_training_curves(history, out_dir / "training_curves.png")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def markdown_report(metrics: dict) -> str:
    """The headline figures and the per-group tables of an evaluation, as Markdown."""
    lines = [f"# {metrics['model_type']} model on the {metrics['split']} split ({metrics['images']} images)", "",
             "| age MAE (years) | gender accuracy | race accuracy |", "| --- | --- | --- |",
             f"| {metrics['age_mae']:.2f} | {_percent(metrics['gender_accuracy'])} | "
             f"{_percent(metrics['race_accuracy'])} |", "",
             "## Age MAE by age bucket", "", "| age | images | MAE (years) |", "| --- | --- | --- |"]
    lines += [f"| {r['bucket']} | {r['images']} | {'' if r['age_mae'] is None else format(r['age_mae'], '.2f')} |"
              for r in metrics["age_mae_by_bucket"]]
    tables = (("by_race", "race", "race"), ("by_race_age_10_plus", "race", f"race, ages {CHILDHOOD_END} and over"),
              ("by_gender", "gender", "gender"))
    for key, column, title in tables:
        lines += ["", f"## By {title}", "", f"| {column} | images | age MAE | gender accuracy | race accuracy |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r[column]} | {r['images']} | {r['age_mae']:.2f} | {_percent(r['gender_accuracy'])} | "
                  f"{_percent(r['race_accuracy'])} |" for r in metrics[key]]
    for column in ("gender", "race"):
        report = metrics[f"{column}_report"]
        names = [k for k in report if k not in ("accuracy", "macro avg", "weighted avg")]
        lines += ["", f"## {column.capitalize()}: precision, recall, F1", "", "| class | precision | recall | F1 | images |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {n} | {report[n]['precision']:.3f} | {report[n]['recall']:.3f} | {report[n]['f1-score']:.3f} | "
                  f"{int(report[n]['support'])} |" for n in names]
    return "\n".join(lines) + "\n"


def gender_spread(rows: list[dict]) -> tuple[float, float]:
    """(worst, best) gender accuracy among the groups of a per-race table."""
    accuracies = [row["gender_accuracy"] for row in rows]
    return min(accuracies), max(accuracies)


def write_statistics_readme(stats_dir: Path) -> Path:
    """stats_dir/README.md: the headline figures of every model evaluated into stats_dir, and how to redo them."""
    lines = [paths.STATS_README_TITLE, "",
             "Every figure here comes from the saved, leak-free test split (20 % of the de-duplicated UTKFace images,",
             "chosen by a hash of each image's content; no byte-identical image is on two sides). Predictions are",
             "the model's outputs on each face, as `run` makes them by default (no `--tta`). Produced by:", "", "```bash",
             "python src/main.py evaluate --model_type facenet --data_path path/to/UTKFace",
             "python src/main.py evaluate --model_type normal --data_path path/to/UTKFace", "```", "",
             "| model | test images | age MAE (years) | gender accuracy | race accuracy (5 classes) "
             f"| gender accuracy, worst / best race | the same, ages {CHILDHOOD_END}+ |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model_type in MODEL_TYPES:
        path = Path(stats_dir) / "model_metrics" / f"{model_type}_model_stats" / "metrics.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        spreads = [" / ".join(_percent(v) for v in gender_spread(m[key])) if m.get(key) else "not measured"
                   for key in ("by_race", "by_race_age_10_plus")]  # not measured: written by an older version
        lines.append(f"| {model_type} | {m['images']} | {m['age_mae']:.2f} | {_percent(m['gender_accuracy'])} | "
                     f"{_percent(m['race_accuracy'])} | {spreads[0]} | {spreads[1]} |")
    lines += photo_tables(stats_dir)
    lines += ["", "Per age bucket, per race and per gender, with precision, recall and F1 per class, in each model's",
              "`model_metrics/<type>_model_stats/report.md`. Those folders also hold `metrics.json`, the CSV tables",
              "and the plots: `training_curves.png`, `gender_confusion.png`, `race_confusion.png`,",
              "`age_predicted_vs_true.png`, `age_mae_by_bucket.png`.",
              "`data_stats/raw_data_stats/` shows the age, gender and race distributions of all de-duplicated images,",
              "`data_stats/adjusted_data_stats/` those of the training part after rebalancing (validation and test keep",
              "their natural distribution). `evaluate` also writes every test prediction to `predictions.csv` and a",
              "grid of 16 test faces to `prediction_grid.png`, both kept out of git: they show the data's labels and",
              "faces, which the licences forbid redistributing."]
    path = Path(stats_dir) / "README.md"
    if path.is_file() and not path.read_text(errors="replace").startswith(paths.STATS_README_TITLE):
        log.warning("warning: %s is not a statistics README written by this tool: left as it is", path)
        return path
    path.write_text("\n".join(lines) + "\n")
    return path


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
    info = analyzer.info
    model_type = info["model_type"]
    split_table = pd.read_csv(directory / "split.csv", dtype={"sha256": str})  # in the checked manifest
    data = train_model.prepare_data(data_paths, info["input_size"], use_cache, info["crop_widen"])
    rows = select_rows(data.frame, split_table, split)
    if len(rows) == 0:
        raise utk_data.DataError(f"no image of the {split!r} split found in the data given")
    frame, images = data.frame.iloc[rows], data.images[rows]
    predicted = prediction_frame(frame, predict(analyzer.predict_crops, images))
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
    from face_analysis import image_io

    try:
        return image_io.decode_image(data, name)
    except image_io.ImageError as error:
        log.warning("skipped: %s", error)
        return None


def photo_metrics(predicted: pd.DataFrame) -> dict:
    """Figures of a labelled photo set: age group (exact and within one group), gender, race (5 classes and
    the 4 without "others"), gender per race group, and faces not found. Accuracies count a photo whose face
    was not found as wrong ("of_all") and are also given over the photos whose face was found."""
    found = predicted[predicted["found"]]
    group_index = {name: i for i, name in enumerate(AGE_BUCKETS)}
    true_group = predicted["age_lo"].map(age_bucket).map(group_index)
    guessed_group = predicted["predicted_age"].map(lambda a: group_index[age_bucket(a)] if a == a else -99)

    def rates(correct: pd.Series) -> dict:
        return {"of_all": float(correct.mean()), "of_found": float(correct[predicted["found"]].mean())}

    not_others = predicted["race"] != RACES.index("others")
    found_not_others = found[found["race"] != RACES.index("others")]
    metrics = {
        "images": len(predicted), "faces_not_found": int((~predicted["found"]).sum()),
        "age_group_accuracy": rates(guessed_group == true_group),
        "age_group_within_one": rates((guessed_group - true_group).abs() <= 1),
        "gender_accuracy": rates(predicted["predicted_gender"] == predicted["gender"]),
        "race_accuracy": rates(predicted["predicted_race"] == predicted["race"]),
        "race_accuracy_without_others": {
            "of_all": float((predicted["predicted_race"] == predicted["race"])[not_others].mean()),
            "of_found": float((found_not_others["predicted_race"] == found_not_others["race"]).mean())},
        "gender_by_race_group": [
            {"race_group": name, "images": len(group), "found": int(group["found"].sum()),
             "gender_accuracy_of_found": float((group["predicted_gender"] == group["gender"])[group["found"]].mean())}
            for name, group in predicted.groupby("race_group", sort=True)],
    }
    return metrics


def evaluate_photos(model_type: str | None, model_path: Path | None, set_path: Path, split: str = "test",
                    detector: str = "yunet", stats_dir: Path | None = paths.STATS_DIR, tta: bool = False,
                    precision: str = DEFAULT_PRECISION) -> dict:
    """Evaluate a saved model on a labelled photo set (FairFace-style CSV) exactly as `run` analyses photos:
    the default detector, the model's crop, the compiled model at `precision` (`--tta` when tta). The part
    evaluated is the set's content-hash split."""
    import hashlib

    from face_analysis import labelled_sets
    from face_analysis.analyzer import FaceAnalyzer

    if stats_dir is not None:
        sources = output_guard.InputSet([set_path])
        output_guard.check_stats_folder("--stats_dir", stats_dir, sources, paths.STATS_ENTRIES)
    analyzer = FaceAnalyzer(model_type, model_path, detector, min_face=0, tta=tta, precision=precision)
    labelled = labelled_sets.load_labelled_set(set_path)
    digests = [hashlib.sha256(labelled.images[name]).hexdigest() for name in labelled.frame["name"]]
    frame = labelled.frame.assign(sha256=digests)
    frame = utk_data.assign_splits(frame.drop_duplicates("sha256"))
    if split != "all":
        frame = frame[frame["split"] == split]
    if frame.empty:
        raise utk_data.DataError(f"{set_path}: no photo in its {split!r} part")
    outputs = []
    for start in tqdm(range(0, len(frame), 32), desc="evaluating photos", unit="batch"):
        names = frame["name"].iloc[start:start + 32]
        outputs += _largest_face_predictions(analyzer, [_decoded_or_none(labelled.images[n], n) for n in names])
    predicted = frame.reset_index(drop=True).assign(
        found=[o is not None for o in outputs],
        predicted_age=[o.age if o else np.nan for o in outputs],
        predicted_gender=[GENDERS.index(o.gender) if o else -1 for o in outputs],
        predicted_race=[RACES.index(o.race) if o else -1 for o in outputs])
    source = labelled_sets.label_csv(set_path).parent.name.lower()
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


def photo_tables(stats_dir: Path) -> list[str]:
    """statistics/README.md lines for the labelled photo sets evaluated into stats_dir (e.g. FairFace)."""
    found = sorted(Path(stats_dir).glob("model_metrics/*_model_stats/*/metrics.json"))
    by_source: dict[str, list[dict]] = {}
    for path in found:
        metrics = json.loads(path.read_text())
        by_source.setdefault(metrics["source"], []).append(metrics)
    lines = []
    for source, rows in by_source.items():
        lines += ["", f"## {source}: photos through `run`'s path", "",
                  f"The {rows[0]['split']} part of `{source}` (content-hash split), each photo analysed as `run` "
                  "does it (default detector, the model's crop, the compiled int8 model); a photo whose face is "
                  "not found counts as wrong. "
                  "Produced by `python src/main.py evaluate --model_type TYPE --data_path path/to/" + source + "`.", "",
                  "| model | photos | faces not found | age group (9) | within one group | gender | race (5) "
                  "| race without others | gender, worst / best race group (found) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for m in rows:
            by_group = [r["gender_accuracy_of_found"] for r in m["gender_by_race_group"]]
            worst_best = f"{_percent(min(by_group))} / {_percent(max(by_group))}"
            lines.append(f"| {m['model_type']} | {m['images']} | {m['faces_not_found']} | "
                         f"{_percent(m['age_group_accuracy']['of_all'])} | "
                         f"{_percent(m['age_group_within_one']['of_all'])} | "
                         f"{_percent(m['gender_accuracy']['of_all'])} | {_percent(m['race_accuracy']['of_all'])} | "
                         f"{_percent(m['race_accuracy_without_others']['of_all'])} | {worst_best} |")
    return lines


def photo_report(metrics: dict) -> str:
    """A labelled photo set's figures as Markdown."""
    lines = [f"# {metrics['model_type']} model on the {metrics['source']} {metrics['split']} part "
             f"({metrics['images']} photos, detector {metrics['detector']}, as `run` analyses them)", "",
             f"Faces not found: {metrics['faces_not_found']} "
             f"({_percent(metrics['faces_not_found'] / metrics['images'])}).", "",
             "| figure | of all photos (not found = wrong) | of photos whose face was found |", "| --- | --- | --- |"]
    for key, title in (("age_group_accuracy", "age group (9)"), ("age_group_within_one", "age group, within one"),
                       ("gender_accuracy", "gender"), ("race_accuracy", "race (5 classes)"),
                       ("race_accuracy_without_others", "race, without \"others\"")):
        lines.append(f"| {title} | {_percent(metrics[key]['of_all'])} | {_percent(metrics[key]['of_found'])} |")
    lines += ["", "## Gender accuracy by race group (faces found)", "",
              "| race group | photos | found | gender accuracy |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {r['race_group']} | {r['images']} | {r['found']} | {_percent(r['gender_accuracy_of_found'])} |"
              for r in metrics["gender_by_race_group"]]
    return "\n".join(lines) + "\n"


def evaluate_sources(model_type: str | None, model_path: Path | None, data_paths, split: str = "test",
                     detector: str = "yunet", stats_dir: Path | None = paths.STATS_DIR,
                     tta: bool = False, precision: str = DEFAULT_PRECISION) -> dict[str, dict]:
    """Figures per source: UTKFace-named chips together (`evaluate`), each labelled photo set through the
    detector as `run` sees it (`evaluate_photos`)."""
    from face_analysis import labelled_sets

    chips, photo_sets = labelled_sets.split_sources(data_paths)
    results = {}
    if chips:
        results["utkface"] = evaluate(model_type, model_path, chips, split, stats_dir, tta=tta, precision=precision)
    for path in photo_sets:
        metrics = evaluate_photos(model_type, model_path, path, split, detector, stats_dir, tta, precision)
        results[metrics["source"]] = metrics
    return results


def headline(metrics: dict) -> str:
    """One line of an evaluation's main figures."""
    if "age_mae" in metrics:
        return (f"{metrics['model_type']} on {metrics['images']} UTKFace images: age MAE {metrics['age_mae']:.2f} "
                f"years, gender {metrics['gender_accuracy']:.1%}, race {metrics['race_accuracy']:.1%}")
    return (f"{metrics['model_type']} on {metrics['images']} {metrics['source']} photos: age group "
            f"{metrics['age_group_accuracy']['of_all']:.1%}, gender {metrics['gender_accuracy']['of_all']:.1%}, "
            f"race {metrics['race_accuracy']['of_all']:.1%}, faces not found {metrics['faces_not_found']}")

