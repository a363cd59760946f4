"""The package as users get it: `import face_analysis` from any folder without TensorFlow, the analyser on
paths, arrays and PIL images, `python -m face_analysis` and the `face-analysis` command with --version."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from PIL import Image

from conftest import REPO_ROOT
from face_analysis import FaceAnalyzer, __version__


def outside_env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}


def test_import_and_analyse_from_another_folder_never_imports_tensorflow(tmp_path, astronaut_jpg):
    code = ("import sys; from face_analysis import FaceAnalyzer, commands, extras, results; "
            "from face_analysis.runners import images, video; from face_analysis.serving import app; "
            "from face_analysis.models import compiled, store; from face_analysis.io import guard, writers; "
            f"faces = FaceAnalyzer('normal').analyze({str(astronaut_jpg)!r}); "
            "print(len(faces), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=outside_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "False"]


def test_analyze_takes_a_path_an_rgb_or_bgr_array_and_a_pil_image(astronaut_jpg):
    analyzer = FaceAnalyzer("normal")
    bgr = cv2.imread(str(astronaut_jpg))
    rgb = bgr[..., ::-1]
    results = [analyzer.analyze(astronaut_jpg), analyzer.analyze(str(astronaut_jpg)), analyzer.analyze(rgb),
               analyzer.analyze(bgr, bgr=True), analyzer.analyze(Image.open(astronaut_jpg))]
    for faces in results:
        assert len(faces) == 1 and faces[0].box == results[0][0].box
        assert faces[0].gender == results[0][0].gender and abs(faces[0].age - results[0][0].age) < 0.05
    swapped = analyzer.analyze(bgr)  # BGR read as RGB: a different picture for the model
    assert swapped[0].race_probabilities != results[0][0].race_probabilities


def test_python_dash_m_prints_the_version():
    done = subprocess.run([sys.executable, "-m", "face_analysis", "--version"], env=outside_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip().endswith(__version__)


@pytest.mark.skipif(not (Path(sys.executable).parent / "face-analysis").exists(),
                    reason="the console script exists after `pip install -e .` (make test does it)")
def test_console_script_runs_from_any_folder(tmp_path, astronaut_jpg):
    command = str(Path(sys.executable).parent / "face-analysis")
    version = subprocess.run([command, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"face-analysis {__version__}"
    run = subprocess.run([command, "run", "--img", str(astronaut_jpg), "--model_type", "normal", "--json", "-",
                          "--quiet"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert '"faces": [{"box": [177, 60, 93, 117]' in run.stdout


def test_the_committed_tree_stays_under_64_mib():
    """A clone (every git-tracked file, the weights included) stays under 64 MiB, the most a working tree may
    carry to the device machines that train: what can be rebuilt or built on request (the FaceNet graph, the
    part for small faces) is not committed, and the split is saved compressed."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                                check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git clone")
    sizes = {name: (REPO_ROOT / name).stat().st_size for name in filter(None, listed) if (REPO_ROOT / name).is_file()}
    assert sum(size for name, size in sizes.items() if name.startswith("saved_model/")) > 20 * 2**20
    assert sum(sizes.values()) < 64 * 2**20
