"""Presenting results: one-line summaries, annotated images, and JSON / CSV files written incrementally."""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from face_analysis.errors import UsageError
from face_analysis.io.durable import DurableText, FolderLock, JsonLinesWriter, OutputError, output_error
from face_analysis.io.drawing import describe_face, draw_faces, face_label  # noqa: F401 - where callers find them
from face_analysis.labels import AGE_BUCKETS, GENDERS, RACES
from face_analysis.results import FacePrediction, ImageResult

# then every class's probability, as `report` reads them (the names pandas.json_normalize gives --json's fields)
PROBABILITY_COLUMNS = ([f"race_probabilities.{name}" for name in RACES] +
                       [f"gender_probabilities.{name}" for name in GENDERS] +
                       [f"age_group_probabilities.{name}" for name in AGE_BUCKETS])
CSV_COLUMNS = ["image", "frame", "track_id", "person", "x", "y", "w", "h", "age", "age_std", "gender",
               "gender_probability", "race", "race_probability", "detection_score", "face_size", "too_small",
               "model", *PROBABILITY_COLUMNS]


def open_output(path: str | Path, append: bool = False):
    """A text stream for a results file; "-" is stdout. Fails early with a clear error; the file is locked
    while written, so a second run writing the same file is refused instead of interleaving with this one.
    append: keep what the file holds (--resume), else it is emptied."""
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
    if not append:
        os.ftruncate(descriptor, 0)
    return os.fdopen(descriptor, "w", encoding="utf-8", newline="")


def escaped_name(name: str) -> str:
    """A file name as the results hold it: each byte that is not UTF-8 (kept by Python as a surrogate) as `\\xNN`,
    as `os.fsencode(name).decode("utf-8", "backslashreplace")` writes it; unescaped_name reverses it."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        text = "".join(f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c for c in name)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate not from a file name


def unescaped_name(text: str) -> str:
    """The file name that escaped_name wrote as `text` (each `\\x80`..`\\xff` back to the byte; os.fsencode gives
    the bytes)."""
    return re.sub(r"\\x([89a-f][0-9a-f])", lambda match: chr(0xDC00 + int(match.group(1), 16)), text)


def printable_name(name: str) -> str:
    """A file name for a line on the terminal: escaped_name's, with control characters (a newline, ESC) escaped."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda match: match.group().encode("unicode_escape").decode(),
                  escaped_name(name))


class JsonListWriter:
    """Writes a JSON list one item at a time; the file is a valid JSON list after each item (its closing `]` is
    written with every item), so results survive a crash, SIGKILL or a full disk."""

    def __init__(self, path: str | Path, option: str = "--json"):
        self.file, self.count = DurableText(path, option), 0
        self.file.commit("[", tail="\n]\n")

    def write(self, item: dict) -> None:
        self.file.commit(("," if self.count else "") + "\n" + json.dumps(item, ensure_ascii=False), tail="\n]\n")
        self.count += 1

    def close(self) -> None:
        self.file.close()


class CsvWriter:
    """Writes one CSV row per face, flushed after each image or frame."""

    def __init__(self, path: str | Path, option: str = "--csv"):
        self.file, self.stream = DurableText(path, option), io.StringIO()  # an image's rows, written whole
        self.writer = csv.writer(self.stream)
        self.writer.writerow(CSV_COLUMNS)
        self.flush()

    def flush(self) -> None:
        self.file.commit(self.stream.getvalue())
        self.stream.seek(0)
        self.stream.truncate()

    def write(self, result: ImageResult, frame: int | None = None) -> None:
        for face in result.faces:
            race_probability = face.race_probabilities[face.race] if face.race else None
            row = [result.image, frame, face.track_id, face.person, *face.box, face.age, face.age_std, face.gender,
                   face.gender_probability, face.race, race_probability, face.detection_score, face.face_size,
                   int(face.too_small), result.model, *probability_values(face)]
            self.writer.writerow(["" if value is None else value for value in row])
        self.flush()

    def close(self) -> None:
        self.file.close()


def probability_values(face: FacePrediction) -> list:
    """The values of PROBABILITY_COLUMNS for a face (None where it has none: too small, or an older result);
    the gender's from its predicted gender and that gender's probability."""
    races, groups = face.race_probabilities or {}, face.age_group_probabilities or {}
    genders = {}
    if face.gender in GENDERS and face.gender_probability is not None:
        genders = {name: face.gender_probability if name == face.gender else round(1 - face.gender_probability, 4)
                   for name in GENDERS}
    return ([races.get(name) for name in RACES] + [genders.get(name) for name in GENDERS] +
            [groups.get(name) for name in AGE_BUCKETS])


PARQUET_PREFIX = "results-"
BASE_KEY = b"face_analysis.base"  # a result file's metadata: the folder its relative image names start from


