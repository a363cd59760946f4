"""The layout's rules hold: import-linter's contracts (.importlinter: layers, the TF-free zone, reporting) are
kept, they do break when a module imports against them, and no module is over 300 lines."""
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "face_analysis"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES = 300


def lint_imports(config: Path, src: Path, cwd: Path) -> subprocess.CompletedProcess:
    """lint-imports with `config`, the package found under `src` (no cache written)."""
    return subprocess.run([str(LINT_IMPORTS), "--config", str(config), "--no-cache"], cwd=cwd,
                          env={"PYTHONPATH": str(src), "PATH": str(LINT_IMPORTS.parent)}, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_are_kept(tmp_path):
    done = lint_imports(REPO_ROOT / ".importlinter", REPO_ROOT / "src", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_import_against_the_rules_breaks_them(tmp_path):
    """A copy of the package with two bad imports: io reaching up to the analyser, and results (in the TF-free
    zone) importing Keras inside a function. Both contracts must say so."""
    copy = tmp_path / "src" / "face_analysis"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "io" / "images.py", "a") as module:
        module.write("\n\ndef _upward():\n    from face_analysis import analyzer  # noqa: F401\n")
    with open(copy / "results.py", "a") as module:
        module.write("\n\ndef _heavy():\n    import keras  # noqa: F401\n")
    done = lint_imports(REPO_ROOT / ".importlinter", tmp_path / "src", tmp_path)
    assert done.returncode != 0, done.stdout
    assert "face_analysis.io.images -> face_analysis.analyzer" in done.stdout
    assert "face_analysis.results -> keras" in done.stdout


def test_no_module_is_over_300_lines():
    lengths = {str(path.relative_to(REPO_ROOT)): len(path.read_text().splitlines())
               for path in (REPO_ROOT / "src").rglob("*.py")}
    assert len(lengths) > 30, "the package was not found"
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}
