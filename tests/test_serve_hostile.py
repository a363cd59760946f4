"""`serve` against clients that stall, drag, send odd requests, and against signals: a real server for what the
network does, BodyGuard and Slots driven directly for the deadlines too long to wait for."""
import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import REPO_ROOT
from face_analysis.serving.app import GRACE_S
from face_analysis.serving.limits import BODY_IDLE_S, HEAD_S, BodyGuard, Slots, Stopping
from test_serve import post, server  # noqa: F401 - server is test_serve's fixture, started anew for this module

HEAD = b"POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
PART = b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"


@contextlib.contextmanager
def started_server():
    """`serve --port 0` with the normal model; the process and the base URL it announces, which must answer at
    once (the announcement comes once the port is bound). Killed at the end if it is still there."""
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "src" / "main.py"), "serve", "--model_type", "normal",
                                "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert line.startswith("serving the normal model on http://127.0.0.1:") and ":0/" not in line, line
        url = line.split()[-3].rstrip("/")
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        yield process, url
    finally:
        process.kill()
        process.wait()


def send_and_wait(url: str, data: bytes, limit: float) -> tuple[bytes, float, bool]:
    """Send raw bytes, then wait without sending more: what came back, after how long, and whether closed."""
    host, port = url.removeprefix("http://").split(":")
    start, answer = time.monotonic(), b""
    with socket.create_connection((host, int(port)), timeout=limit) as conn:
        conn.sendall(data)
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except TimeoutError:
            return answer, time.monotonic() - start, False
    return answer, time.monotonic() - start, True


def test_stalled_clients_are_answered_and_closed_in_bounded_time(server):  # noqa: F811
    stalls = {"a body shorter than its Content-Length": HEAD + b"Content-Length: 1000\r\n\r\n" + PART[:10],
              "half a request head": b"POST /analyze HTTP/1.1\r\nHost: x\r\n", "nothing sent": b""}
    with ThreadPoolExecutor(len(stalls)) as pool:
        outcomes = dict(zip(stalls, pool.map(lambda data: send_and_wait(server, data, 40), stalls.values())))
    answer, seconds, closed = outcomes["a body shorter than its Content-Length"]
    assert answer.startswith(b"HTTP/1.1 408") and b"10 of 1000 bytes" in answer and b"connection: close" in answer
    assert closed and seconds < BODY_IDLE_S + 5
    for case in ("half a request head", "nothing sent"):
        assert outcomes[case][0] == b"" and outcomes[case][2] and outcomes[case][1] < HEAD_S + 5, case


def test_sigterm_ends_serve_within_the_grace_period_despite_a_stalled_upload(astronaut_jpg):
    body = PART + astronaut_jpg.read_bytes() + b"\r\n--x--\r\n"
    with started_server() as (process, url):
        address = url.removeprefix("http://").split(":")
        stalled, *under_way = (socket.create_connection(address, timeout=30) for _ in range(4))
        stalled.sendall(HEAD + b"Content-Length: 100000\r\n\r\n" + PART)
        for conn in under_way:  # whole requests sent before the signal: they are answered
            conn.sendall(HEAD + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=GRACE_S + 30)
        assert time.monotonic() - start < GRACE_S + 5
        answers = [conn.recv(65536) for conn in (stalled, *under_way)]
        for conn in (stalled, *under_way):
            conn.close()
    assert answers[0].startswith(b"HTTP/1.1 503") and all(a.startswith(b"HTTP/1.1 200") for a in answers[1:])
    assert process.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr


def test_sighup_stops_serve_as_sigterm_does(astronaut_jpg):
    with started_server() as (process, url):
        assert post(url, astronaut_jpg.read_bytes()).status_code == 200
        process.send_signal(signal.SIGHUP)
        _, stderr = process.communicate(timeout=GRACE_S + 30)
    assert process.returncode == 128 + signal.SIGHUP
    assert "Traceback" not in stderr and "stopped by SIGHUP" in stderr


def test_a_port_in_use_is_one_line_and_nothing_announced():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(REPO_ROOT / "src" / "main.py"), "serve", "--model_type", "normal",
                               "--port", str(port)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr == f"error: port {port}: address already in use\n"


def test_no_page_that_needs_a_cdn(server):  # noqa: F811
    for path in ("/docs", "/redoc"):
        response = httpx.get(server + path)
        assert response.status_code == 404 and "/openapi.json" in response.json()["detail"]
    assert "/analyze" in httpx.get(server + "/openapi.json").json()["paths"]
    assert "http" not in httpx.get(server + "/").text.replace(server, "")


@pytest.mark.parametrize("path", ["/", "/health"])
def test_head_requests(server, path):  # noqa: F811
    response = httpx.head(server + path)
    assert response.status_code == 200 and response.content == b""


def test_odd_uploads_get_a_clear_answer(server, astronaut_jpg):  # noqa: F811
    photo = astronaut_jpg.read_bytes()
    two = httpx.post(server + "/analyze", files=[("image", ("a.jpg", photo)), ("image", ("b.jpg", photo))])
    assert two.status_code == 422 and "one photo per request (2 sent)" in two.json()["detail"]
    for response in (post(server, photo, field="file"),
                     httpx.post(server + "/analyze", content=photo, headers={"content-type": "image/jpeg"})):
        assert response.status_code == 422 and "multipart/form-data field 'image'" in response.json()["detail"]
    windows = post(server, photo, name="C:\\Users\\me\\..\\photo.jpg")
    assert windows.status_code == 200 and windows.json()["image"] == "photo.jpg"


def guard(receive, **limits) -> list[dict]:
    """What BodyGuard around an app reading the whole body sends, given `receive`."""
    async def reader(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(BodyGuard(reader, limit=10_000, **limits)({"type": "http", "headers": []}, receive, send))
    return sent


async def drip():
    await asyncio.sleep(0.02)
    return {"type": "http.request", "body": b"x", "more_body": True}


async def stall():
    await asyncio.Event().wait()


def test_a_body_that_stalls_or_drags_is_408():
    start = time.monotonic()
    stalled = guard(stall, idle_s=0.2, total_s=5)
    dragged = guard(drip, idle_s=1, total_s=0.5)
    assert time.monotonic() - start < 2
    assert stalled[0]["status"] == 408 and (b"connection", b"close") in stalled[0]["headers"]
    assert dragged[0]["status"] == 408 and b"must arrive within 0.5 s" in dragged[1]["body"]


def test_a_request_cancelled_at_the_end_of_the_grace_gets_503():
    sent = []

    async def send(message):
        sent.append(message)

    async def cancelled():
        task = asyncio.create_task(BodyGuard(lambda scope, receive, send: receive(), limit=10)(
            {"type": "http", "headers": []}, stall, send))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    asyncio.run(cancelled())
    assert sent[0]["status"] == 503 and b"stopping" in sent[1]["body"]


def test_photos_still_waiting_for_a_slot_give_up_when_the_server_stops():
    slots, outcome = Slots(1), []

    def wait_for_a_slot():
        try:
            with slots:
                outcome.append("analysed")
        except Stopping:
            outcome.append("given up")

    with slots:
        waiting = threading.Thread(target=wait_for_a_slot)
        waiting.start()
        time.sleep(0.1)
        slots.stop()
        waiting.join(timeout=5)
    assert outcome == ["given up"]