def parquet_schema():
    """One row per image, the fields of `run --json`'s objects; faces a nested list (`person` null without
    --people)."""
    import pyarrow as pa

    face = pa.struct([
        ("box", pa.list_(pa.int64())), ("age", pa.float64()), ("age_std", pa.float64()), ("gender", pa.string()),
        ("gender_probability", pa.float64()), ("race", pa.string()),
        ("race_probabilities", pa.struct([(race, pa.float64()) for race in RACES])),
        ("detection_score", pa.float64()), ("face_size", pa.int64()), ("too_small", pa.bool_()),
        ("age_group_probabilities", pa.struct([(group, pa.float64()) for group in AGE_BUCKETS])),
        ("person", pa.int64())])
    return pa.schema([("image", pa.string()), ("model", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                      ("faces", pa.list_(face)), ("error", pa.string())])


def parquet_files(folder: str | Path) -> list[Path]:
    """The complete result files a run wrote in a --parquet folder (those still being written are hidden)."""
    return sorted(Path(folder).glob(f"{PARQUET_PREFIX}*.parquet"))


def parquet_result_files(folder: str | Path) -> Iterator[list[dict]]:
    """The rows of a --parquet folder as `run --json`'s objects (a face's null `person` left out, as there), one
    result file at a time (a folder of millions of rows never sits in memory at once)."""
    import pyarrow.parquet as pq

    for path in parquet_files(folder):
        rows = pq.read_table(path, schema=parquet_schema()).to_pylist()
        for face in (face for row in rows for face in row["faces"] or ()):
            if face["person"] is None:
                del face["person"]
        yield rows


def read_parquet_results(folder: str | Path) -> list[dict]:
    """Every row of a --parquet folder, as `run --json`'s objects."""
    return [row for rows in parquet_result_files(folder) for row in rows]


class ParquetWriter:
    """Results as Parquet files in a folder, `rows_per_file` rows a file (or what `seconds_per_file` gathered):
    each file is written under a hidden name and then renamed, so a run that is stopped or killed leaves only
    complete files, and `--resume` knows from them which images are done."""

    def __init__(self, folder: str | Path, rows_per_file: int = 10_000, seconds_per_file: float = 60.0):
        self.folder, self.rows_per_file, self.seconds_per_file = Path(folder), rows_per_file, seconds_per_file
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise output_error("--parquet", folder, error) from None
        self.lock = FolderLock(self.folder)  # a second run writing here is refused; also proves it is writable
        # unique per run: two runs of one process within a second must not write over each other's files
        self.run = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
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
        table = pa.Table.from_pylist(self.rows, schema=parquet_schema())
        try:  # the folder the names were given from, so that --resume knows relative names however it is run
            pq.write_table(table.replace_schema_metadata({BASE_KEY: os.getcwd()}), tmp)
            os.replace(tmp, self.folder / name)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise output_error("--parquet", self.folder, error) from None
        self.rows, self.files = [], self.files + 1

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.lock.release()


class ResultWriters:
    """The --json, --csv and --parquet outputs of a run together; any may be absent. Use it as a context
    manager."""

    def __init__(self, json_path=None, csv_path=None, parquet_dir=None, parquet_rows: int = 10_000, jsonl_path=None,
                 resume: bool = False):
        self.json = self.csv = self.parquet = self.jsonl = None
        try:  # the folder first: a --parquet that cannot be written is refused before --json is emptied
            self.parquet = ParquetWriter(parquet_dir, parquet_rows) if parquet_dir else None
            self.jsonl = JsonLinesWriter(jsonl_path, append=resume) if jsonl_path else None
            self.json = JsonListWriter(json_path) if json_path else None
            self.csv = CsvWriter(csv_path) if csv_path else None
        except BaseException:
            self.close()  # the JSON file, if opened, is closed as a valid empty list and unlocked
            raise
        self.to_stdout = "-" in (str(json_path), str(csv_path), str(jsonl_path))

    def write(self, result: ImageResult, frame: int | None = None, to_parquet: bool = True,
              to_jsonl: bool = True) -> None:
        """Every output of one result, its image named as escaped_name says (to_parquet/to_jsonl=False: not the
        output that holds it already); a signal (SIGTERM, SIGHUP, Ctrl-C) arriving meanwhile is held back until
        all are written, so that the JSON and the CSV always hold the same images."""
        held = {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        if escaped_name(result.image) is not result.image:
            result = replace(result, image=escaped_name(result.image))
        row = result.to_json()
        try:
            if self.json:
                self.json.write(row if frame is None else {"frame": frame, **row})
            if self.csv:
                self.csv.write(result, frame)
            if self.parquet and to_parquet:
                self.parquet.write(row)
            if self.jsonl and to_jsonl:
                self.jsonl.write(row if frame is None else {"frame": frame, **row})
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def close(self) -> None:
        errors = []
        for writer in (self.json, self.csv, self.jsonl, self.parquet):  # each closed, whatever the others do
            try:
                if writer:
                    writer.close()
            except OutputError as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
