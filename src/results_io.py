"""Presenting results: one-line summaries, annotated images, and JSON / CSV files written incrementally."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from analyzer import FacePrediction, ImageResult

CSV_COLUMNS = ["image", "frame", "track_id", "x", "y", "w", "h", "age", "age_std", "gender",
               "gender_probability", "race", "race_probability"]


def face_label(face: FacePrediction) -> str:
    return f"{face.age:.0f}y {face.gender} {face.race}"


def describe_face(face: FacePrediction) -> str:
    """A readable line: box, age with its spread, gender and race with their probabilities."""
    x, y, w, h = face.box
    return (f"face at ({x},{y}) {w}x{h}: age {face.age:.0f} (±{face.age_std:.0f}), "
            f"{face.gender} ({face.gender_probability:.0%}), {face.race} ({face.race_probabilities[face.race]:.0%})")


def draw_faces(image: np.ndarray, faces: list[FacePrediction]) -> np.ndarray:
    """A copy of an RGB (or BGR) image with a box and a label on every face."""
    out = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 255, 0), thickness)
        text = face_label(face) + (f" #{face.track_id}" if face.track_id is not None else "")
        scale = max(0.4, w / 250)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 4)
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), (0, 255, 0), -1)
        cv2.putText(out, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    return out


def open_output(path: str | Path):
    """A text stream for a results file; "-" is stdout. Fails early with a clear error."""
    if str(path) == "-":
        return sys.stdout
    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"{path}: folder {path.parent} does not exist")
    return open(path, "w", encoding="utf-8", newline="")


class JsonListWriter:
    """Writes a JSON list one item at a time, flushed after each, so results survive a crash."""

    def __init__(self, path: str | Path):
        self.stream, self.count = open_output(path), 0
        self.stream.write("[")

    def write(self, item: dict) -> None:
        self.stream.write(("," if self.count else "") + "\n" + json.dumps(item, ensure_ascii=False))
        self.count += 1
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n]\n")
        self.stream.flush()
        if self.stream is not sys.stdout:
            self.stream.close()


class CsvWriter:
    """Writes one CSV row per face, flushed after each image or frame."""

    def __init__(self, path: str | Path):
        self.stream = open_output(path)
        self.writer = csv.writer(self.stream)
        self.writer.writerow(CSV_COLUMNS)

    def write(self, result: ImageResult, frame: int | None = None) -> None:
        for face in result.faces:
            self.writer.writerow([result.image, "" if frame is None else frame,
                                  "" if face.track_id is None else face.track_id, *face.box, face.age, face.age_std,
                                  face.gender, face.gender_probability, face.race,
                                  face.race_probabilities[face.race]])
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()


class ResultWriters:
    """The --json and --csv outputs of a run together; either may be absent. Use it as a context manager."""

    def __init__(self, json_path=None, csv_path=None):
        self.json = JsonListWriter(json_path) if json_path else None
        try:
            self.csv = CsvWriter(csv_path) if csv_path else None
        except OSError:
            self.close()
            raise
        self.to_stdout = "-" in (str(json_path), str(csv_path))

    def write(self, result: ImageResult, frame: int | None = None) -> None:
        if self.json:
            self.json.write(result.to_json() if frame is None else {"frame": frame, **result.to_json()})
        if self.csv:
            self.csv.write(result, frame)

    def close(self) -> None:
        for writer in (self.json, self.csv):
            if writer:
                writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
