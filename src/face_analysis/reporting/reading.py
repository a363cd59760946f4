"""Reading `run`'s results for a report: JSON (a list), JSONL (one result a line), CSV (one row a face) and
Parquet (a folder of results-*.parquet, or one file), streamed in chunks of per-face probability arrays so
that millions of faces never sit in memory as Python objects.

Faces marked too small carry no probabilities and are counted apart, as are images without a face and images
that failed. Every problem is a one-line `ReportError` naming the file."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from face_analysis.labels import GENDERS
from face_analysis.reporting.attributes import ATTRIBUTES, MODEL_FIELD, PROBABILITY_FIELDS, ReportError, csv_column
from face_analysis.reporting.json_items import json_items, jsonl_items

CHUNK_FACES = 50_000  # faces per chunk
REBUILD_HINT = "written by a `run` that did not give them? analyse the images again with this version's `run`"


@dataclass
class FaceChunk:
    """Some analysed faces of one results file: per attribute an (n, classes) float32 array of probabilities,
    and the faces and images left out."""

    source: str
    probs: dict[str, np.ndarray]
    too_small: int = 0
    no_face: int = 0
    failed: int = 0
    models: set = field(default_factory=set)  # the model types named by these results (empty: not named)
    notes: list = field(default_factory=list)

    @property
    def faces(self) -> int:
        return len(next(iter(self.probs.values())))


def _checked(source: str, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Probabilities as float32 rows summing to 1; a missing or impossible value is an error."""
    out = {}
    for attribute, values in probs.items():
        values = np.asarray(values, np.float64).reshape(len(values), len(ATTRIBUTES[attribute]))
        if len(values) and (not np.isfinite(values).all() or (values < 0).any()):
            raise ReportError(f"{source}: a face with missing or invalid {PROBABILITY_FIELDS[attribute]} "
                              f"({REBUILD_HINT})")
        total = values.sum(1, keepdims=True)
        if len(values) and (total <= 0).any():
            raise ReportError(f"{source}: a face whose {PROBABILITY_FIELDS[attribute]} are all 0")
        out[attribute] = (values / np.where(total > 0, total, 1)).astype(np.float32)
    return out


def _face_vector(source: str, face: dict, attribute: str) -> list[float]:
    names = ATTRIBUTES[attribute]
    given = face.get(PROBABILITY_FIELDS[attribute])
    if isinstance(given, dict):
        return [given.get(name, np.nan) if given.get(name) is not None else np.nan for name in names]
    if attribute == "gender" and face.get("gender") in GENDERS and face.get("gender_probability") is not None:
        p = float(face["gender_probability"])
        return [p if name == face["gender"] else 1 - p for name in names]
    raise ReportError(f"{source}: faces without {PROBABILITY_FIELDS[attribute]} ({REBUILD_HINT})")


def chunks_from_results(results: Iterable[dict], source: str, attributes=tuple(ATTRIBUTES),
                        chunk_faces: int = CHUNK_FACES) -> Iterator[FaceChunk]:
    """Chunks of the faces of `run --json`'s result objects (one per image or video frame)."""
    rows = {a: [] for a in attributes}
    chunk = FaceChunk(source, {})
    for result in results:
        if not isinstance(result, dict) or "faces" not in result and "error" not in result:
            raise ReportError(f"{source}: not the results of `run` (an item without \"faces\")")
        if result.get(MODEL_FIELD):
            chunk.models.add(str(result[MODEL_FIELD]))
        faces = result.get("faces") or []
        if result.get("error"):
            chunk.failed += 1
        elif not faces:
            chunk.no_face += 1
        for face in faces:
            if not isinstance(face, dict):
                raise ReportError(f"{source}: not the results of `run` (a face that is not an object)")
            if face.get("too_small"):
                chunk.too_small += 1
                continue
            for a in attributes:
                rows[a].append(_face_vector(source, face, a))
        if len(rows[attributes[0]]) >= chunk_faces:
            chunk.probs = _checked(source, rows)
            yield chunk
            rows, chunk = {a: [] for a in attributes}, FaceChunk(source, {})
    chunk.probs = _checked(source, rows)
    yield chunk


def _csv_chunks(path: Path, attributes, chunk_faces: int) -> Iterator[FaceChunk]:
    import pandas as pd

    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        reader = pd.read_csv(path, chunksize=chunk_faces, low_memory=False)
        for frame in reader:
            too_small = (frame["too_small"].fillna(0).astype(bool) if "too_small" in header
                         else pd.Series(np.zeros(len(frame), bool)))
            analysed = frame[~too_small.to_numpy()]
            probs = {}
            for attribute in attributes:
                columns = [csv_column(attribute, name) for name in ATTRIBUTES[attribute]]
                if all(c in header for c in columns):
                    probs[attribute] = analysed[columns].to_numpy(np.float64)
                elif attribute == "gender" and {"gender", "gender_probability"} <= set(header):
                    p = analysed["gender_probability"].to_numpy(np.float64)
                    female = (analysed["gender"] == "female").to_numpy()
                    known = analysed["gender"].isin(GENDERS).to_numpy()
                    probs[attribute] = np.where(known[:, None], np.column_stack(
                        [np.where(female, 1 - p, p), np.where(female, p, 1 - p)]), np.nan)
                else:
                    raise ReportError(f"{path}: no {PROBABILITY_FIELDS[attribute]}.* columns ({REBUILD_HINT})")
            models = set(frame[MODEL_FIELD].dropna().astype(str)) if MODEL_FIELD in header else set()
            yield FaceChunk(str(path), _checked(str(path), probs), int(too_small.sum()), models=models)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
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


