"""Results files that stay valid whatever happens while they are written: a full disk, a signal, SIGKILL.

`DurableText` appends whole pieces (an image's JSON object, its CSV rows, a JSON line) at a known offset and
keeps a closing tail (the `]` of a JSON list) written after the last piece, so the file on disk is a valid
document after every piece; a piece that cannot be written whole (no space left) is cut off again, the tail
restored, and the error names the option and the file. `--parquet` folders are locked like result files."""
from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from face_analysis.errors import FaceAnalysisError, UsageError

LOCK_NAME = ".results-lock"  # in a --parquet folder; hidden, so pandas, DuckDB and Spark skip it


class OutputError(FaceAnalysisError):
    """A results file or folder cannot be written (no space left, read-only, not permitted); names the option."""


def output_error(option: str, path, error: BaseException) -> OutputError:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = getattr(error, "strerror", None) or (lines[-1] if lines else type(error).__name__)
    coded = re.search(r"\[errno (\d+)\]", reason, re.IGNORECASE)  # pyarrow's errors carry the errno in words
    if coded:
        reason = os.strerror(int(coded.group(1)))
    if reason.startswith(f"{path}: "):  # open_output's own messages name the file already
        reason = reason[len(f"{path}: "):]
    return OutputError(f"{option} {path}: {reason[:1].lower()}{reason[1:]}")


class DurableText:
    """A text output written in whole pieces; "-" is stdout (pieces written as they come, the tail at close)."""

    def __init__(self, path, option: str, append: bool = False):
        from face_analysis.io.writers import open_output

        self.path, self.option, self.tail = path, option, ""
        try:
            self.stream = open_output(path, append=append)
        except OSError as error:
            raise output_error(option, path, error) from None
        self.fd = None if self.stream is sys.stdout else self.stream.fileno()
        self.end = os.lseek(self.fd, 0, os.SEEK_END) if self.fd is not None else 0

    def commit(self, text: str, tail: str = "") -> None:
        """Write text after what was committed, then tail (replacing the former tail); all of it or none."""
        if self.fd is None:
            self.stream.write(text)
            self.stream.flush()
            self.tail = tail
            return
        data, closing = text.encode("utf-8"), tail.encode("utf-8")
        try:
            _write_all(self.fd, data + closing, self.end)
            if len(closing) < len(self.tail.encode("utf-8")):
                os.ftruncate(self.fd, self.end + len(data) + len(closing))
        except OSError as error:
            self._restore()
            raise output_error(self.option, self.path, error) from None
        self.end += len(data)
        self.tail = tail

    def _restore(self) -> None:
        """Cut off a piece written in part and put the tail back (within the bytes the file already had)."""
        try:
            closing = self.tail.encode("utf-8")
            _write_all(self.fd, closing, self.end)
            os.ftruncate(self.fd, self.end + len(closing))
        except OSError:
            pass

    def cut_to(self, offset: int) -> None:
        """Drop what follows offset (a last line cut short by a killed run) before appending."""
        os.ftruncate(self.fd, offset)
        self.end = offset

    def close(self) -> None:
        if self.fd is None:
            self.stream.write(self.tail)
            self.stream.flush()
            return
        self.stream.close()


def _write_all(fd: int, data: bytes, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


class JsonLinesWriter:
    """`--jsonl FILE`: one result object a line, each line written whole and at once; with append (--resume) the
    lines already there are kept and a last line cut short (a killed writer) is removed first."""

    def __init__(self, path, append: bool = False):
        self.file = DurableText(path, "--jsonl", append=append)
        if append and self.file.fd is not None:
            self.file.cut_to(complete_lines_end(path))

    def write(self, item: dict) -> None:
        self.file.commit(json.dumps(item, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.file.close()


def complete_lines_end(path) -> int:
    """The offset after the last complete line of a file (0 when none is)."""
    with open(path, "rb") as file:
        data = file.read()
    return data.rfind(b"\n") + 1


def read_json_lines(path, limit: int | None = None) -> Iterator[dict]:
    """The result objects of a --jsonl file's complete lines, up to byte `limit` (a line cut short or not a
    JSON object is left out: the image it held is done again)."""
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        return
    with file:
        offset = 0
        for line in file:
            offset += len(line)
            if not line.endswith(b"\n") or (limit is not None and offset > limit):
                break
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("image"), str):
                yield row


class FolderLock:
    """An exclusive lock on a --parquet folder (a lock file in it, held with flock while the run writes)."""

    def __init__(self, folder: Path):
        try:
            self.fd = os.open(Path(folder) / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as error:
            raise output_error("--parquet", folder, error) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise UsageError(f"--parquet {folder}: another run is writing this folder; wait for it or choose "
                             "another folder") from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def folder_locked(folder: Path) -> bool:
    """Whether another run holds the lock of a --parquet folder."""
    try:
        FolderLock(folder).release()
    except UsageError:
        return True
    except OutputError:
        return False
    return False
