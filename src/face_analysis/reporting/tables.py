"""`run`'s CSV (one row a face) and Parquet (one row an image, faces a nested list) results as chunks of
per-face probability arrays, with each face's key (its image and box), its person (`run --people`) and the faces
and images left out.

A CSV whose last row has no line end (a run stopped while writing it) is read without that row, with a
note; a CSV separated by another character than commas is refused in one line."""
from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from face_analysis.labels import GENDERS
from face_analysis.reporting.attributes import ATTRIBUTES, MODEL_FIELD, PROBABILITY_FIELDS, ReportError, csv_column
from face_analysis.reporting.reading import REBUILD_HINT, FaceChunk, checked, face_keys, face_sizes, person_numbers

SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
VIDEO_FRAME = re.compile(r".#\d+$")  # the image name `run --video` gives a frame: "clip.mp4#12"
MAX_ROW_BYTES = 64 << 20  # a last line longer than this is not a row of run's cut short


class _Head(io.RawIOBase):
    """The first `size` bytes of a file, as a stream."""

    def __init__(self, path: Path, size: int):
        self.stream, self.left = open(path, "rb"), size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(min(len(buffer), self.left))
        buffer[:len(data)] = data
        self.left -= len(data)
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def _cut_row_start(path: Path, fields: int) -> int | None:
    """Where a last row cut short starts (no line end, and fewer fields than the header or its last one
    empty: `run` ends every row), else None."""
    import csv

    with open(path, "rb") as stream:
        end = stream.seek(0, io.SEEK_END)
        position, tail = end, b""
        while position > 0 and b"\n" not in tail and end - position < MAX_ROW_BYTES:
            step = min(1 << 16, position)
            position -= step
            stream.seek(position)
            tail = stream.read(step) + tail
    if not tail or tail.endswith(b"\n") or b"\n" not in tail:
        return None
    start = position + tail.rindex(b"\n") + 1
    try:
        row = next(csv.reader([tail[tail.rindex(b"\n") + 1:].decode("utf-8", "replace")]), [])
    except csv.Error:  # a quoted field left open
        return start
    return start if len(row) < fields or not row[-1] else None


def _csv_probs(path: Path, frame, header: list[str], attribute: str) -> np.ndarray:
    import pandas as pd

    columns = [csv_column(attribute, name) for name in ATTRIBUTES[attribute]]
    if all(c in header for c in columns):
        return frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    if attribute == "gender" and {"gender", "gender_probability"} <= set(header):
        p = pd.to_numeric(frame["gender_probability"], errors="coerce").to_numpy(np.float64)
        female = (frame["gender"] == "female").to_numpy()
        known = frame["gender"].isin(GENDERS).to_numpy()
        return np.where(known[:, None], np.column_stack([np.where(female, 1 - p, p), np.where(female, p, 1 - p)]),
                        np.nan)
    raise ReportError(f"{path}: no {PROBABILITY_FIELDS[attribute]}.* columns ({REBUILD_HINT})")


def _csv_chunk(path: Path, frame, header: list[str], attributes, notes: list) -> FaceChunk:
    import pandas as pd

    too_small = (frame["too_small"].fillna(0).astype(bool).to_numpy() if "too_small" in header
                 else np.zeros(len(frame), bool))
    analysed = frame[~too_small]
    probs = {a: _csv_probs(path, analysed, header, a) for a in attributes}
    boxes = (frame[list("xywh")].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
             if set("xywh") <= set(header) else np.full((len(frame), 4), np.nan))
    keys = face_keys(frame["image"] if "image" in header else [None] * len(frame), boxes)
    models = set(frame[MODEL_FIELD].dropna().astype(str)) if MODEL_FIELD in header else set()
    frames = int(frame["frame"].notna().sum()) if "frame" in header else 0
    persons = person_numbers(str(path), analysed["person"].to_numpy() if "person" in header else [None] * len(analysed))
    chunk = FaceChunk(str(path), checked(str(path), probs), keys[~too_small], {"too_small": keys[too_small]},
                      models, notes, frames, persons)
    chunk.sizes = face_sizes(boxes[~too_small])
    return chunk


def csv_chunks(path: Path, attributes, chunk_faces: int) -> Iterator[FaceChunk]:
    """The chunks of a CSV file of `run`."""
    import pandas as pd

    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        for separator, name in SEPARATORS.items():
            if len(header) == 1 and separator in header[0]:
                raise ReportError(f"{path}: its fields are separated by {name}, not commas; `report` reads the "
                                  "CSV of `run` (save it with commas)")
        cut = _cut_row_start(path, len(header))
        notes = [] if cut is None else [f"{path}: its last row is cut short (an interrupted run?) and is left out"]
        source = path if cut is None else io.BufferedReader(_Head(path, cut))
        dtype = {"image": str} if "image" in header else None
        with pd.read_csv(source, chunksize=chunk_faces, low_memory=False, dtype=dtype) as reader:
            for frame in reader:
                yield _csv_chunk(path, frame, header, attributes, notes)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError) as error:
        reason = "empty file" if isinstance(error, pd.errors.EmptyDataError) else \
            f"not a readable CSV ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
        raise ReportError(f"{path}: {reason}") from None