def _parquet_chunks(path: Path, attributes, chunk_faces: int) -> Iterator[FaceChunk]:
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
        wanted = [c for c in ("faces", "error", MODEL_FIELD) if c in columns]
        for batch in parquet.iter_batches(batch_size=max(1, chunk_faces // 4), columns=wanted):
            faces = batch.column("faces")
            lengths = pc.fill_null(pc.list_value_length(faces), 0).to_numpy()
            errors = batch.column("error").is_valid().to_numpy(zero_copy_only=False) if "error" in wanted \
                else np.zeros(len(batch), bool)
            flat = pc.list_flatten(faces)
            too_small = pc.fill_null(pc.struct_field(flat, ["too_small"]), False).to_numpy(zero_copy_only=False) \
                if "too_small" in face_fields else np.zeros(len(flat), bool)
            analysed = flat.filter(pa.array(~too_small))
            probs = {}
            for attribute in attributes:
                if PROBABILITY_FIELDS[attribute] in face_fields:
                    probs[attribute] = _matrix(pc.struct_field(analysed, [PROBABILITY_FIELDS[attribute]]),
                                               attribute, source)
                else:
                    gender = np.asarray(pc.struct_field(analysed, ["gender"]).to_pylist(), object)
                    p = pc.struct_field(analysed, ["gender_probability"]).to_numpy(zero_copy_only=False)
                    probs[attribute] = np.column_stack([np.where(gender == name, p, 1 - p) for name in GENDERS]) \
                        if len(p) else np.zeros((0, 2))
                    probs[attribute][~np.isin(gender, GENDERS)] = np.nan
            models = (set(pc.unique(batch.column(MODEL_FIELD).drop_null()).to_pylist()) if MODEL_FIELD in wanted
                      else set())
            yield FaceChunk(source, _checked(source, probs), int(too_small.sum()),
                            int(((lengths == 0) & ~errors).sum()), int(errors.sum()), {str(m) for m in models})
    except (pa.ArrowException, OSError) as error:
        raise ReportError(f"{source}: not a readable Parquet file ({str(error).splitlines()[0]})") from None


def result_format(path: Path) -> str:
    """"parquet" (a folder or .parquet file), "json", "jsonl" or "csv": by the name, else by the first bytes."""
    if path.is_dir():
        return "parquet"
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl", ".csv", ".parquet"):
        return suffix[1:]
    if suffix == ".ndjson":
        return "jsonl"
    with open(path, "rb") as stream:
        start = stream.read(4096)
    if start.startswith(b"PAR1"):
        return "parquet"
    text = start.lstrip()
    return "json" if text.startswith(b"[") else "jsonl" if text.startswith(b"{") else "csv"


def parquet_paths(folder: Path) -> list[Path]:
    """The result files of a --parquet folder (hidden files, still being written, are not)."""
    files = sorted(folder.glob("results-*.parquet")) or sorted(p for p in folder.glob("*.parquet")
                                                               if not p.name.startswith("."))
    if not files:
        raise ReportError(f"{folder}: no Parquet results in this folder (`run --parquet` writes results-*.parquet)")
    return files


def file_chunks(path: str | Path, attributes=tuple(ATTRIBUTES), chunk_faces: int = CHUNK_FACES) -> Iterator[FaceChunk]:
    """The chunks of one results file or Parquet folder."""
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such file or folder")
    try:
        kind = result_format(path)
        if kind == "parquet":
            for file in parquet_paths(path) if path.is_dir() else [path]:
                yield from _parquet_chunks(file, attributes, chunk_faces)
            return
        if path.stat().st_size == 0:
            raise ReportError(f"{path}: empty file")
        if kind == "csv":
            yield from _csv_chunks(path, attributes, chunk_faces)
            return
        notes = []
        items = json_items(path, notes) if kind == "json" else jsonl_items(path, notes)
        for chunk in chunks_from_results(items, str(path), attributes, chunk_faces):
            chunk.notes = notes
            yield chunk
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a text results file (it does not decode as UTF-8)") from None
    except OSError as error:
        raise ReportError(f"{path}: cannot be read ({error.strerror or error})") from None


def read_faces(paths, attributes=tuple(ATTRIBUTES), chunk_faces: int = CHUNK_FACES) -> Iterator[FaceChunk]:
    """Chunks of the analysed faces of every results file or Parquet folder in `paths`, in order.

    A file with no result at all, or results of two model types (in one file or across files), is an error."""
    first = None  # (model, file) of the first results that name their model
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        seen_any = False
        for chunk in file_chunks(path, tuple(attributes), chunk_faces):
            seen_any = seen_any or chunk.faces or chunk.too_small or chunk.no_face or chunk.failed
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
