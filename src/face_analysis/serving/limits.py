"""What `serve` does with slow, stalled, cut or oversized requests, below the application: an ASGI middleware over
each request body, uvicorn's HTTP/1.1 protocol given a deadline for the request head (uvicorn alone waits for
ever on a client that stops sending), and the analyses' slots. The limits below are documented in docs/serve.md."""
import asyncio
import json
import threading

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_S = 10  # a connection's whole request head must arrive within this, from its opening or its last answer
BODY_IDLE_S = 10  # a request body may pause at most this long ...
BODY_S = 120  # ... and must all arrive within this, else 408 and the connection closed


class _Refused(Exception):
    """The request body was refused while it was being received; the answer is sent by BodyGuard."""


class Stopping(Exception):
    """The server is stopping: a photo still waiting for an analysis slot is not analysed."""


class Slots:
    """At most `count` analyses at once, one `with` block each; once stop() is called, those still waiting give up
    (Stopping) instead of keeping a stopping process alive until every queued photo is analysed."""

    def __init__(self, count: int):
        self.free, self.stopped, self.changed = count, False, threading.Condition()

    def __enter__(self):
        with self.changed:
            self.changed.wait_for(lambda: self.free or self.stopped)
            if self.stopped:
                raise Stopping
            self.free -= 1

    def __exit__(self, *exc_info):
        with self.changed:
            self.free += 1
            self.changed.notify()

    def stop(self) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify_all()


class BodyGuard:
    """ASGI middleware over each request body: 413 past `limit` bytes (from the declared length or as the bytes
    arrive), 408 when it stalls or drags, 400 when a multipart body lacks its closing boundary (cut short); and
    503 to a request cancelled when the grace after SIGTERM is over, instead of uvicorn's traceback."""

    def __init__(self, app, limit: int, idle_s: float = BODY_IDLE_S, total_s: float = BODY_S):
        self.app, self.limit, self.idle_s, self.total_s = app, limit, idle_s, total_s
        self.too_large = f"upload too large: at most {limit / 2**20:g} MB"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _answer(send, 413, self.too_large)
        clock = asyncio.get_running_loop().time
        start, received, ended, tail, refusal, started = clock(), 0, False, b"", None, False
        closing = _closing_delimiter(headers.get(b"content-type", b""))

        async def guarded_receive():
            nonlocal received, ended, tail, refusal
            if ended:  # the body is whole: what is left to wait for is the client going away
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0, min(self.idle_s, start + self.total_s - clock())))
            except TimeoutError:
                refusal = 408, (f"request body incomplete: {received} of {(declared or b'?').decode()} bytes after "
                                f"{clock() - start:.0f} s (it may pause {self.idle_s:g} s at most and must arrive "
                                f"within {self.total_s:g} s)")
                raise _Refused from None
            body = message.get("body", b"")
            received += len(body)
            if received > self.limit:
                refusal = 413, self.too_large
                raise _Refused
            tail = (tail + body)[-(len(closing or b"") + 256):]
            ended = message["type"] != "http.request" or not message.get("more_body", False)
            if closing and ended and message["type"] == "http.request" and closing not in tail:
                refusal = 400, ("truncated multipart body: it does not end with its closing boundary (was the "
                                "upload cut short, or its Content-Length smaller than the body?)")
            return message

        async def guarded_send(message):
            nonlocal started
            if refusal is None:  # the app's own answer to a refused body is replaced by a clear one
                started = True
                await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Refused:
            pass
        except (asyncio.CancelledError, Stopping):  # the process ends: answered, not re-raised, as it is expected
            if started:
                return
            refusal = refusal or (503, "the server is stopping: this request was not finished; send it again")
        if refusal is not None:
            await _answer(send, *refusal, close=refusal[0] in (408, 503))


class HeadDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that has sent no whole request head HEAD_S seconds after
    it opened or after its last answer (uvicorn alone keeps an idle or half-sent connection open for ever)."""

    head_timer = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request waiting behind this answer starts inside the call below
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self.head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
        self.head_timer = self.loop.call_later(HEAD_S, self._head_late)

    def _head_late(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # no request under way: its head never came
            self.timeout_keep_alive_handler()


def _closing_delimiter(content_type: bytes) -> bytes | None:
    """b"--BOUNDARY--" for a multipart/form-data request, else None."""
    kind, _, options = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for option in options.split(b";"):
        name, _, value = option.strip().partition(b"=")
        if name.strip().lower() == b"boundary" and value.strip(b'" '):
            return b"--" + value.strip(b'" ') + b"--"
    return None


async def _answer(send, status: int, detail: str, close: bool = False) -> None:
    """A JSON error answer {"detail": ...} sent straight through ASGI; `close` ends the connection after it."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"connection", b"close")] * close})
    await send({"type": "http.response.body", "body": body})
