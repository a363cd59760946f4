"""The items of `run --json` (a JSON list) and `run --jsonl` (one object a line) files, one at a time, so that a
file of millions of results is never decoded whole."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from face_analysis.reporting.attributes import ReportError

JSON_BLOCK = 1 << 20  # characters read at a time from a JSON file
MAX_RESULT_CHARS = 64 << 20  # a single result larger than this is not run's output


def json_items(path: Path, notes: list) -> Iterator[dict]:
    """The items of a JSON list, decoded one at a time from blocks of the file (a byte order mark is read past);
    a list left open by an interrupted run, or cut inside its last item, gives its complete items and a note."""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8-sig") as stream:
        buffer, position, eof, started, items = "", 0, False, False, 0
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n,":
                position += 1
            if position >= len(buffer) or (not started and not buffer.strip()):
                if eof:
                    if not started:
                        raise ReportError(f"{path}: empty file")
                    notes.append(f"{path}: the list is not closed (an interrupted run?); "
                                 f"its {items} complete results are used")
                    return
                block = stream.read(JSON_BLOCK)
                buffer, position, eof = buffer[position:] + block, 0, not block
                continue
            if not started:
                if buffer[position] != "[":
                    raise ReportError(f"{path}: not a JSON list of results (`run --json` writes one)")
                started, position = True, position + 1
                continue
            if buffer[position] == "]":
                return
            try:
                item, position = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as error:
                rest = buffer[position:].strip()
                if eof and rest.startswith("{") and not rest.endswith("]"):  # the list and its last result cut
                    notes.append(f"{path}: its last result is cut short (an interrupted run?) and is left out; "
                                 f"its {items} complete results are used")
                    return
                if eof or len(buffer) - position > MAX_RESULT_CHARS:
                    if eof and not rest.startswith("{"):
                        raise ReportError(f"{path}: not valid JSON ({error.msg})") from None
                    reason = f"not valid JSON: a result cut short or malformed ({error.msg})"
                    raise ReportError(f"{path}: {reason}") from None
                block = stream.read(JSON_BLOCK)
                buffer, position, eof = buffer[position:] + block, 0, not block
                continue
            items += 1
            yield item


def jsonl_items(path: Path, notes: list) -> Iterator[dict]:
    """The objects of a JSON Lines file; a last line cut short by an interrupted run is left out with a note."""
    with open(path, encoding="utf-8-sig") as stream:
        pending = None
        for number, line in enumerate(stream, 1):
            if pending:
                raise ReportError(pending)
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                pending = f"{path}: line {number} is not JSON ({error.msg})"
                if not line.endswith("\n"):  # the last line, cut short by an interrupted run
                    notes.append(f"{path}: its last line is cut short (an interrupted run?) and is left out")
                    return
        if pending:
            raise ReportError(pending)
