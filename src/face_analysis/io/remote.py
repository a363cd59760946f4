"""Reading URIs (s3://, gs://, hdfs://, file://...) through pyarrow's file systems, each read bounded in time.

A network read can block for ever (a server that accepts and never answers, a bucket behind a dead network):
every read runs in a daemon thread, and the caller gives up after `timeout` seconds with one error naming the
URI. A read given up on may stay blocked inside pyarrow; `reads_in_flight` counts them, so that the command
line can end the process at once rather than wait for them (pyarrow's S3 clean-up at exit would)."""
from __future__ import annotations

import threading

from face_analysis.errors import ImageError

DEFAULT_TIMEOUT = 60.0  # seconds a URI read may take, from asking for the file to its last byte
_in_flight = 0
_lock = threading.Lock()


def reads_in_flight() -> int:
    """How many URI reads have not finished (given up on or still going)."""
    return _in_flight


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _read(uri: str, max_bytes: int) -> bytes:
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(inner)
        if info.type == fs.FileType.NotFound:
            raise ImageError(uri, "no such file")
        if info.type != fs.FileType.File:
            raise ImageError(uri, "not a file")
        if info.size is not None and info.size > max_bytes:
            raise ImageError(uri, f"file too large ({info.size:,} bytes, at most {max_bytes:,})")
        with filesystem.open_input_stream(inner) as stream:
            return stream.read(max_bytes + 1)
    except (OSError, ValueError) as error:  # pyarrow's errors: unknown scheme, no credentials, network
        raise ImageError(uri, f"cannot read ({_one_line(error)})") from None


def read_uri_bytes(uri: str, max_bytes: int, timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """The bytes of the file at uri (at most max_bytes + 1 of them); ImageError naming the URI when it cannot be
    read, or when no answer came within `timeout` seconds (None: wait as long as it takes)."""
    global _in_flight
    outcome: dict = {}
    done = threading.Event()

    def work():
        global _in_flight
        try:
            outcome["data"] = _read(uri, max_bytes)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error
        finally:
            with _lock:
                _in_flight -= 1
            done.set()

    with _lock:
        _in_flight += 1
    threading.Thread(target=work, name=f"read {uri}", daemon=True).start()
    if not done.wait(timeout):
        raise ImageError(uri, f"no answer within {timeout:g} s (--read_timeout)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["data"]
