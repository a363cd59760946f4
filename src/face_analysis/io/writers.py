"""Presenting results: one-line summaries, annotated images, and JSON / CSV files written incrementally."""
from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from face_analysis.errors import UsageError
from face_analysis.labels import RACES
from face_analysis.results import FacePrediction, ImageResult

CSV_COLUMNS = ["image", "frame", "track_id", "x", "y", "w", "h", "age", "age_std", "gender",
               "gender_probability", "race", "race_probability", "detection_score", "face_size", "too_small"]
BOX_COLOUR, SMALL_COLOUR, TEXT_COLOUR = (0, 255, 0), (255, 200, 0), (0, 0, 0)  # RGB
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE, MAX_FONT_SCALE = 0.3, 3.0  # 0.3: about 7 px high, the smallest readable Hershey text


def face_label(face: FacePrediction, short: bool = False) -> str:
    """"32y male white", or "32 M W" for small faces; "" for a face too small to analyse."""
    if face.too_small:
        return ""
    if short:
        return f"{face.age:.0f} {face.gender[0].upper()} {face.race[0].upper()}"
    return f"{face.age:.0f}y {face.gender} {face.race}"


def describe_face(face: FacePrediction) -> str:
    """A readable line: box, age with its spread, gender and race with their probabilities."""
    x, y, w, h = face.box
    where = f"face at ({x},{y}) {w}x{h}"
    if face.too_small:
        return f"{where}: too small to analyse ({face.face_size} px)"
    return (f"{where}: age {face.age:.0f} (±{face.age_std:.0f}), "
            f"{face.gender} ({face.gender_probability:.0%}), {face.race} ({face.race_probabilities[face.race]:.0%})")


