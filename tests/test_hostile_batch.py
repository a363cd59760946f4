"""Hostile batches (issue 26): reads that never answer, signals during them, one image under two names, two runs
on one folder, headerless lists, a full disk, JSON Lines after SIGKILL. Real processes, real signals, a real
tmpfs."""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REPO_ROOT, default_sigint, run_cli
from face_analysis.io import lists as image_lists
from face_analysis.io import writers as results_io

MAIN = str(REPO_ROOT / "src" / "main.py")


class EndlessServer:
    """A local server that accepts, reads the request and then never finishes answering: it trickles header
    lines, so that no client-side low-speed timeout fires either (a silent socket is given up on by pyarrow's
    S3 client after its own retries)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(50)
        self.port, self.connections, self.open = self.socket.getsockname()[1], [], True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.open:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn):
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while self.open:
                conn.sendall(b"X-Wait: still thinking\r\n")
                time.sleep(0.5)
        except OSError:
            pass

    def uri(self, name="never.jpg") -> str:
        return (f"s3://key:secret@bucket/{name}?endpoint_override=127.0.0.1:{self.port}&scheme=http"
                "&region=us-east-1")

    def close(self):
        self.open = False
        self.socket.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def endless():
    server = EndlessServer()
    yield server
    server.close()


@pytest.fixture
def photos(tmp_path, astronaut_jpg):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (folder / name).write_bytes(astronaut_jpg.read_bytes())
    return folder


def start(*args, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.Popen([sys.executable, MAIN, "run", "--model_type", "normal", "--quiet", *map(str, args)],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, preexec_fn=default_sigint)


def test_a_read_that_never_answers_is_given_up_on_and_the_others_are_done(photos, tmp_path, endless):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{photos / 'a.jpg'}\n{endless.uri()}\n{photos / 'b.jpg'}\n")
    target = tmp_path / "out.json"
    began = time.monotonic()
    process = start("--img_list", listed, "--json", target, "--read_timeout", 2)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert time.monotonic() - began < 60
    assert f"error: {endless.uri()}: no answer within 2 s" in err and "Traceback" not in err
    results = json.loads(target.read_text())
    assert [r["image"] for r in results] == [str(photos / "a.jpg"), endless.uri(), str(photos / "b.jpg")]
    assert results[0]["faces"] and results[2]["faces"] and "no answer" in results[1]["error"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_a_read_that_never_answers_ends_the_run(photos, tmp_path, endless, signum):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{photos / 'a.jpg'}\n{endless.uri()}\n")
    target, lines = tmp_path / "out.json", tmp_path / "out.jsonl"
    process = start("--img_list", listed, "--json", target, "--jsonl", lines, "--read_timeout", 600)
    deadline = time.monotonic() + 120
    while not endless.connections and time.monotonic() < deadline:
        time.sleep(0.1)
    assert endless.connections, "the run never asked the server"
    time.sleep(1)
    sent = time.monotonic()
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert isinstance(json.loads(target.read_text()), list)
    assert all(json.loads(line) for line in lines.read_text().splitlines())


def test_an_image_is_one_result_however_it_is_named(photos, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "pq"
    assert run_cli("run", "--img", photos, "--model_type", "normal", "--parquet", folder, "--quiet") == 0
    monkeypatch.chdir(tmp_path)
    os.symlink(photos / "a.jpg", tmp_path / "link.jpg")
    target = tmp_path / "out.json"
    code = run_cli("run", "--img", "./imgs", "imgs/a.jpg", "link.jpg", "--model_type", "normal", "--parquet", "pq",
                   "--resume", "--json", target)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "resuming: 3 image(s) done before, 0 to go" in err
    assert len(results_io.read_parquet_results(folder)) == 3 and len(json.loads(target.read_text())) == 3
    (photos / "d.jpg").write_bytes((photos / "a.jpg").read_bytes())  # the list changed: only the new one is done
    monkeypatch.chdir(photos)
    assert run_cli("run", "--img", ".", "../link.jpg", "--model_type", "normal", "--parquet", folder,
                   "--resume") == 0
    err = capsys.readouterr().err
    assert "resuming: 3 image(s) done before, 1 to go" in err
    assert sorted(Path(r["image"]).name for r in results_io.read_parquet_results(folder)) == [
        "a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert run_cli("run", "--img", "a.jpg", "./a.jpg", "../link.jpg", "--model_type", "normal", "--json",
                   target) == 0
    assert len(json.loads(target.read_text())) == 1
    assert "1 image(s)" in capsys.readouterr().err


def test_a_parquet_folder_another_run_writes_is_refused(photos, tmp_path, astronaut_jpg, capsys):
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        (many / f"p{i:03d}.jpg").write_bytes(astronaut_jpg.read_bytes())
    folder = tmp_path / "pq"
    process = start("--img", many, "--parquet", folder, "--parquet_rows", 5)
    try:
        deadline = time.monotonic() + 120
        while len(results_io.parquet_files(folder)) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the first run ended too soon"
        code = run_cli("run", "--img", many, "--model_type", "normal", "--parquet", folder, "--resume")
        err = capsys.readouterr().err
        assert code == 2 and "another run is writing this folder" in err and err.count("\n") == 1, err
    finally:
        process.kill()
        process.communicate()
    with open(folder / ".results-lock") as held:  # the lock is what refuses: held, the folder is refused
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run_cli("run", "--img", many, "--model_type", "normal", "--parquet", folder, "--resume") == 2
    assert "another run is writing" in capsys.readouterr().err


def test_a_headerless_csv_and_skipped_rows_are_counted(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.csv").write_text("imgs/a.jpg,first\nimgs/b.jpg,second\n\n,\nimgs/c.jpg,third\n")
    listed = image_lists.list_file(tmp_path / "list.csv")
    assert listed.items == ["imgs/a.jpg", "imgs/b.jpg", "imgs/c.jpg"] and listed.skipped == {"blank": 2}
    (tmp_path / "missing.csv").write_text("gone/x.jpg\nimgs/a.jpg\n")  # a first row that is a missing file
    assert image_lists.read_image_list(tmp_path / "missing.csv") == ["gone/x.jpg", "imgs/a.jpg"]
    (tmp_path / "header.csv").write_text("file,label\nimgs/a.jpg,x\n")  # a header without `path`
    assert image_lists.read_image_list(tmp_path / "header.csv") == ["imgs/a.jpg"]
    (tmp_path / "list.txt").write_bytes(b"# mine\nimgs/a.jpg\r\n\n  \nimgs/\xff.jpg\nimgs/b.jpg\x00x\n")
    target = tmp_path / "out.json"
    assert run_cli("run", "--img_list", "list.csv", "--model_type", "normal", "--json", target) == 0
    assert len(json.loads(target.read_text())) == 3
    assert "2 list row(s) skipped (blank 2)" in capsys.readouterr().err
    assert run_cli("run", "--img_list", "list.txt", "--model_type", "normal", "--json", target) == 1
    err = capsys.readouterr().err
    assert "4 list row(s) skipped (blank 2, comment 1, not UTF-8 1)" in err and "NUL byte" in err
    assert [r["error"] is None for r in json.loads(target.read_text())] == [True, False]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 32 KB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("option", ["--json", "--csv", "--jsonl", "--parquet"])
def test_a_full_disk_is_named_and_what_was_written_stays_valid(tmp_path, astronaut_jpg, tiny_disk, option):
    many = tmp_path / "many"
    many.mkdir()
    for i in range(200):
        (many / f"p{i:03d}.jpg").write_bytes(astronaut_jpg.read_bytes())
    target = tiny_disk / ("pq" if option == "--parquet" else "out")
    process = start("--img", many, option, target, *(["--parquet_rows", 2] if option == "--parquet" else []))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err
    assert f"error: {option} {target}: no space left on device" in err and "Traceback" not in err
    if option == "--json":
        assert 3 < len(json.loads(target.read_text())) < 200
    elif option == "--jsonl":
        lines = target.read_text().splitlines()
        assert 3 < len(lines) < 200 and all(json.loads(line)["image"] for line in lines)
    elif option == "--csv":
        rows = target.read_text().splitlines()
        assert len(rows) > 3 and target.read_text().endswith("\n")
        assert all(row.count(",") == rows[0].count(",") for row in rows)
    else:
        files = results_io.parquet_files(target)
        assert files and all(pq.read_table(path).num_rows == 2 for path in files)
        assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("folder", ["/sys/face-analysis", "/proc/face-analysis"])
def test_a_parquet_folder_that_cannot_be_written_is_named(photos, capsys, folder):
    assert run_cli("run", "--img", photos, "--model_type", "normal", "--parquet", folder) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --parquet {folder}: ") and err.count("\n") == 1, err


def test_jsonl_survives_sigkill_and_resume_completes_it(tmp_path, astronaut_jpg):
    many = tmp_path / "many"
    many.mkdir()
    for i in range(200):
        (many / f"p{i:03d}.jpg").write_bytes(astronaut_jpg.read_bytes())
    lines = tmp_path / "out.jsonl"
    process = start("--img", many, "--jsonl", lines)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not lines.exists() or lines.read_text().count("\n") < 5):
        time.sleep(0.05)
    process.kill()
    process.communicate()
    before = lines.read_text()
    complete = before[:before.rfind("\n") + 1].splitlines()
    assert 5 <= len(complete) < 200
    assert all(json.loads(line)["image"] for line in complete)  # every complete line is readable
    target = tmp_path / "out.json"
    process = start("--img", many, "--jsonl", lines, "--resume", "--json", target)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    names = [json.loads(line)["image"] for line in lines.read_text().splitlines()]
    assert sorted(names) == sorted(str(p) for p in many.iterdir())  # each image once
    assert len(json.loads(target.read_text())) == 200


def test_two_runs_of_one_process_within_a_second_keep_both_parquet_files(tmp_path):
    from face_analysis.io.writers import ParquetWriter

    for image in ("a.jpg", "b.jpg"):  # the same process, the same second: each run's file keeps its own name
        writer = ParquetWriter(tmp_path / "pq", 10)
        writer.write({"image": image, "faces": []})
        writer.close()
    assert sorted(r["image"] for r in results_io.read_parquet_results(tmp_path / "pq")) == ["a.jpg", "b.jpg"]
