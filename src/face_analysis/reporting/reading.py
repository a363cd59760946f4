"""Reading `run`'s results for a report: JSON (a list), JSONL (one result a line), CSV (one row a face) and
Parquet (a folder of results-*.parquet, or one file), streamed in chunks of per-face probability arrays so
that millions of faces never sit in memory as Python objects (CSV and Parquet: reporting.tables).

Every face carries a key, its image's name and box hashed, so that the same face read twice (one run's
results given twice, or in two formats) is counted once. Faces marked too small carry no probabilities and
are counted apart, as are images without a face and images that failed. Each face also carries its person
(`run --people`), for `report --count people`. Every problem is a one-line `ReportError` naming the file."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from face_analysis.io.durable import LOCK_NAME
from face_analysis.labels import GENDERS
from face_analysis.reporting.attributes import ATTRIBUTES, MODEL_FIELD, PROBABILITY_FIELDS, ReportError
from face_analysis.reporting.json_items import json_items, jsonl_items

CHUNK_FACES = 50_000  # faces per chunk
REBUILD_HINT = "written by a `run` that did not give them? analyse the images again with this version's `run`"
LEFT_OUT = ("too_small", "no_face", "failed")
NO_BOX = [np.nan] * 4


@dataclass
class FaceChunk:
    """Some analysed faces of one results file: per attribute an (n, classes) float32 array of probabilities,
    each face's key (face_keys), and the keys of the faces and images left out (LEFT_OUT)."""

    source: str
    probs: dict[str, np.ndarray]
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    skipped: dict = field(default_factory=dict)  # "too_small", "no_face", "failed" -> their keys
    models: set = field(default_factory=set)  # the model types named by these results (empty: not named)
    notes: list = field(default_factory=list)
    frames: int = 0  # results that are video frames (`run --video`)
    persons: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # person_numbers of the faces
    results: int = 0  # which of the inputs given to read_faces it is of: a person number holds within one
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each face's box's longer side (NaN: unknown)

    @property
    def faces(self) -> int:
        return len(next(iter(self.probs.values())))