def _overlaps(a, b) -> bool:
    """Whether two (x0, y0, x1, y1) rectangles overlap."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_spot(box, size, image_shape, taken) -> tuple[int, int, int, int]:
    """Where a label of `size` (w, h) goes: above the box, else below it, else inside its top, whichever
    first stays in the image and covers no other face or label; above when none does."""
    x, y, w, h = box
    tw, th = size
    height, width = image_shape[:2]
    left = min(max(0, x), max(0, width - tw))
    candidates = [(left, y - th), (left, y + h), (left, y)]
    for cx, cy in candidates:
        rect = (cx, cy, cx + tw, cy + th)
        if cy >= 0 and cy + th <= height and not any(_overlaps(rect, other) for other in taken):
            return rect
    cy = min(max(0, y - th), max(0, height - th))
    return left, cy, left + tw, cy + th


def _fitted_label(face: FacePrediction) -> tuple[str, float]:
    """The label and the font scale for a face: the scale follows the face's width, and the full label gives
    way to the short one when it would reach far beyond the face, then shrinks (not below a readable size)."""
    w = face.box[2]
    scale = min(max(w / 170, MIN_FONT_SCALE), MAX_FONT_SCALE)
    text = face_label(face)
    if cv2.getTextSize(text, FONT, scale, 1)[0][0] > 1.6 * w:
        text = face_label(face, short=True)
        width = cv2.getTextSize(text, FONT, scale, 1)[0][0]
        scale = max(MIN_FONT_SCALE, min(scale, scale * 1.4 * w / width))
    if face.track_id is not None:
        text += f" #{face.track_id}"
    return text, scale


def draw_faces(image: np.ndarray, faces: list[FacePrediction], alpha: float = 0.65) -> np.ndarray:
    """A copy of an RGB image with a box on every face and a label where it covers no other face.

    Text size and line width follow each face's size, so labels stay readable from 400 px thumbnails to
    4000 px photos and do not spill over the neighbours in a crowd; small faces get a shortened label, faces
    too small to analyse a thin box and none. Labels sit on a semi-opaque background."""
    out = image.copy()
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (f.box for f in faces)]
    taken = list(boxes)
    labels = []
    for face, rect in zip(faces, boxes):
        thickness = max(1, round(face.box[2] / 90))
        if face.too_small:
            cv2.rectangle(out, rect[:2], rect[2:], SMALL_COLOUR, 1)
            continue
        cv2.rectangle(out, rect[:2], rect[2:], BOX_COLOUR, thickness)
        text, scale = _fitted_label(face)
        weight = max(1, round(scale * 1.6))
        (tw, th), base = cv2.getTextSize(text, FONT, scale, weight)
        pad = max(2, round(th / 4))
        spot = _label_spot(face.box, (tw + 2 * pad, th + base + 2 * pad), image.shape, taken)
        taken.append(spot)
        labels.append((spot, text, scale, weight, base, pad))
    if labels:
        overlay = out.copy()
        for spot, *_ in labels:
            cv2.rectangle(overlay, spot[:2], (spot[2] - 1, spot[3] - 1), BOX_COLOUR, -1)
        out = cv2.addWeighted(overlay, alpha, out, 1 - alpha, 0)
        for (x0, y0, _, y1), text, scale, weight, base, pad in labels:
            cv2.putText(out, text, (x0 + pad, y1 - base - pad), FONT, scale, TEXT_COLOUR, weight, cv2.LINE_AA)
    return out


def open_output(path: str | Path):
    """A text stream for a results file; "-" is stdout. Fails early with a clear error; the file is locked
    while written, so a second run writing the same file is refused instead of interleaving with this one."""
    if str(path) == "-":
        return sys.stdout
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a file")
    if not path.parent.is_dir():
        raise OSError(f"{path}: folder {path.parent} does not exist")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise UsageError(f"{path}: another run is writing this file; wait for it or choose another file") from None
    os.ftruncate(descriptor, 0)
    return os.fdopen(descriptor, "w", encoding="utf-8", newline="")


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
            race_probability = face.race_probabilities[face.race] if face.race else None
            row = [result.image, frame, face.track_id, *face.box, face.age, face.age_std, face.gender,
                   face.gender_probability, face.race, race_probability, face.detection_score, face.face_size,
                   int(face.too_small)]
            self.writer.writerow(["" if value is None else value for value in row])
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()


PARQUET_PREFIX = "results-"


def parquet_schema():
    """One row per image, the fields of `run --json`'s objects; faces a nested list."""
    import pyarrow as pa

    face = pa.struct([
        ("box", pa.list_(pa.int64())), ("age", pa.float64()), ("age_std", pa.float64()), ("gender", pa.string()),
        ("gender_probability", pa.float64()), ("race", pa.string()),
        ("race_probabilities", pa.struct([(race, pa.float64()) for race in RACES])),
        ("detection_score", pa.float64()), ("face_size", pa.int64()), ("too_small", pa.bool_())])
    return pa.schema([("image", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                      ("faces", pa.list_(face)), ("error", pa.string())])


def parquet_files(folder: str | Path) -> list[Path]:
    """The complete result files a run wrote in a --parquet folder (those still being written are hidden)."""
    return sorted(Path(folder).glob(f"{PARQUET_PREFIX}*.parquet"))


def parquet_result_files(folder: str | Path) -> Iterator[list[dict]]:
    """The rows of a --parquet folder as `run --json`'s objects, one result file at a time (what --resume
    reads: a folder of millions of rows never sits in memory at once)."""
    import pyarrow.parquet as pq

    for path in parquet_files(folder):
        yield pq.read_table(path, schema=parquet_schema()).to_pylist()


def read_parquet_results(folder: str | Path) -> list[dict]:
    """Every row of a --parquet folder, as `run --json`'s objects."""
    return [row for rows in parquet_result_files(folder) for row in rows]


class ParquetWriter:
    """Results as Parquet files in a folder, `rows_per_file` rows a file (or what `seconds_per_file` gathered):
    each file is written under a hidden name and then renamed, so a run that is stopped or killed leaves only
    complete files, and `--resume` knows from them which images are done."""

    def __init__(self, folder: str | Path, rows_per_file: int = 10_000, seconds_per_file: float = 60.0):
        self.folder, self.rows_per_file, self.seconds_per_file = Path(folder), rows_per_file, seconds_per_file
        self.folder.mkdir(parents=True, exist_ok=True)
        self.run = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.rows, self.files, self.started = [], 0, time.monotonic()

    def write(self, row: dict) -> None:
        if not self.rows:
            self.started = time.monotonic()
        self.rows.append(row)
        if len(self.rows) >= self.rows_per_file or time.monotonic() - self.started >= self.seconds_per_file:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"{PARQUET_PREFIX}{self.run}-{self.files:05d}.parquet"
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(self.rows, schema=parquet_schema()), tmp)
        os.replace(tmp, self.folder / name)
        self.rows, self.files = [], self.files + 1

    def close(self) -> None:
        self.flush()


class ResultWriters:
    """The --json, --csv and --parquet outputs of a run together; any may be absent. Use it as a context
    manager."""

    def __init__(self, json_path=None, csv_path=None, parquet_dir=None, parquet_rows: int = 10_000):
        self.json = self.csv = self.parquet = None
        try:
            self.json = JsonListWriter(json_path) if json_path else None
            self.csv = CsvWriter(csv_path) if csv_path else None
            self.parquet = ParquetWriter(parquet_dir, parquet_rows) if parquet_dir else None
        except BaseException:
            self.close()  # the JSON file, if opened, is closed as a valid empty list and unlocked
            raise
        self.to_stdout = "-" in (str(json_path), str(csv_path))

    def write(self, result: ImageResult, frame: int | None = None, to_parquet: bool = True) -> None:
        """Every output of one result (to_parquet=False: not --parquet, which holds it already); a stop signal
        (SIGTERM, SIGHUP, Ctrl-C) arriving meanwhile is held back until all are written, so that the JSON and
        the CSV always hold the same images."""
        held = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        row = result.to_json()
        try:
            if self.json:
                self.json.write(row if frame is None else {"frame": frame, **row})
            if self.csv:
                self.csv.write(result, frame)
            if self.parquet and to_parquet:
                self.parquet.write(row)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def close(self) -> None:
        for writer in (self.json, self.csv, self.parquet):
            if writer:
                writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
