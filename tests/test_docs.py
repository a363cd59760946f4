"""The documentation: the MkDocs site builds with --strict (a broken link, a missing anchor or a page left out
of the nav fails it), the README stays short and its relative links lead somewhere, the README's sample output
is the one docs/install.md shows, and the repository paths the README and docs/ name exist."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 200

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# a path inside the repository, as the docs write one in code font (commands included): src/..., tests/...
REPO_PATH = re.compile(r"(?<![\w./-])((?:src|tests|benchmarks|scripts|examples|saved_model|statistics|xml|"
                       r"model_structure|docs)/[\w./-]*)")
MODULE = re.compile(r"(?<![\w.])face_analysis((?:\.\w+)+)")  # face_analysis.runners.images.run_images
SAMPLE = re.compile(r"```\n(examples/astronaut\.jpg: .*?)```", re.S)


def relative_links(markdown):
    """The link targets that are files of this repository (no URL, no bare #anchor), without their #anchor."""
    targets = []
    for target in LINK.findall(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def names_something(path):
    """A file, or a folder with a file in it (an emptied folder is left behind by a move, not by a clone)."""
    return path.is_file() or (path.is_dir() and any(item.is_file() for item in path.rglob("*")))


def module_exists(dotted):
    """`face_analysis.a.b.name`: every part but the last is a sub-package or module of src/face_analysis, and
    the last is one too or a name inside the module before it (not imported: TensorFlow and Ray stay out)."""
    parts, folder = dotted.split("."), REPO_ROOT / "src" / "face_analysis"
    for index, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
        elif (folder / f"{part}.py").is_file():
            module = (folder / f"{part}.py").read_text()
            rest = parts[index + 1:]
            return not rest or (len(rest) == 1 and re.search(rf"^(?:def|class)\s+{rest[0]}\b|^{rest[0]}\s*[:=]",
                                                               module, re.M) is not None)
        else:
            return index == len(parts) - 1 and part in (folder / "__init__.py").read_text() \
                if (folder / "__init__.py").is_file() else False
    return True


def test_mkdocs_builds_strict(tmp_path):
    """`mkdocs build --strict`: fails on a broken link or anchor, a nav entry without a page, a page out of the nav."""
    missing = [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed in {sys.executable}: the docs need mkdocs and "
                    "mkdocs-material (requirements.txt; `make test` installs them, or "
                    "`.venv/bin/pip install mkdocs mkdocs-material`)")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
                           "--config-file", str(REPO_ROOT / "mkdocs.yml")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_docs_page_is_in_the_nav():
    """mkdocs only reports pages left out of the nav as information; a page nobody can reach is a mistake here."""
    nav = (REPO_ROOT / "mkdocs.yml").read_text()
    pages = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    assert pages, "docs/ holds no page"
    assert [page for page in pages if not re.search(rf":\s*{re.escape(page)}\s*$", nav, re.M)] == []


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move the details into docs/"


def test_readme_links_lead_to_files():
    links = relative_links(README.read_text())
    assert any(link.startswith("docs/") for link in links), "the README links into docs/"
    broken = [link for link in links if not (REPO_ROOT / link).exists()]
    assert broken == [], f"README.md links to files that do not exist: {broken}"


def test_readme_sample_output_is_the_one_in_the_docs():
    """tests/test_cli.py checks the README's block against what `run` prints; the install page shows the same."""
    readme_block = SAMPLE.search(README.read_text())
    docs_block = SAMPLE.search((DOCS / "install.md").read_text())
    assert readme_block and docs_block
    assert docs_block.group(1) == readme_block.group(1)


def test_repository_paths_in_the_docs_exist():
    """A path such as `src/face_analysis/detection/` or `benchmarks/x.py`, or a module such as
    `face_analysis.runners.images.run_images`, in code font must name something that is there: after code
    moves, the docs follow."""
    missing = {}
    for page in [README, *sorted(DOCS.rglob("*.md"))]:
        text = page.read_text()
        code = CODE_SPAN.findall(FENCE.sub("", text)) + FENCE.findall(text)
        for snippet in code:
            for path in REPO_PATH.findall(snippet):
                path = path.rstrip(".")  # a sentence's full stop, or `benchmarks/...`
                if path and not names_something(REPO_ROOT / path):
                    missing.setdefault(page.relative_to(REPO_ROOT).as_posix(), set()).add(path)
            for dotted in MODULE.findall(snippet):
                if not module_exists(dotted.lstrip(".")):
                    missing.setdefault(page.relative_to(REPO_ROOT).as_posix(), set()).add("face_analysis" + dotted)
    assert missing == {}, f"paths named in the docs that do not exist: {missing}"


@pytest.mark.parametrize("markdown, expected", [
    ("[a](docs/x.md) ![b](docs/images/y.jpg) [c](https://example.org) [d](#top) [e](run.md#how-run-works)",
     ["docs/x.md", "docs/images/y.jpg", "run.md"]),
    ('[a](docs/x.md "title") [b](mailto:someone@example.org)', ["docs/x.md"]),
])
def test_relative_links_are_found(markdown, expected):
    assert relative_links(markdown) == expected


@pytest.mark.parametrize("dotted, exists", [
    ("analyzer.FaceAnalyzer", True), ("analyzer", True), ("analyzer.NoSuchThing", False),
    ("no_such_module.run", False), ("FaceAnalyzer", True),
])
def test_module_names_are_checked(dotted, exists):
    assert module_exists(dotted) is exists