def _matrix(structs, attribute: str, source: str):
    import pyarrow.compute as pc

    names = ATTRIBUTES[attribute]
    try:
        return np.column_stack([pc.struct_field(structs, [name]).to_numpy(zero_copy_only=False).astype(np.float64)
                                for name in names]) if len(structs) else np.zeros((0, len(names)))
    except (KeyError, ValueError, TypeError, IndexError) as error:  # (a struct without one of the classes)
        raise ReportError(f"{source}: {PROBABILITY_FIELDS[attribute]} do not name the classes "
                          f"{', '.join(names)} ({error})") from None


def _boxes(flat, face_fields) -> np.ndarray:
    """(faces, 4) boxes of flattened faces (NaN rows where a box is missing or not four numbers)."""
    import pyarrow.compute as pc

    boxes = np.full((len(flat), 4), np.nan)
    if "box" not in face_fields or not len(flat):
        return boxes
    lists = pc.struct_field(flat, ["box"])
    values = pc.list_flatten(lists)
    if (pc.fill_null(pc.list_value_length(lists), 0).to_numpy() == 4).all() and not values.null_count:
        return values.to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)
    for i, box in enumerate(lists.to_pylist()):
        if box is not None and len(box) == 4 and None not in box:
            boxes[i] = box
    return boxes


def _gender_matrix(analysed) -> np.ndarray:
    import pyarrow.compute as pc

    gender = np.asarray(pc.struct_field(analysed, ["gender"]).to_pylist(), object)
    p = pc.struct_field(analysed, ["gender_probability"]).to_numpy(zero_copy_only=False)
    probs = np.column_stack([np.where(gender == name, p, 1 - p) for name in GENDERS]) if len(p) else np.zeros((0, 2))
    probs[~np.isin(gender, GENDERS)] = np.nan
    return probs


def parquet_chunks(path: Path, attributes, chunk_faces: int) -> Iterator[FaceChunk]:
    """The chunks of one Parquet file of `run --parquet`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = str(path)
    try:
        parquet = pq.ParquetFile(path)
        columns = parquet.schema_arrow.names
        if "faces" not in columns:
            raise ReportError(f"{source}: not the results of `run` (no \"faces\" column)")
        face_fields = {f.name for f in parquet.schema_arrow.field("faces").type.value_type}
        for attribute in attributes:
            if PROBABILITY_FIELDS[attribute] not in face_fields and not (
                    attribute == "gender" and {"gender", "gender_probability"} <= face_fields):
                raise ReportError(f"{source}: faces without {PROBABILITY_FIELDS[attribute]} ({REBUILD_HINT})")
        wanted = [c for c in ("image", "faces", "error", MODEL_FIELD) if c in columns]
        for batch in parquet.iter_batches(batch_size=max(1, chunk_faces // 4), columns=wanted):
            faces = batch.column("faces")
            lengths = pc.fill_null(pc.list_value_length(faces), 0).to_numpy()
            errors = batch.column("error").is_valid().to_numpy(zero_copy_only=False) if "error" in wanted \
                else np.zeros(len(batch), bool)
            images = np.asarray(batch.column("image").to_pylist() if "image" in wanted else [None] * len(batch),
                                object)
            flat = pc.list_flatten(faces)
            boxes = _boxes(flat, face_fields)
            face_keys_ = face_keys(images[pc.list_parent_indices(faces).to_numpy()], boxes)
            too_small = pc.fill_null(pc.struct_field(flat, ["too_small"]), False).to_numpy(zero_copy_only=False) \
                if "too_small" in face_fields else np.zeros(len(flat), bool)
            analysed = flat.filter(pa.array(~too_small))
            probs = {a: _matrix(pc.struct_field(analysed, [PROBABILITY_FIELDS[a]]), a, source)
                     if PROBABILITY_FIELDS[a] in face_fields else _gender_matrix(analysed) for a in attributes}
            empty = face_keys(images, None)
            skipped = {"too_small": face_keys_[too_small], "no_face": empty[(lengths == 0) & ~errors],
                       "failed": empty[errors]}
            models = (set(pc.unique(batch.column(MODEL_FIELD).drop_null()).to_pylist()) if MODEL_FIELD in wanted
                      else set())
            frames = sum(1 for image in images if isinstance(image, str) and VIDEO_FRAME.search(image))
            persons = pc.struct_field(analysed, ["person"]).to_numpy(zero_copy_only=False) \
                if "person" in face_fields else [None] * len(analysed)
            chunk = FaceChunk(source, checked(source, probs), face_keys_[~too_small], skipped,
                              {str(m) for m in models}, [], frames, person_numbers(source, persons))
            chunk.sizes = face_sizes(boxes[~too_small])
            yield chunk
    except (pa.ArrowException, OSError) as error:
        raise ReportError(f"{source}: not a readable Parquet file ({str(error).splitlines()[0]})") from None
