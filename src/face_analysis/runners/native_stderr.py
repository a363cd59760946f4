"""What libjpeg ("Corrupt JPEG data: ...") and libpng print of a file they decode goes straight to stderr, without
the file's name. While `run --img` works, descriptor 2 is an unlinked file that a thread copies to the real stderr,
those lines left out, and sys.stderr writes to the real stderr itself (the progress bar and the lines printed
stay in order); each input read while such a line was printed gets it back in a warning naming the file (inputs
read at the same time are each read again alone, to tell which of them printed it)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import tempfile
import threading

from tqdm import tqdm

NATIVE = re.compile(rb"(?:Corrupt JPEG data: |Premature end of JPEG file|Invalid SOS parameters for sequential JPEG"
                    rb"|Warning: unknown JFIF revision number |Inconsistent progression sequence |Unknown Adobe "
                    rb"color transform code |libpng (?:error|warning): )[^\n]*\n")
COPY_SECONDS = 0.05  # how often what was printed is copied to the real stderr


class NativeStderr:
    """Use as a context manager, with `reading(item, reread)` around each input's reading and decoding;
    `describe(item)` names an input in the warnings."""

    def __init__(self, describe=str):
        self.describe, self.copied, self.closed, self.saved = describe, 0, False, None
        self.gate, self.open, self.probing, self.waiting = threading.Condition(), {}, False, 0
        self.stop = threading.Event()

    def __enter__(self):
        sys.stderr.flush()
        try:
            self.file = tempfile.TemporaryFile(buffering=0)
            self.saved = os.dup(2)
        except OSError:  # no stderr, or no room to gather it: those lines go out as they are
            self.closed = True
            return self
        fcntl.fcntl(self.file.fileno(), fcntl.F_SETFL, fcntl.fcntl(self.file.fileno(), fcntl.F_GETFL) | os.O_APPEND)
        self.python_stderr = python_stderr = sys.stderr
        with contextlib.suppress(AttributeError, OSError, ValueError):  # pytest's capture: not on descriptor 2
            if sys.stderr.fileno() == 2:
                python_stderr = open(self.saved, "w", buffering=1, encoding=sys.stderr.encoding,
                                     errors=sys.stderr.errors, closefd=False)
        self.thread = threading.Thread(target=self._copy_loop, daemon=True, name="native-stderr")
        self.thread.start()
        sys.stderr = python_stderr
        os.dup2(self.file.fileno(), 2)  # last: nothing after it can fail and leave stderr redirected
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            return
        sys.stderr.flush()
        sys.stderr, python_stderr = self.python_stderr, sys.stderr
        if python_stderr is not sys.stderr:
            python_stderr.close()
        with self.gate:
            self.closed = True
            os.dup2(self.saved, 2)
            self.gate.notify_all()
        self.stop.set()
        self.thread.join()
        self._copy(final=True)
        os.close(self.saved)
        self.file.close()

    def _size(self) -> int:
        """How much has been printed."""
        with contextlib.suppress(OSError, ValueError):
            return os.fstat(self.file.fileno()).st_size
        return 0

    def _read(self, start: int, end: int | None = None) -> bytes:
        """What was printed from offset start (to end)."""
        with contextlib.suppress(OSError, ValueError):
            return os.pread(self.file.fileno(), max(0, (self._size() if end is None else end) - start), start)
        return b""

    def _copy(self, final: bool = False) -> None:
        """What was printed since the last copy, up to its last line or carriage return, NATIVE's lines left out."""
        data = self._read(self.copied)
        end = len(data) if final else max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        with contextlib.suppress(OSError):  # stderr closed: nothing to show it on
            os.write(self.saved, NATIVE.sub(b"", data[:end]))
        self.copied += end

    def _copy_loop(self) -> None:
        while not self.stop.wait(COPY_SECONDS):
            self._copy()

    @contextlib.contextmanager
    def reading(self, item, reread):
        """Around one input's reading and decoding: NATIVE's lines printed meanwhile are named after `item`, or,
        when another input was read at the same time, `reread(item)` is called again alone to tell."""
        window = object()
        with self.gate:
            self.gate.wait_for(lambda: not (self.probing or self.waiting) or self.closed)
            self.open = {**dict.fromkeys(self.open, True), window: bool(self.open)}  # True: read beside another
            start = self._size()
        try:
            yield
        finally:
            with self.gate:
                shared, end = self.open.pop(window), self._size()
                self.gate.notify_all()
            lines = self._lines(start, end)
            if lines and shared:
                self._probe(item, reread)
            elif lines:
                self._warn(item, lines)

    def _lines(self, start: int, end: int) -> list[str]:
        found = NATIVE.findall(self._read(start, end)) if end > start and not self.closed else []
        return list(dict.fromkeys(line.decode("utf-8", "replace").strip() for line in found))

    def _probe(self, item, reread) -> None:
        """Read `item` again while no other input is read, and name the lines that prints."""
        with self.gate:
            self.waiting += 1
            self.gate.wait_for(lambda: not (self.open or self.probing) or self.closed)
            self.waiting -= 1
            self.probing, start = not self.closed, self._size()
        if self.closed:
            return
        try:
            with contextlib.suppress(Exception):  # it failed the first time too: its error is reported there
                reread(item)
            lines = self._lines(start, self._size())
        finally:
            with self.gate:
                self.probing = False
                self.gate.notify_all()
        if lines:
            self._warn(item, lines)

    def _warn(self, item, lines: list[str]) -> None:
        damaged = any(line.startswith(("Corrupt", "Premature")) for line in lines)
        tqdm.write(f"warning: {self.describe(item)}: {'; '.join(lines)}" +
                   " (decoded as far as the data goes)" * damaged, file=sys.stderr)
