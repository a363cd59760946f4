"""A command whose extra is not installed says which extra to install, in one line, and exits 2, before it
imports anything heavy. The missing package is simulated: sys.modules[name] = None makes it unfindable."""
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, run_cli
from face_analysis import extras


@pytest.mark.parametrize("hidden, argv, message", [
    ("ray", ["run", "--img", "x.jpg", "--engine", "ray"],
     "run --engine ray needs the [ray] extra (ray not installed): pip install 'face-analysis[ray]'"),
    ("tensorflow", ["train", "--model_type", "normal"],
     "train needs the [train] extra (tensorflow not installed): pip install 'face-analysis[train]'"),
    ("nncf", ["quantize", "--model_path", "m", "--data_path", "d"],
     "quantize needs the [train] extra (nncf not installed): pip install 'face-analysis[train]'"),
    ("sklearn", ["evaluate"],
     "evaluate needs the [train] extra (sklearn not installed): pip install 'face-analysis[train]'"),
    ("uvicorn", ["serve"], "serve needs the [serve] extra (uvicorn not installed): pip install 'face-analysis[serve]'"),
])
def test_a_missing_extra_is_one_line_and_exit_2(monkeypatch, capsys, hidden, argv, message):
    monkeypatch.setitem(sys.modules, hidden, None)
    assert run_cli(*argv) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_installed_modules_are_not_missing():
    assert extras.missing("numpy", "cv2", "no_such_module_here") == ["no_such_module_here"]


def test_a_missing_extra_from_the_command_line(tmp_path):
    """The whole program in a fresh process: exit status 2, one line on stderr, nothing on stdout."""
    code = ("import sys; sys.modules['ray'] = None; from face_analysis.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "run", "--img", str(REPO_ROOT / "examples" / "astronaut.jpg"),
                           "--engine", "ray"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: run --engine ray needs the [ray] extra (ray not installed): pip install 'face-analysis[ray]'"]


def test_float32_without_its_cached_export_needs_the_train_extra(monkeypatch, capsys, tmp_path):
    from face_analysis import paths

    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path)  # no export built yet
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    assert run_cli("run", "--img", str(REPO_ROOT / "examples" / "astronaut.jpg"), "--precision", "float32") == 2
    assert "needs the [train] extra (tensorflow not installed)" in capsys.readouterr().err
