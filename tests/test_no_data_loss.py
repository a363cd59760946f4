"""No output ever writes over an input or a file the tool did not write; results survive signals and
concurrent runs. Every refusal happens before any work, exits 2 and names both paths."""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, run_cli


@pytest.fixture
def two_photos(tmp_path, astronaut_jpg):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(astronaut_jpg.read_bytes())
    return folder


def refused(capsys, *args) -> str:
    """Run the CLI, check it refused with a usage error (exit 2) and return its stderr."""
    code = run_cli(*args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_results_file_that_is_an_input_is_refused(two_photos, capsys, option):
    a, b = two_photos / "a.jpg", two_photos / "b.jpg"
    before = a.read_bytes()
    err = refused(capsys, "run", "--img", a, b, "--model_type", "normal", option, a)
    assert str(a) in err and "is the input" in err
    assert a.read_bytes() == before


def test_inputs_are_recognised_through_links_and_relative_paths(two_photos, capsys, monkeypatch):
    a = two_photos / "a.jpg"
    before = a.read_bytes()
    os.symlink(a, two_photos.parent / "link.json")
    os.link(a, two_photos.parent / "hard.json")
    monkeypatch.chdir(two_photos)
    for target in (two_photos.parent / "link.json", two_photos.parent / "hard.json", "./a.jpg"):
        refused(capsys, "run", "--img", "a.jpg", "--model_type", "normal", "--json", target)
    refused(capsys, "run", "--img", ".", "--model_type", "normal", "--csv", "a.jpg")
    assert a.read_bytes() == before


def test_annotated_copies_never_land_on_the_inputs(two_photos, capsys):
    before = (two_photos / "a.jpg").read_bytes()
    err = refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--output", two_photos)
    assert "holds the input" in err
    refused(capsys, "run", "--img", two_photos / "a.jpg", "--model_type", "normal", "--output", two_photos.parent)
    refused(capsys, "run", "--img", two_photos / "a.jpg", "--model_type", "normal", "--output", two_photos / "a.jpg")
    assert (two_photos / "a.jpg").read_bytes() == before


def test_a_file_the_tool_did_not_write_is_not_replaced(two_photos, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my own notes")
    err = refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--json", notes)
    assert "not a json file written by this tool" in err
    refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--csv", notes)
    assert notes.read_text() == "my own notes"


def test_two_outputs_on_one_file_are_refused(two_photos, tmp_path, capsys):
    target = tmp_path / "x"
    err = refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--json", target, "--csv", target)
    assert "--json and --csv are both" in err
    assert not target.exists()


def test_a_file_another_run_is_writing_is_refused(two_photos, tmp_path, capsys):
    target = tmp_path / "out.json"
    target.write_text("[\n")
    with open(target, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        err = refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--json", target)
    assert "another run is writing" in err
    assert target.read_text() == "[\n"


def test_the_video_is_never_its_own_output(tmp_path, astronaut_jpg, capsys):
    from test_run import make_video

    clip = tmp_path / "clip.mp4"
    make_video(clip, astronaut_jpg, frames=5)
    before = clip.read_bytes()
    for option in ("--output", "--json", "--csv"):
        err = refused(capsys, "run", "--video", clip, "--model_type", "normal", option, clip)
        assert "is the input" in err
    assert clip.read_bytes() == before


def test_train_replaces_only_a_folder_holding_a_saved_model(tiny_utk, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    err = refused(capsys, "train", "--model_type", "normal", "--data_path", tiny_utk, "--model_path", mine)
    assert "not a model saved by this tool" in err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused(capsys, "train", "--model_type", "normal", "--data_path", tiny_utk, "--model_path", a_file)
    refused(capsys, "train", "--model_type", "normal", "--data_path", tiny_utk, "--model_path", tiny_utk)
    stats = tmp_path / "stats"
    stats.mkdir()
    (stats / "holiday.jpg").write_bytes(b"x")
    refused(capsys, "train", "--model_type", "normal", "--data_path", tiny_utk, "--model_path", tmp_path / "new",
            "--stats_dir", stats)
    assert (mine / "thesis.tex").read_text() == "years of work" and a_file.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine", "stats"]


def test_save_model_refuses_a_foreign_folder(tmp_path):
    from face_analysis.labels import INPUT_SIZES
    from face_analysis.models import architectures as build_model
    from face_analysis.models import store as model_store

    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(model_store.ModelError, match="not a model saved by this tool"):
        model_store.save_model(build_model.build_normal_model(), tmp_path,
                               {"model_type": "normal", "input_size": INPUT_SIZES["normal"]})
    assert (tmp_path / "keep.txt").read_text() == "x"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_batch_leaves_valid_json_and_csv(tmp_path, astronaut_jpg, signum):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        (folder / f"p{i:03d}.jpg").write_bytes(astronaut_jpg.read_bytes())
    target, table = tmp_path / "out.json", tmp_path / "out.csv"
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "src" / "main.py"), "run", "--img", folder,
                                "--model_type", "normal", "--json", target, "--csv", table, "--quiet"],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not target.exists() or target.read_text().count('"image"') < 3):
        time.sleep(0.1)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    results = json.loads(target.read_text())
    assert 3 <= len(results) < 400
    rows = table.read_text().splitlines()
    assert len(rows) == 1 + len(results) and all(row.count(",") == rows[0].count(",") for row in rows)


def test_the_model_and_earlier_files_are_never_written_over(two_photos, tmp_path, capsys):
    from conftest import REPO_ROOT

    model_json = REPO_ROOT / "saved_model" / "normal_model" / "model.json"
    before = model_json.read_bytes()
    err = refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--json", model_json)
    assert "is the input" in err and model_json.read_bytes() == before
    out = tmp_path / "annotated"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"someone else's picture")
    assert run_cli("run", "--img", two_photos / "a.jpg", "--model_type", "normal", "--output", out) == 0
    assert (out / "a.jpg").read_bytes() == b"someone else's picture" and (out / "a_1.jpg").stat().st_size > 1000


def test_two_outputs_on_stdout_are_refused(two_photos, capsys):
    err = refused(capsys, "run", "--img", two_photos, "--model_type", "normal", "--json", "-", "--csv", "-")
    assert "--json and --csv are both -" in err


def test_a_stats_folder_with_a_foreign_readme_is_refused(tmp_path, capsys):
    stats = tmp_path / "notes"
    stats.mkdir()
    (stats / "README.md").write_text("# my notes\n")
    err = refused(capsys, "evaluate", "--model_type", "normal", "--data_path", tmp_path / "data", "--stats_dir", stats)
    assert "holds files this tool did not write" in err
    assert (stats / "README.md").read_text() == "# my notes\n"
