"""The figures of an evaluation: per group (age bucket, race, gender) on UTKFace chips, per age group and
race group on labelled photo sets, and the one-line headline."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis.io.writers import PROBABILITY_COLUMNS
from face_analysis.labels import AGE_BUCKETS, GENDERS, RACES, age_bucket
from face_analysis.results import AGES, age_group_matrix

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


def probability_columns(outputs: dict) -> dict[str, np.ndarray]:
    """The columns of `run --csv`'s probabilities (io.writers.PROBABILITY_COLUMNS: race 5, gender 2, age group
    9) from the model's softmax outputs, rounded as run rounds them: what `calibrate` and benchmarks/audit.py
    read from the predictions."""
    values = np.concatenate([np.asarray(outputs["race"], np.float64), np.asarray(outputs["gender"], np.float64),
                             age_group_matrix(outputs["age"])], axis=1).round(4)
    return dict(zip(PROBABILITY_COLUMNS, values.T))


def prediction_frame(frame: pd.DataFrame, outputs: dict) -> pd.DataFrame:
    """The labels with the predicted age, gender and race of each image, and the probabilities."""
    return frame.assign(
        predicted_age=outputs["age"].astype(np.float64) @ AGES,
        predicted_gender=outputs["gender"].argmax(1), predicted_race=outputs["race"].argmax(1),
        bucket=frame["age"].map(age_bucket), **probability_columns(outputs)).reset_index(drop=True)


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
    from sklearn.metrics import classification_report, confusion_matrix  # (not needed for calibrate's predictions)

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


def gender_spread(rows: list[dict]) -> tuple[float, float]:
    """(worst, best) gender accuracy among the groups of a per-race table."""
    accuracies = [row["gender_accuracy"] for row in rows]
    return min(accuracies), max(accuracies)


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


def headline(metrics: dict) -> str:
    """One line of an evaluation's main figures."""
    if "age_mae" in metrics:
        return (f"{metrics['model_type']} on {metrics['images']} UTKFace images: age MAE {metrics['age_mae']:.2f} "
                f"years, gender {metrics['gender_accuracy']:.1%}, race {metrics['race_accuracy']:.1%}")
    return (f"{metrics['model_type']} on {metrics['images']} {metrics['source']} photos: age group "
            f"{metrics['age_group_accuracy']['of_all']:.1%}, gender {metrics['gender_accuracy']['of_all']:.1%}, "
            f"race {metrics['race_accuracy']['of_all']:.1%}, faces not found {metrics['faces_not_found']}")
