"""`train --distribute`: mirrored over two logical CPU devices, and two multi_worker processes on this machine.

Each training runs as its own process: logical devices and multi-worker collectives must be set up before
TensorFlow starts, which the in-process tests have done long before."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd

from conftest import REPO_ROOT


def train(tiny_utk, model_dir, *args, env=None, **popen):
    command = [sys.executable, str(REPO_ROOT / "src" / "main.py"), "train", "--model_type", "normal", "--data_path",
               tiny_utk, "--model_path", model_dir, "--stats_dir", model_dir.parent / f"{model_dir.name}-stats", *args]
    return subprocess.Popen([str(c) for c in command], env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finished(process, timeout=600) -> str:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return err


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index: int) -> dict:
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}


def test_mirrored_over_two_cpu_devices_matches_one_device_at_the_same_global_batch(tiny_utk, tmp_path):
    single = train(tiny_utk, tmp_path / "single", "--epochs", 2, "--batch_size", 16)
    finished(single)
    mirrored = train(tiny_utk, tmp_path / "mirrored", "--epochs", 2, "--batch_size", 8, "--distribute", "mirrored",
                     "--devices", "CPU:0", "CPU:1")
    err = finished(mirrored)
    assert "global batch 16 (8 per replica x 2 replicas)" in err
    info = json.loads((tmp_path / "mirrored" / "model.json").read_text())
    assert info["distribute"] == "mirrored" and info["replicas"] == 2
    one, two = (pd.read_csv(tmp_path / name / "history.csv") for name in ("single", "mirrored"))
    assert len(one) == len(two) == 2
    # dropout masks and batch-norm statistics (per replica) differ; the rest is the same computation
    for column in ("loss", "val_loss"):
        assert (abs(one[column] - two[column]) / one[column]).max() < 0.05, (column, one[column], two[column])


def test_multi_worker_trains_saves_once_and_resumes_after_a_worker_dies(tiny_utk, tmp_path):
    model_dir, cache = tmp_path / "model", tmp_path / "cache"
    env = {"FACE_ANALYSIS_CACHE": str(cache)}
    ports = free_ports(2)
    args = ("--epochs", 4, "--batch_size", 8, "--distribute", "multi_worker")
    workers = [train(tiny_utk, model_dir, *args, env={**env, **tf_config(ports, i)}) for i in range(2)]
    checkpoints = cache / "checkpoints"
    deadline = time.time() + 300

    def epochs_done(state) -> int:
        try:
            return json.loads(state.read_text())["epoch"]
        except (OSError, ValueError):
            return 0

    while time.time() < deadline and all(w.poll() is None for w in workers):
        states = list(checkpoints.glob("*/state.json")) + list(checkpoints.glob("*/worker-1/state.json"))
        if len(states) == 2 and all(epochs_done(s) >= 1 for s in states):
            break
        time.sleep(0.1)
    workers[1].send_signal(signal.SIGKILL)  # a worker dies after epoch 1
    workers[1].communicate()
    workers[0].kill()  # the chief cannot go on without it; the job is restarted
    workers[0].communicate()
    assert not model_dir.exists()
    done_before = epochs_done(next(checkpoints.glob("*/state.json")))
    assert 1 <= done_before < 4
    ports = free_ports(2)
    workers = [train(tiny_utk, model_dir, *args, "--resume", env={**env, **tf_config(ports, i)}) for i in range(2)]
    errs = [finished(w) for w in workers]
    assert f"epoch {done_before} done" in errs[0] and "the chief saves the model" in errs[1]
    history = pd.read_csv(model_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]  # the epochs before the failure kept, the rest trained
    info = json.loads((model_dir / "model.json").read_text())
    assert info["distribute"] == "multi_worker" and info["replicas"] == 2
    assert not list(checkpoints.glob("*/state.json"))  # the chief removed its checkpoints after saving
