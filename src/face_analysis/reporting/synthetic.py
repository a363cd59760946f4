"""A simulated classifier with known errors, for the tests and benchmarks/audit.py: labelled faces of chosen
class shares with "probabilities" as the model would give them.

Each head scores the true class higher, mixed with noise and with a similarity between classes (others looks
like white and indian, neighbouring age groups like each other), leans toward classes by a fixed bias (a
training mix) and is over-confident (its probabilities are too sharp). Race is noisier for women, so a
collection of women breaks the assumption the correction rests on, as in real data. The distribution of the
probabilities given the true classes never depends on the shares (what quantification assumes)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from face_analysis.reporting.attributes import ATTRIBUTES, csv_column

RACE_SIMILARITY = np.array([  # white, black, asian, indian, others
    [1.0, 0.0, 0.1, 0.2, 0.6],
    [0.0, 1.0, 0.1, 0.3, 0.3],
    [0.1, 0.1, 1.0, 0.1, 0.4],
    [0.2, 0.3, 0.1, 1.0, 0.6],
    [0.6, 0.3, 0.4, 0.6, 1.0]])
AGE_SIMILARITY = np.exp(-np.abs(np.subtract.outer(np.arange(9), np.arange(9))) * 1.2)
HEADS = {  # separation of the true class, noise, over-confidence, bias toward classes (log scale)
    "race": (2.9, 1.0, 1.8, np.array([0.5, -0.2, 0.0, -0.3, 0.4])),
    "gender": (1.9, 1.0, 1.6, np.array([0.25, -0.25])),
    "age_group": (1.6, 0.9, 1.5, np.array([-0.6, -0.3, 0.0, 0.5, 0.4, 0.1, -0.1, -0.4, -0.8]))}
SIMILARITY = {"race": RACE_SIMILARITY, "gender": np.eye(2), "age_group": AGE_SIMILARITY}
WOMEN_RACE_NOISE = 1.3  # race noise for women, relative to men's
# the shares of a FairFace-like pool: races balanced, genders even, ages mostly 20-49
POOL_SHARES = {"race": np.full(5, 0.2), "gender": np.array([0.5, 0.5]),
               "age_group": np.array([0.02, 0.12, 0.11, 0.30, 0.22, 0.12, 0.07, 0.03, 0.01])}


def head_probabilities(attribute: str, labels: np.ndarray, rng: np.random.Generator,
                       noise_scale: np.ndarray | float = 1.0, lean: np.ndarray | float = 0.0) -> np.ndarray:
    """Simulated softmax outputs of one head for faces of the given true classes (lean: added to the scores)."""
    separation, noise, sharpness, bias = HEADS[attribute]
    k = len(ATTRIBUTES[attribute])
    scores = separation * SIMILARITY[attribute][labels] + bias + lean
    scores = scores + noise * np.asarray(noise_scale).reshape(-1, 1) * rng.standard_normal((len(labels), k))
    scores = sharpness * scores
    scores -= scores.max(1, keepdims=True)
    probs = np.exp(scores)
    return probs / probs.sum(1, keepdims=True)


def simulate(n: int, seed: int = 0, shares: dict[str, np.ndarray] | None = None,
             elder_lean: float = 0.0) -> pd.DataFrame:
    """n labelled faces: true "race", "gender", "age_group" (class indices, drawn independently with the
    given shares, default POOL_SHARES) and the probability columns of `run`'s CSV. elder_lean: added to the
    race head's score of "white" for faces of 60 and over (a model whose race errors differ with age)."""
    rng = np.random.default_rng(seed)
    shares = {**POOL_SHARES, **(shares or {})}
    labels = {a: rng.choice(len(ATTRIBUTES[a]), size=n, p=np.asarray(shares[a]) / np.sum(shares[a]))
              for a in ATTRIBUTES}
    columns = {a: labels[a] for a in ATTRIBUTES}
    for attribute in ATTRIBUTES:
        scale = np.where(labels["gender"] == 1, WOMEN_RACE_NOISE, 1.0) if attribute == "race" else 1.0
        lean = 0.0
        if attribute == "race":
            lean = np.outer(labels["age_group"] >= 7, np.eye(len(ATTRIBUTES["race"]))[0]) * elder_lean
        probs = head_probabilities(attribute, labels[attribute], rng, scale, lean)
        for i, name in enumerate(ATTRIBUTES[attribute]):
            columns[csv_column(attribute, name)] = probs[:, i].round(4)
    return pd.DataFrame(columns)


def results_of(frame: pd.DataFrame, model: str | None = "facenet", too_small: int = 0, no_face: int = 0,
               faces_per_image: int = 3) -> list[dict]:
    """`run --json`'s result objects holding the faces of a simulated frame (plus faces too small and images
    without a face), `faces_per_image` faces an image, side by side (each face its own box)."""
    faces = []
    for row in frame.to_dict("records"):
        face = {"box": [64 * (len(faces) % faces_per_image), 0, 64, 64], "face_size": 64, "too_small": False,
                "detection_score": 0.9}
        for attribute, field_name in (("race", "race_probabilities"), ("age_group", "age_group_probabilities")):
            face[field_name] = {name: row[csv_column(attribute, name)] for name in ATTRIBUTES[attribute]}
        female = row[csv_column("gender", "female")]
        face["gender"] = "female" if female >= 0.5 else "male"
        face["gender_probability"] = round(max(female, 1 - female), 4)
        face["race"] = max(face["race_probabilities"], key=face["race_probabilities"].get)
        face["age"], face["age_std"] = 30.0, 5.0
        faces.append(face)
    faces += [{"box": [64 * ((len(faces) + i) % faces_per_image), 0, 10, 10], "face_size": 10, "too_small": True,
               "age": None, "age_std": None, "gender": None, "gender_probability": None, "race": None,
               "race_probabilities": None} for i in range(too_small)]
    results = [{"image": f"img{i // faces_per_image:06d}.jpg", "width": 640, "height": 480,
                "faces": faces[i:i + faces_per_image], "error": None} for i in range(0, len(faces), faces_per_image)]
    results += [{"image": f"empty{i}.jpg", "width": 640, "height": 480, "faces": [], "error": None}
                for i in range(no_face)]
    if model:
        for result in results:
            result["model"] = model
    return results
