"""`train` faults: unusable data, hostile archives, a run killed mid-epoch, then resumed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from io import BytesIO

import pytest

from conftest import REPO_ROOT, run_cli
from face_analysis.labels import INPUT_SIZES
from face_analysis.models import architectures as build_model
from face_analysis.models import store as model_store
from face_analysis.data import utk as utk_data


def garbage_archive(folder):
    (folder / "garbage.tar.gz").write_bytes(b"\x1f\x8b not really gzip" * 50)
    return folder / "garbage.tar.gz"


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "no such file or folder"),
    (lambda d: d, "no labelled UTKFace images"),
    (garbage_archive, "not a folder of images nor a readable .tar.gz archive"),
])
def test_unusable_data_is_refused_before_any_work(tmp_path, capsys, make, message):
    (tmp_path / "holiday.jpg").write_bytes(b"not UTK named")
    assert run_cli("train", "--model_type", "normal", "--data_path", make(tmp_path), "--model_path",
                   tmp_path / "model") == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "model").exists()


def test_a_truncated_archive_is_refused_before_any_work(tiny_utk, tmp_path, capsys):
    archive = tmp_path / "utk.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_utk, arcname="utk")
    archive.write_bytes(archive.read_bytes()[:-3000])
    assert run_cli("train", "--model_type", "normal", "--data_path", archive, "--model_path", tmp_path / "m") == 1
    assert "corrupt archive" in capsys.readouterr().err


def test_archive_members_never_land_outside(tiny_utk, tmp_path):
    """Members named ../x or /x are read in memory by their base name; nothing is extracted anywhere."""
    archive = tmp_path / "inside" / "evil.tar.gz"
    archive.parent.mkdir()
    face = next(tiny_utk.glob("*.chip.jpg")).read_bytes()
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("../25_0_1_20170101000000001.jpg.chip.jpg", "/tmp/26_1_2_20170101000000002.jpg.chip.jpg",
                     "a/../../27_0_3_20170101000000003.jpg.chip.jpg"):
            info = tarfile.TarInfo(name)
            info.size = len(face)
            tar.addfile(info, BytesIO(face))
    before = sorted(p.name for p in tmp_path.rglob("*")), os.path.exists("/tmp/26_1_2_20170101000000002.jpg.chip.jpg")
    dataset = utk_data.load_utkface([archive], 64, use_cache=False)
    assert sorted(dataset.frame["age"]) == [25, 26, 27]
    assert (sorted(p.name for p in tmp_path.rglob("*")), os.path.exists("/tmp/26_1_2_20170101000000002.jpg.chip.jpg")) == before


def test_sigkill_mid_training_then_resume(tiny_utk, tmp_path, private_cache):
    """The shipped model stays loadable while a run is killed; --resume finishes from the last checkpoint."""
    model_dir = tmp_path / "normal_model"
    model_store.save_model(build_model.build_normal_model(), model_dir,
                           {"model_type": "normal", "input_size": INPUT_SIZES["normal"]})
    shipped = (model_dir / "manifest.json").read_bytes()
    args = ["train", "--model_type", "normal", "--data_path", str(tiny_utk), "--epochs", "40", "--batch_size", "8",
            "--model_path", str(model_dir), "--stats_dir", str(tmp_path / "stats")]
    checkpoints = private_cache / "checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "src" / "main.py"), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            states = list(checkpoints.glob("*/state.json"))
            if states and json.loads(states[0].read_text())["epoch"] >= 2:
                break
            time.sleep(0.2)
        assert process.poll() is None, "training ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    killed_at = json.loads(next(checkpoints.glob("*/state.json")).read_text())["epoch"]
    assert 2 <= killed_at < 40
    assert (model_dir / "manifest.json").read_bytes() == shipped  # untouched by the killed run
    model_store.load_model(model_dir, "normal")
    assert run_cli(*args, "--resume") == 0
    model, info = model_store.load_model(model_dir, "normal")
    history = [int(line.split(",")[1]) for line in (model_dir / "history.csv").read_text().splitlines()[1:]]
    assert history == list(range(1, 41))  # the epochs before the kill are kept, none run twice
    assert not list(checkpoints.glob("*/state.json"))  # a finished run clears its checkpoint
