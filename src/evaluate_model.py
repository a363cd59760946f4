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

import build_model
import model_store
import output_guard
import paths
import plots
import train_model
import utk_data
from analyzer import AGES
from labels import AGE_BUCKETS, GENDERS, RACES, age_bucket

log = logging.getLogger(__name__)
CHILDHOOD_END = 10  # per-race figures are also reported for this age and over


def predict(model, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Softmax outputs of a model on uint8 images, batch by batch with a progress bar."""
    outputs = {"age": [], "gender": [], "race": []}
    for start in tqdm(range(0, len(images), batch_size), desc="evaluating", unit="batch"):
        batch = model.predict_on_batch(np.asarray(images[start:start + batch_size], np.float32))
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
    lines = ["# Statistics of the shipped models", "",
             "Every figure here comes from the saved, leak-free test split (20 % of the de-duplicated UTKFace images,",
             "chosen by a hash of each image's content; no byte-identical image is on two sides). Predictions are",
             "the average over each face and its mirror image, as `run` makes them. Produced by:", "", "```bash",
             "python src/main.py evaluate --model_type facenet --data_path path/to/UTKFace",
             "python src/main.py evaluate --model_type normal --data_path path/to/UTKFace", "```", "",
             "| model | test images | age MAE (years) | gender accuracy | race accuracy (5 classes) "
             f"| gender accuracy, worst / best race | the same, ages {CHILDHOOD_END}+ |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model_type in build_model.MODEL_TYPES:
        path = Path(stats_dir) / "model_metrics" / f"{model_type}_model_stats" / "metrics.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        spreads = [" / ".join(_percent(v) for v in gender_spread(m[key])) if m.get(key) else "not measured"
                   for key in ("by_race", "by_race_age_10_plus")]  # not measured: written by an older version
        lines.append(f"| {model_type} | {m['images']} | {m['age_mae']:.2f} | {_percent(m['gender_accuracy'])} | "
                     f"{_percent(m['race_accuracy'])} | {spreads[0]} | {spreads[1]} |")
    lines += ["", "Per age bucket, per race and per gender, with precision, recall and F1 per class, in each model's",
              "`model_metrics/<type>_model_stats/report.md`. Those folders also hold `metrics.json`, the CSV tables",
              "and the plots: `training_curves.png`, `gender_confusion.png`, `race_confusion.png`,",
              "`age_predicted_vs_true.png`, `age_mae_by_bucket.png`, `prediction_grid.png`.",
              "`data_stats/raw_data_stats/` shows the age, gender and race distributions of all de-duplicated images,",
              "`data_stats/adjusted_data_stats/` those of the training part after rebalancing (validation and test keep",
              "their natural distribution). `evaluate` also writes every test prediction to `predictions.csv`, which",
              "is kept out of git because it lists UTKFace labels (the licence forbids redistributing the data)."]
    path = Path(stats_dir) / "README.md"
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
             stats_dir: Path | None = paths.STATS_DIR, use_cache: bool = True) -> dict:
    """Evaluate a saved model; writes the report under stats_dir/model_metrics/<type>_model_stats/."""
    data_paths = data_paths or paths.DEFAULT_DATA_PATHS
    if stats_dir is not None:
        output_guard.check_stats_folder("--stats_dir", stats_dir, output_guard.InputSet(data_paths), paths.STATS_ENTRIES)
    directory = model_store.resolve_model_dir(model_type, model_path)
    model, info = model_store.load_model(directory, model_type)
    model_type = info["model_type"]
    split_table = pd.read_csv(directory / "split.csv", dtype={"sha256": str})  # checked by load_model
    data = train_model.prepare_data(data_paths, info["input_size"], use_cache)
    rows = select_rows(data.frame, split_table, split)
    if len(rows) == 0:
        raise utk_data.DataError(f"no image of the {split!r} split found in the data given")
    frame, images = data.frame.iloc[rows], data.images[rows]
    predicted = prediction_frame(frame, predict(build_model.inference_model(model), images))
    metrics = {"model_type": model_type, "split": split, **compute_metrics(predicted)}
    if stats_dir is not None:
        history_text = (directory / "history.csv").read_text()
        history = pd.read_csv(io.StringIO(history_text)) if history_text.strip() else None
        out_dir = Path(stats_dir) / "model_metrics" / f"{model_type}_model_stats"
        write_report(metrics, predicted, images, history, out_dir)
        write_statistics_readme(stats_dir)
        log.info("evaluation report written to %s", out_dir)
    return metrics
