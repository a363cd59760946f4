"""Plots of the data and of a model's evaluation, written as PNG files."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from face_analysis.labels import AGE_BUCKETS, GENDERS, RACES, age_bucket  # noqa: E402


def _save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_distributions(frame: pd.DataFrame, out_dir: Path, title: str) -> None:
    """Age, gender and race distributions of a labelled frame, plus their counts as CSV."""
    out_dir = Path(out_dir)
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].hist(frame["age"], bins=np.arange(0, 118, 2), color="tab:blue")
    axes[0].set(title=f"Age ({len(frame)} images)", xlabel="age (years)", ylabel="images")
    for ax, column, names in ((axes[1], "gender", GENDERS), (axes[2], "race", RACES)):
        counts = frame[column].value_counts().reindex(range(len(names)), fill_value=0)
        ax.bar(names, counts.to_numpy(), color="tab:orange")
        ax.set(title=column.capitalize(), ylabel="images")
    figure.suptitle(title)
    _save(figure, out_dir / "distributions.png")
    buckets = frame["age"].map(age_bucket).value_counts().reindex(AGE_BUCKETS, fill_value=0)
    rows = [("age", b, int(n)) for b, n in buckets.items()]
    rows += [("gender", GENDERS[i], int((frame["gender"] == i).sum())) for i in range(len(GENDERS))]
    rows += [("race", RACES[i], int((frame["race"] == i).sum())) for i in range(len(RACES))]
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["label", "value", "images"]).to_csv(out_dir / "counts.csv", index=False)


def plot_confusion(matrix: np.ndarray, names, path: Path) -> None:
    """A confusion matrix with counts, rows the true class."""
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.2 * len(names) + 1.5))
    ConfusionMatrixDisplay(matrix, display_labels=list(names)).plot(ax=ax, colorbar=False, values_format="d")
    ax.set_title(f"{path.stem.split('_')[0].capitalize()}: accuracy {np.trace(matrix) / max(1, matrix.sum()):.1%}")
    _save(figure, path)


def plot_age_scatter(predicted: pd.DataFrame, path: Path) -> None:
    """Predicted against true age, with the diagonal."""
    figure, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(predicted["age"], predicted["predicted_age"], s=4, alpha=0.3)
    ax.plot([0, 116], [0, 116], color="tab:red", linewidth=1)
    mae = (predicted["predicted_age"] - predicted["age"]).abs().mean()
    ax.set(xlabel="true age", ylabel="predicted age", title=f"Age: MAE {mae:.2f} years", xlim=(0, 117), ylim=(0, 117))
    _save(figure, path)


def plot_mae_by_bucket(by_bucket: list[dict], overall: float, path: Path) -> None:
    """Age MAE per age bucket, with the overall MAE and twice it as reference lines."""
    figure, ax = plt.subplots(figsize=(8, 4))
    names = [row["bucket"] for row in by_bucket]
    ax.bar(names, [row["age_mae"] or 0 for row in by_bucket], color="tab:blue")
    ax.axhline(overall, color="tab:green", label=f"overall {overall:.2f}")
    ax.axhline(2 * overall, color="tab:red", linestyle="--", label="twice overall")
    ax.set(xlabel="true age", ylabel="MAE (years)", title="Age error by age bucket")
    ax.legend()
    _save(figure, path)


def plot_prediction_grid(images: np.ndarray, predicted: pd.DataFrame, path: Path, seed: int = 0) -> None:
    """A 4x4 grid of faces with predicted and true labels."""
    count = min(16, len(images))
    picks = np.random.default_rng(seed).choice(len(images), count, replace=False)
    figure, axes = plt.subplots(4, 4, figsize=(12, 13))
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks):
        row = predicted.iloc[i]
        ax.imshow(images[i])
        ax.set_title(f"pred {row['predicted_age']:.0f} {GENDERS[row['predicted_gender']]} {RACES[row['predicted_race']]}\n"
                     f"true {row['age']} {GENDERS[row['gender']]} {RACES[row['race']]}", fontsize=9)
    _save(figure, path)


def plot_training_curves(history: pd.DataFrame, path: Path) -> None:
    """Loss and main metric of each head per epoch, training and validation, across training phases."""
    # distillation trains on probability targets, so Keras names those metrics categorical_accuracy
    history = history.reset_index(drop=True).rename(columns=lambda c: c.replace("categorical_accuracy", "accuracy"))
    x = np.arange(1, len(history) + 1)
    panels = [("age_loss", "age loss"), ("age_years_mae", "age MAE (years)"), ("gender_accuracy", "gender accuracy"),
              ("race_accuracy", "race accuracy")]
    figure, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, (key, title) in zip(axes, panels):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(x, history[prefix + key], style, label="validation" if prefix else "training")
        if "phase" in history and history["phase"].nunique() > 1:
            for boundary in np.flatnonzero(history["phase"].to_numpy()[1:] != history["phase"].to_numpy()[:-1]):
                ax.axvline(boundary + 1.5, color="grey", linewidth=0.8)
        ax.set(title=title, xlabel="epoch")
        ax.legend()
    _save(figure, path)
