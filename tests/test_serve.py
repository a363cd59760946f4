"""`serve`: the HTTP API on a real uvicorn server on a free localhost port, and its page in a headless browser."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from conftest import REPO_ROOT, run_cli
from face_analysis.analyzer import FaceAnalyzer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`python src/main.py serve` with the normal model and a 1 MB upload limit; its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "src" / "main.py"), "serve", "--model_type", "normal",
                                "--port", str(port), "--max_upload_mb", "1"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except OSError:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=20)


def post(url, data: bytes, name="photo.jpg", field="image", **params):
    return httpx.post(url + "/analyze", files={field: (name, data, "application/octet-stream")}, params=params,
                      timeout=120)


def test_a_photo_gets_the_same_object_as_run_json(server, astronaut_jpg, tmp_path):
    response = post(server, astronaut_jpg.read_bytes(), name="astronaut.jpg")
    assert response.status_code == 200
    target = tmp_path / "run.json"
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--json", target) == 0
    [expected] = json.loads(target.read_text())
    assert response.json() == {**expected, "image": "astronaut.jpg"}


def test_health_and_openapi(server):
    health = httpx.get(server + "/health").json()
    assert health["status"] == "ok" and health["model_type"] == "normal"
    assert "/analyze" in httpx.get(server + "/openapi.json").json()["paths"]


def test_a_photo_without_a_face(server):
    ok, blank = cv2.imencode(".png", np.full((200, 300, 3), 180, np.uint8))
    body = post(server, blank.tobytes(), name="blank.png").json()
    assert body["faces"] == [] and body["error"] is None and (body["width"], body["height"]) == (300, 200)


@pytest.mark.parametrize("data, status, message", [
    (b"not a picture at all", 422, "not an image"),
    (b"", 422, "empty file"),
])
def test_bad_files_get_a_json_error(server, data, status, message):
    response = post(server, data, name="bad.jpg")
    assert response.status_code == status and message in response.json()["detail"]


def test_a_missing_field_or_a_model_not_loaded_is_422(server, astronaut_jpg):
    assert post(server, astronaut_jpg.read_bytes(), field="photo").status_code == 422
    response = post(server, astronaut_jpg.read_bytes(), model_type="facenet")
    assert response.status_code == 422 and "not loaded" in response.json()["detail"]


def test_an_oversized_upload_is_refused_while_it_arrives(server):
    big = os.urandom(3 * 2**20)
    assert post(server, big).status_code == 413  # declared by its Content-Length

    def chunks():  # no Content-Length: the limit is counted as the bytes arrive
        yield b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n\r\n"
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]
        yield b"\r\n--x--\r\n"

    response = httpx.post(server + "/analyze", content=chunks(),
                          headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)
    assert response.status_code == 413 and "too large" in response.json()["detail"]


def test_eight_concurrent_clients(server, astronaut_jpg):
    data = astronaut_jpg.read_bytes()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: post(server, data, name="a.jpg"), range(32)))
    assert [r.status_code for r in responses] == [200] * 32
    assert all(r.json() == responses[0].json() for r in responses)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")
def test_the_page_shows_the_faces_of_a_chosen_photo(server, astronaut_jpg, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page()
        page.goto(server + "/")
        page.set_input_files("#file", str(astronaut_jpg))
        page.wait_for_selector("#faces tbody tr", timeout=60000)
        assert "1 face(s) in astronaut.jpg (512x512)" in page.inner_text("#status")
        cells = page.inner_text("#faces tbody tr").split("\t")
        [face] = FaceAnalyzer("normal").analyze(astronaut_jpg)  # the page shows what the model says
        assert cells[1] == ", ".join(map(str, face.box)) and cells[2].startswith(f"{face.age:.0f} (")
        assert cells[3].startswith(f"{face.gender} (") and cells[4].startswith(f"{face.race} (")
        page.screenshot(path=str(tmp_path / "page.png"))
        page.set_input_files("#file", str(REPO_ROOT / "README.md"))
        page.wait_for_selector("#status.error", timeout=60000)
        assert "not an image" in page.inner_text("#status")
        browser.close()
    shot = cv2.imread(str(tmp_path / "page.png"))
    blue, green, red = (shot[..., i].astype(int) for i in range(3))
    assert ((green > 200) & (red < 90) & (blue < 90)).sum() > 100  # the green box drawn on the canvas


def test_a_422_never_echoes_the_upload(server, astronaut_jpg):
    photo = astronaut_jpg.read_bytes().decode("latin-1")  # `curl -F 'image=<photo.jpg'`: a text field, no filename
    response = httpx.post(server + "/analyze", data={"image": photo}, timeout=60)
    assert response.status_code == 422 and len(response.content) < 500
    assert "file upload is needed" in response.json()["detail"]
    response = httpx.post(server + "/analyze", data={"photo": "x" * 100_000}, timeout=60)
    assert response.status_code == 422 and len(response.content) < 500 and "xxxx" not in response.text


def raw_post(server, body: bytes, length: int, half_close: bool = False) -> bytes:
    """A POST /analyze sent over a bare socket with the given Content-Length; the raw answer."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                     b"Content-Length: " + str(length).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        if half_close:
            conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_truncated_or_mis_sized_multipart_body_is_400(server, astronaut_jpg):
    data = astronaut_jpg.read_bytes()
    body = b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n" + data + b"\r\n--x--\r\n"
    cut = httpx.post(server + "/analyze", content=body[:len(body) // 2],
                     headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)
    assert cut.status_code == 400 and "truncated multipart body" in cut.json()["detail"]
    short = raw_post(server, body, len(body) - 100)  # a Content-Length smaller than the body
    assert short.startswith(b"HTTP/1.1 400") and b"truncated multipart body" in short
    assert raw_post(server, body, len(body)).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("filename", ['""', '"/"', '"../.."'])
def test_an_upload_without_a_usable_name_is_named_upload(server, astronaut_jpg, filename):
    body = (f"--x\r\nContent-Disposition: form-data; name=\"image\"; filename={filename}\r\n\r\n".encode()
            + astronaut_jpg.read_bytes() + b"\r\n--x--\r\n")
    response = httpx.post(server + "/analyze", content=body, headers={"content-type": "multipart/form-data; boundary=x"},
                          timeout=60)
    assert response.status_code == 200 and response.json()["image"] == "upload"


def test_answers_are_sent_without_waiting_for_the_clients_ack():
    """The connections the server accepts have TCP_NODELAY (asyncio sets it only where the listening socket says
    TCP): without it each answer waited for the client's delayed ACK, about 40 ms a request."""
    import asyncio

    from face_analysis.serving.app import _bind

    listening = _bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        flags = asyncio.get_running_loop().create_future()

        def connected(reader, writer):
            flags.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname())
            flag = await asyncio.wait_for(flags, 10)
            writer.close()
        return flag

    assert asyncio.run(accepted_nodelay()) != 0


def test_copies_of_the_model_give_concurrent_callers_the_same_answers(astronaut_jpg):
    """serve's analyser: a copy of the model for each of its threads, the same predictions as one copy."""
    single = FaceAnalyzer("facenet", threads=2)
    copies = FaceAnalyzer("facenet", threads=2, parallel=2)
    assert copies._models.qsize() == 2 and single._models.qsize() == 1
    expected = single.analyze(str(astronaut_jpg))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: copies.analyze(str(astronaut_jpg)), range(8)))
    assert copies._models.qsize() == 2  # every copy given back
    for faces in answers:
        assert [(f.box, f.gender, f.race) for f in faces] == [(f.box, f.gender, f.race) for f in expected]
        assert abs(faces[0].age - expected[0].age) < 0.5
