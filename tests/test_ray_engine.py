"""`run --engine ray` on a local Ray cluster of two nodes with one CPU each."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, ctrl_c, default_sigint, photo_folder, run_cli
from face_analysis.io import writers as results_io

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture
def photos(tmp_path, astronaut_jpg):
    """48 copies of a face photo, a crowd photo, a broken JPEG and an empty file."""
    return photo_folder(tmp_path / "photos", astronaut_jpg, 48, REPO_ROOT / "examples" / "crowd.jpg")


def ray_run(cluster, *args, **popen):
    """`run --engine ray` against the cluster, as a separate driver process."""
    command = [sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", "--engine", "ray", "--ray_address",
               cluster.address, "--model_type", "normal", "--quiet", *args]
    return subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint, **popen)


def ray_processes(title: str) -> list[int]:
    """The pids of Ray workers whose process title starts with title."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if file.read().startswith(title.encode()):
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_ray_gives_the_same_json_as_the_local_engine(cluster, photos, tmp_path):
    local, remote = tmp_path / "local.json", tmp_path / "ray.json"
    missing = tmp_path / "missing.jpg"
    assert run_cli("run", "--img", photos, missing, "--model_type", "normal", "--json", local, "--quiet") == 1
    process = ray_run(cluster, "--img", photos, missing, "--json", remote)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err  # the broken, empty and missing files
    expected = json.loads(local.read_text())
    assert len(expected) == 52 and sum(bool(r["error"]) for r in expected) == 3
    assert json.loads(remote.read_text()) == expected  # same objects, same order
    assert err.count("error: ") == 3 and "Traceback" not in err


def test_people_with_ray_are_numbered_as_by_the_local_engine(cluster, astronaut_jpg, camera_jpg, tmp_path):
    """`run --people`: the actors return each face's embedding with its result; the driver clusters them all."""
    folder = photo_folder(tmp_path / "few", astronaut_jpg, 3, camera_jpg)
    local, remote, saved = tmp_path / "local.json", tmp_path / "ray.json", tmp_path / "faces.npz"
    assert run_cli("run", "--img", folder, "--people", "--model_type", "normal", "--json", local, "--quiet") == 1
    process = ray_run(cluster, "--img", folder, "--people", "--json", remote, "--embeddings", saved)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err  # the broken and the empty file
    expected = json.loads(local.read_text())
    assert sorted({f["person"] for r in expected for f in r["faces"]}) == [1, 2]
    assert json.loads(remote.read_text()) == expected
    with np.load(saved) as embeddings:
        assert embeddings["embedding"].shape == (4, 512) and sorted(set(embeddings["person"])) == [1, 2]


def test_people_resumed_with_ray_keep_their_numbers(cluster, astronaut_jpg, camera_jpg, tmp_path):
    """--resume --people on Ray after a local run: the earlier faces' numbers stay, new photos of them join."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photo in (("a.jpg", astronaut_jpg), ("b.jpg", camera_jpg)):
        (folder / name).write_bytes(photo.read_bytes())
    lines, saved = tmp_path / "r.jsonl", tmp_path / "faces.npz"
    assert run_cli("run", "--img", folder, "--people", "--model_type", "normal", "--jsonl", lines,
                   "--embeddings", saved, "--quiet") == 0
    before = {Path(r["image"]).name: r["faces"][0]["person"] for r in map(json.loads, lines.read_text().splitlines())}
    for name, photo in (("c.jpg", camera_jpg), ("d.jpg", astronaut_jpg)):
        (folder / name).write_bytes(photo.read_bytes())
    process = ray_run(cluster, "--img", folder, "--people", "--jsonl", lines, "--embeddings", saved, "--resume")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    after = {Path(r["image"]).name: r["faces"][0]["person"] for r in map(json.loads, lines.read_text().splitlines())}
    assert after == {**before, "c.jpg": before["b.jpg"], "d.jpg": before["a.jpg"]}
    with np.load(saved) as embeddings:
        assert len(embeddings["person"]) == 4


def test_an_actor_killed_during_the_job_loses_no_image(cluster, photos, tmp_path):
    target = tmp_path / "ray.json"
    process = ray_run(cluster, "--img", photos, "--json", target)
    deadline, killed = time.time() + 120, None
    while killed is None and process.poll() is None and time.time() < deadline:
        busy = ray_processes("ray::MapWorker(MapBatches(Analyse)).submit")
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    _, err = process.communicate(timeout=300)
    assert killed is not None, "no analysing actor was seen at work"
    assert process.returncode == 1, err
    results = json.loads(target.read_text())
    assert sorted(r["image"] for r in results) == sorted(str(p) for p in photos.iterdir())
    copies = [r for r in results if Path(r["image"]).name.startswith("p")]
    assert all(r["faces"] == copies[0]["faces"] and len(r["faces"]) == 1 for r in copies)


def test_resume_after_the_driver_is_killed(cluster, photos, tmp_path):
    folder, target = tmp_path / "parquet", tmp_path / "out.json"
    process = ray_run(cluster, "--img", photos, "--parquet", folder, "--parquet_rows", 4)
    deadline = time.time() + 120
    while time.time() < deadline and len(results_io.parquet_files(folder)) < 2 and process.poll() is None:
        time.sleep(0.02)
    process.kill()
    process.communicate()
    before = results_io.read_parquet_results(folder)
    assert 8 <= len(before) < 51, "the driver was not killed half-way"
    process = ray_run(cluster, "--img", photos, "--parquet", folder, "--parquet_rows", 4, "--resume", "--json", target)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err
    names = sorted(str(p) for p in photos.iterdir())
    assert sorted(r["image"] for r in results_io.read_parquet_results(folder)) == names
    assert sorted(r["image"] for r in json.loads(target.read_text())) == names


def test_ray_gives_up_on_a_read_that_never_answers(cluster, photos, tmp_path):
    from test_hostile_batch import EndlessServer

    server = EndlessServer()
    listed, target = tmp_path / "list.txt", tmp_path / "ray.json"
    listed.write_text(f"{photos / 'p00.jpg'}\n{server.uri()}\n{photos / 'p01.jpg'}\n")
    try:
        process = ray_run(cluster, "--img_list", listed, "--json", target, "--read_timeout", 3)
        _, err = process.communicate(timeout=300)
    finally:
        server.close()
    assert process.returncode == 1, err
    assert f"error: {server.uri()}: no answer within 3 s" in err and "Traceback" not in err
    results = json.loads(target.read_text())
    assert [bool(r["faces"]) for r in results] == [True, False, True]


def test_ray_ctrl_c_during_a_read_that_never_answers_ends_the_run(cluster, photos, tmp_path):
    from test_hostile_batch import EndlessServer

    server = EndlessServer()
    listed, target = tmp_path / "list.txt", tmp_path / "ray.json"
    listed.write_text("".join(f"{p}\n" for p in sorted(photos.glob("p*.jpg"))) + server.uri() + "\n")
    try:
        process = ray_run(cluster, "--img_list", listed, "--json", target, "--read_timeout", 600)
        deadline = time.time() + 240
        while time.time() < deadline and (not server.connections or not target.exists()
                                          or target.read_text().count('"image"') < 16):
            time.sleep(0.2)
        assert server.connections, "no read task asked the server"
        err, took = ctrl_c(process)
    finally:
        server.close()
    assert process.returncode == 130, err
    assert took < 15, took
    assert 16 <= len(json.loads(target.read_text())) < 49 and "Traceback" not in err
