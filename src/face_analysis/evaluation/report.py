"""An evaluation written out: metrics.json, CSV tables, plots, report.md per model, and the statistics
README over every model evaluated."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from face_analysis import paths
from face_analysis.evaluation import plots
from face_analysis.evaluation.metrics import CHILDHOOD_END, gender_spread
from face_analysis.labels import GENDERS, MODEL_TYPES, RACES

log = logging.getLogger(__name__)


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
                  "Produced by `python src/main.py evaluate --model_type TYPE --data_path PATH...` with this set's "
                  "folder among the paths (a second set whose folder has the same name is called `NAME-2`).", "",
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