def checked(source: str, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Probabilities as float32 rows summing to 1; a missing or impossible value is an error."""
    out = {}
    for attribute, values in probs.items():
        invalid = ReportError(f"{source}: a face whose {PROBABILITY_FIELDS[attribute]} are missing, negative or "
                              f"not numbers (an edited file? or {REBUILD_HINT})")
        try:
            values = np.asarray(values, np.float64).reshape(len(values), len(ATTRIBUTES[attribute]))
        except (TypeError, ValueError):
            raise invalid from None
        if len(values) and (not np.isfinite(values).all() or (values < 0).any()):
            raise invalid
        total = values.sum(1, keepdims=True)
        if len(values) and (total <= 0).any():
            raise ReportError(f"{source}: a face whose {PROBABILITY_FIELDS[attribute]} are all 0")
        out[attribute] = (values / np.where(total > 0, total, 1)).astype(np.float32)
    return out


def person_numbers(source: str, values) -> np.ndarray:
    """Each face's person (`run --people`) as int64, -1 where it has none (None, NaN); a value that is not a
    whole number of at least 1 is an error."""
    try:
        numbers = np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError):
        numbers = np.array([0.0])
    known = ~np.isnan(numbers)
    if (numbers[known] < 1).any() or (numbers[known] % 1 != 0).any():
        raise ReportError(f"{source}: a face whose person is not a whole number of at least 1 (an edited file?)")
    return np.where(known, numbers, -1).astype(np.int64)


def _numbers(boxes: list) -> np.ndarray:
    """(n, 4) boxes as numbers; NaN rows for boxes that are not four numbers."""
    try:
        return np.asarray(boxes, np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        plain = [all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box) for box in boxes]
        return np.array([box if ok else NO_BOX for box, ok in zip(boxes, plain)], np.float64).reshape(-1, 4)


def face_keys(images, boxes) -> np.ndarray:
    """A 64-bit key per face: its image's name and box (x, y, w, h) hashed, the same in every format within one
    process (Python's hash); 0 (never a duplicate) where the image is not named or the box is incomplete.
    boxes None: the keys of whole images (results without a face)."""
    if boxes is None:
        return np.array([hash((image,)) or 1 if isinstance(image, str) and image else 0 for image in images],
                        np.int64)
    boxes = _numbers(boxes)
    known = np.isfinite(boxes).all(1).tolist()
    return np.array([hash((image, *box)) or 1 if ok and isinstance(image, str) and image else 0
                     for image, box, ok in zip(images, boxes.tolist(), known)], np.int64)


def face_sizes(boxes) -> np.ndarray:
    """Each box's longer side in pixels (results.face_size, from the boxes already read); NaN for boxes that are
    not four numbers."""
    return _numbers(boxes)[:, 2:].max(1)


def _box(face: dict) -> list:
    box = face.get("box")
    return box if type(box) is list and len(box) == 4 else NO_BOX


def _face_vector(source: str, face: dict, attribute: str) -> list:
    names = ATTRIBUTES[attribute]
    given = face.get(PROBABILITY_FIELDS[attribute])
    if isinstance(given, dict):
        return [given.get(name, np.nan) if given.get(name) is not None else np.nan for name in names]
    if attribute == "gender" and face.get("gender") in GENDERS and face.get("gender_probability") is not None:
        try:
            p = float(face["gender_probability"])
        except (TypeError, ValueError):
            p = np.nan
        return [p if name == face["gender"] else 1 - p for name in names]
    raise ReportError(f"{source}: faces without {PROBABILITY_FIELDS[attribute]} ({REBUILD_HINT})")


def chunks_from_results(results: Iterable[dict], source: str, attributes=tuple(ATTRIBUTES),
                        chunk_faces: int = CHUNK_FACES) -> Iterator[FaceChunk]:
    """Chunks of the faces of `run --json`'s result objects (one per image or video frame)."""
    def fresh():
        return {a: [] for a in attributes}, ([], [], []), {kind: ([], []) for kind in LEFT_OUT}, FaceChunk(source, {})

    def finished(chunk: FaceChunk) -> FaceChunk:
        chunk.probs = checked(source, rows)
        boxes = _numbers(faces_at[1])
        chunk.keys, chunk.sizes = face_keys(faces_at[0], boxes), face_sizes(boxes)
        chunk.persons = person_numbers(source, faces_at[2])
        chunk.skipped = {kind: face_keys(images, None if kind != "too_small" else boxes)
                         for kind, (images, boxes) in left_out.items()}
        return chunk

    rows, faces_at, left_out, chunk = fresh()
    for result in results:
        if not isinstance(result, dict) or "faces" not in result and "error" not in result:
            raise ReportError(f"{source}: not the results of `run` (an item without \"faces\")")
        image = result.get("image")
        if result.get(MODEL_FIELD):
            chunk.models.add(str(result[MODEL_FIELD]))
        chunk.frames += result.get("frame") is not None
        faces = result.get("faces") or []
        if not isinstance(faces, list):
            raise ReportError(f"{source}: not the results of `run` (\"faces\" that is not a list)")
        if result.get("error") or not faces:
            left_out["failed" if result.get("error") else "no_face"][0].append(image)
        for face in faces:
            if not isinstance(face, dict):
                raise ReportError(f"{source}: not the results of `run` (a face that is not an object)")
            if face.get("too_small"):
                left_out["too_small"][0].append(image)
                left_out["too_small"][1].append(_box(face))
                continue
            for a in attributes:
                rows[a].append(_face_vector(source, face, a))
            faces_at[0].append(image)
            faces_at[1].append(_box(face))
            faces_at[2].append(face.get("person"))
        if len(faces_at[0]) >= chunk_faces:
            yield finished(chunk)
            rows, faces_at, left_out, chunk = fresh()
    yield finished(chunk)


def result_format(path: Path) -> str:
    """"parquet" (a folder or .parquet file), "json", "jsonl" or "csv": by the name, else by the first bytes."""
    if path.is_dir():
        return "parquet"
    with open(path, "rb") as stream:
        start = stream.read(4096)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReportError(f"{path}: a text file in UTF-16, not UTF-8 (PowerShell's `>` writes UTF-16: give run "
                          "--json FILE instead, or convert it)")
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl", ".csv", ".parquet", ".ndjson"):
        return "jsonl" if suffix == ".ndjson" else suffix[1:]
    if start.startswith(b"PAR1"):
        return "parquet"
    if b"\0" in start:
        raise ReportError(f"{path}: not a results file of `run` (a binary file; run writes JSON, JSON Lines, CSV "
                          "or Parquet)")
    text = start.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        raise ReportError(f"{path}: not a results file of `run` (an HTML or XML page)")
    return "json" if text.startswith(b"[") else "jsonl" if text.startswith(b"{") else "csv"


def parquet_paths(folder: Path) -> list[Path]:
    """The result files of a --parquet folder (hidden files, still being written, are not); an unreadable
    folder raises PermissionError."""
    names = sorted(name for name in os.listdir(folder) if name.endswith(".parquet") and not name.startswith("."))
    files = [folder / name for name in names if name.startswith("results-")] or [folder / name for name in names]
    if not files:
        raise ReportError(f"{folder}: no Parquet results in this folder (`run --parquet` writes results-*.parquet)")
    return files


def being_written(path: Path, kind: str) -> bool:
    """Whether a run holds the lock of a results file or of a --parquet folder (it is still writing there)."""
    import fcntl

    target = path / LOCK_NAME if path.is_dir() else path.parent / LOCK_NAME if kind == "parquet" else path
    try:
        descriptor = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)
    return False


def _chunks(path: Path, kind: str, attributes, chunk_faces: int) -> Iterator[FaceChunk]:
    from face_analysis.reporting.tables import csv_chunks, parquet_chunks

    if kind == "parquet":
        for file in parquet_paths(path) if path.is_dir() else [path]:
            yield from parquet_chunks(file, attributes, chunk_faces)
        return
    if path.stat().st_size == 0:
        raise ReportError(f"{path}: empty file")
    if kind == "csv":
        yield from csv_chunks(path, attributes, chunk_faces)
        return
    notes = []
    for chunk in chunks_from_results(json_items(path, notes) if kind == "json" else jsonl_items(path, notes),
                                     str(path), attributes, chunk_faces):
        chunk.notes = list(notes)
        yield chunk


def file_chunks(path: str | Path, attributes=tuple(ATTRIBUTES), chunk_faces: int = CHUNK_FACES) -> Iterator[FaceChunk]:
    """The chunks of one results file or Parquet folder; a note where a run is still writing it."""
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such file or folder")
    if not path.is_dir() and not path.is_file():
        raise ReportError(f"{path}: not a file or folder (a pipe or a device?); save the results to a file first")
    try:
        kind = result_format(path)
        writing = [f"{path}: a run is still writing it; the figures are of the results written so far"] \
            if being_written(path, kind) else []
        for chunk in _chunks(path, kind, attributes, chunk_faces):
            chunk.notes = writing + chunk.notes
            yield chunk
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a text results file (it does not decode as UTF-8)") from None
    except RecursionError:
        raise ReportError(f"{path}: not the results of `run` (JSON nested too deeply)") from None
    except OSError as error:
        raise ReportError(f"{path}: cannot be read ({error.strerror or error})") from None


def read_faces(paths, attributes=tuple(ATTRIBUTES), chunk_faces: int = CHUNK_FACES) -> Iterator[FaceChunk]:
    """Chunks of the analysed faces of every results file or Parquet folder in `paths`, in order.

    A file with no result at all, or results of two model types (in one file or across files), is an error."""
    first = None  # (model, file) of the first results that name their model
    for index, path in enumerate([paths] if isinstance(paths, (str, Path)) else paths):
        seen_any = False
        for chunk in file_chunks(path, tuple(attributes), chunk_faces):
            chunk.results = index
            seen_any = seen_any or chunk.faces or any(len(keys) for keys in chunk.skipped.values())
            if len(chunk.models) > 1:
                raise ReportError(f"{path}: results of several models ({', '.join(sorted(chunk.models))}); "
                                  "report one model's results at a time")
            if chunk.models:
                model = next(iter(chunk.models))
                if first is None:
                    first = (model, path)
                elif model != first[0]:
                    raise ReportError(f"{path}: results of the {model} model, but {first[1]} holds the "
                                      f"{first[0]} model's; report one model's results at a time")
            yield chunk
        if not seen_any:
            raise ReportError(f"{path}: no results in it")
