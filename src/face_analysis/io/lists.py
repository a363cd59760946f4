"""`--img_list` files: the image paths (or URIs) a text, CSV or Parquet file lists, one a row.

What a file is comes from its content: Parquet by its magic bytes; a CSV (named .csv) has a header only when
its first row names a `path` column or does not look like a path; a first row that is an existing file, a URI
or a name with a folder or an image extension is data, not a header. No row is dropped silently: blank rows,
`#` comments (text lists) and rows that are not UTF-8 are skipped and counted, the reasons kept in `skipped`."""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from face_analysis.errors import ImageError, UsageError
from face_analysis.io.images import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_uri, one_line


@dataclass
class ImageList:
    """The paths of a list file in order (a row that cannot be a path, one with a NUL byte, as its ImageError),
    and how many rows were skipped for each reason."""

    items: list = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def _looks_like_path(cell: str) -> bool:
    """Whether a CSV's first cell is a path rather than a column name."""
    cell = cell.strip()
    if is_uri(cell) or "/" in cell or "\\" in cell or cell.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
        return True
    try:
        return os.path.lexists(cell)
    except (ValueError, OSError):
        return False


def _row_item(path: str, listed: ImageList) -> None:
    if "\x00" in path:
        listed.items.append(ImageError(repr(path), "not a path (it holds a NUL byte)"))
    elif any("\udc80" <= char <= "\udcff" for char in path):
        listed.skipped["not UTF-8"] += 1
    else:
        listed.items.append(path)


def _text(data: bytes) -> str:
    """The file's text; bytes that are not UTF-8 are kept as surrogates, and the rows holding them skipped."""
    return data.decode("utf-8-sig", errors="surrogateescape")


def _csv_rows(text: str, listed: ImageList) -> None:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    while rows and not any(cell.strip() for cell in rows[0]):
        rows.pop(0)
        listed.skipped["blank"] += 1
    if not rows:
        return
    header = [cell.strip().lower() for cell in rows[0]]
    if "path" in header:
        column, rows = header.index("path"), rows[1:]
    elif _looks_like_path(rows[0][0]):
        column = 0  # no header: the first row is a path too
    else:
        column, rows = 0, rows[1:]  # a header without a `path` column: its first column
    for row in rows:
        if len(row) <= column or not row[column].strip():
            listed.skipped["blank"] += 1
        else:
            _row_item(row[column], listed)


def _text_rows(text: str, listed: ImageList) -> None:
    for line in text.splitlines():
        line = line.rstrip("\r\n")
        if not line.strip():
            listed.skipped["blank"] += 1
        elif line.startswith("#"):
            listed.skipped["comment"] += 1
        else:
            _row_item(line, listed)


def _parquet_rows(path: Path, listed: ImageList) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if not table.column_names:
        raise ValueError("no column")
    name = "path" if "path" in table.column_names else table.column_names[0]
    column = table.column(name)
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise ValueError(f"its column {name!r} is of type {column.type}, not a string of paths")
    for value in column.to_pylist():
        if value is None or not str(value).strip():
            listed.skipped["blank"] += 1
        else:
            _row_item(str(value), listed)


def list_file(path: str | Path) -> ImageList:
    """The rows of an --img_list file; UsageError naming it when it cannot be read at all."""
    path = Path(path)
    listed = ImageList()
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            raise ValueError("not a regular file")  # a FIFO or a device would block or never end
        with open(path, "rb") as file:
            head = file.read(4)
        if head == b"PAR1":
            _parquet_rows(path, listed)
            return listed
        if path.suffix.lower() == ".parquet":
            raise ValueError("not a Parquet file (no PAR1 magic bytes)")
        text = _text(path.read_bytes())
        if text.count("\x00") > max(8, len(text) // 100):  # an image or an archive given by mistake
            raise ValueError("a binary file, not a list of paths")
        (_csv_rows if path.suffix.lower() == ".csv" else _text_rows)(text, listed)
    except FileNotFoundError:
        raise UsageError(f"--img_list {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--img_list {path}: is a folder, not a list file") from None
    except (OSError, ValueError, csv.Error) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise UsageError(f"--img_list {path}: cannot read the list ({one_line(error)})") from None
    return listed


def read_image_list(path: str | Path) -> list:
    """The paths an --img_list file lists (list_file without the counts of skipped rows)."""
    return list_file(path).items


def describe_skipped(skipped: Counter) -> str:
    """"3 list row(s) skipped (blank 2, comment 1)", or "" when none was."""
    total = sum(skipped.values())
    if not total:
        return ""
    return f"{total} list row(s) skipped ({', '.join(f'{reason} {n}' for reason, n in sorted(skipped.items()))})"
