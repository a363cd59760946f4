"""`report` as a user who wants to break it would use it (issue 39): outputs onto inputs or unwritable places
refused before any work, the same faces given twice counted once, no interval without a bootstrap, video
frames, cut or odd files, results still being written; every message one line naming the file."""
import argparse
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from face_analysis.errors import FaceAnalysisError, UsageError
from face_analysis.io.durable import FolderLock
from face_analysis.io.writers import ResultWriters
from face_analysis.reporting import (ReportError, build_calibration, load_calibration, report, save_calibration,
                                     synthetic)
from face_analysis.reporting import command, reading
from face_analysis.reporting.html import report_html
from face_analysis.results import ImageResult

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def calibration():
    return build_calibration(synthetic.simulate(600, seed=31), "facenet")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """One run's results in its four formats: 44 faces, 2 too small, an image without a face."""
    folder = tmp_path_factory.mktemp("run")
    results = synthetic.results_of(synthetic.simulate(44, seed=32), too_small=2, no_face=1)
    return _write_run(folder, results)


def input_notes(result) -> list[str]:
    """The report's notes about its inputs (the age groups' "counted, not corrected" note left out)."""
    return [note for note in result.notes if not note.startswith("age_group: counted")]


def _write_run(folder: Path, results: list, video: bool = False) -> dict:
    paths = {"json": folder / "r.json", "csv": folder / "r.csv", "parquet": folder / "pq", "jsonl": folder / "r.jsonl"}
    with ResultWriters(paths["json"], paths["csv"], paths["parquet"], jsonl_path=paths["jsonl"]) as writers:
        for i, result in enumerate(results):
            writers.write(ImageResult.from_json(result), i if video else None)
    return paths


def _run(tmp_path, calibration, *argv, default_model_dir=None) -> int:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *map(str, argv)])
    model = tmp_path / "model"
    if not model.exists():
        model.mkdir()
        save_calibration(calibration, model)
    return command.run_report(args, default_model_dir=default_model_dir or (lambda model_type: model))


def _digest(path: Path) -> str:
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files if f.is_file())).hexdigest()


def _one_line(error, *names) -> str:
    message = str(error.value)
    assert isinstance(error.value, FaceAnalysisError) and "\n" not in message
    assert all(str(name) in message for name in names), message
    return message


def _no_work(monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("the report was computed before the outputs were checked")

    monkeypatch.setattr(sys.modules["face_analysis.reporting.report"], "report", refused)


@pytest.mark.parametrize("case", ["json onto the input", "html onto the input", "html onto a photo",
                                  "both onto one file", "inside the Parquet input", "onto a link to the input"])
def test_an_output_onto_an_input_or_the_other_output_is_refused_before_any_work(tmp_path, calibration, outputs,
                                                                               monkeypatch, case):
    results = tmp_path / "v.json"
    results.write_bytes(outputs["json"].read_bytes())
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((REPO_ROOT / "examples" / "astronaut.jpg").read_bytes())
    (tmp_path / "link.json").symlink_to(results)
    inputs, argv = [results], {
        "json onto the input": ["--json", results], "html onto the input": ["--html", results],
        "html onto a photo": ["--html", photo],
        "both onto one file": ["--json", tmp_path / "x", "--html", tmp_path / "x"],
        "inside the Parquet input": ["--json", outputs["parquet"] / "r.json"],
        "onto a link to the input": ["--json", tmp_path / "link.json"]}[case]
    if case == "inside the Parquet input":
        inputs = [outputs["parquet"]]
    before = {path: _digest(path) for path in (*inputs, photo)}
    _no_work(monkeypatch)
    with pytest.raises(UsageError) as error:
        _run(tmp_path, calibration, *inputs, *argv, "--bootstrap", 0)
    _one_line(error, argv[1])
    assert {path: _digest(path) for path in before} == before
    assert not (outputs["parquet"] / "r.json").exists()


def test_the_command_line_exits_2_naming_both_paths(tmp_path, outputs):
    results = tmp_path / "v.json"
    results.write_bytes(outputs["json"].read_bytes())
    done = subprocess.run([sys.executable, str(REPO_ROOT / "src" / "main.py"), "report", str(results), "--json",
                           str(results)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.count(str(results)) == 2 and "--json" in done.stderr
    assert results.read_bytes() == outputs["json"].read_bytes()


@pytest.mark.parametrize("option,target", [("--html", "/proc/x.html"), ("--json", "missing/r.json"),
                                           ("--json", "")])
def test_an_output_that_cannot_be_written_is_refused_before_the_bootstrap(tmp_path, calibration, outputs,
                                                                         monkeypatch, option, target):
    target = target if target in ("", "/proc/x.html") else str(tmp_path / target)
    _no_work(monkeypatch)
    with pytest.raises(UsageError) as error:
        _run(tmp_path, calibration, outputs["json"], option, target)
    _one_line(error, option, target)


def test_the_same_faces_given_twice_or_in_every_format_are_counted_once(calibration, outputs):
    once = report([outputs["json"]], calibration, bootstrap=0)
    assert once.faces == 44 and once.skipped == {"too_small": 2, "no_face": 1, "failed": 0} and not input_notes(once)
    for paths in ([outputs["json"], outputs["json"]], list(outputs.values()),
                  [outputs["parquet"], *sorted(outputs["parquet"].glob("results-*"))]):
        again = report(paths, calibration, bootstrap=0)
        assert again.faces == 44 and again.skipped == once.skipped
        assert again.to_json()["attributes"] == once.to_json()["attributes"]
        assert len(input_notes(again)) == 1 and "read before" in input_notes(again)[0] and "counted once" in input_notes(again)[0]
    # the CSV, the Parquet folder and the JSON Lines again: 3 x 46 faces; the CSV lists no image without a face
    assert "138 faces and 2 images without a face" in input_notes(report(list(outputs.values()), calibration, bootstrap=0))[0]


def test_faces_without_a_name_or_box_are_never_merged(tmp_path, calibration, outputs):
    results = json.loads(outputs["json"].read_text())
    for result in results:
        result["image"] = None
        for face in result["faces"]:
            face["box"] = None
    path = tmp_path / "anonymous.json"
    path.write_text(json.dumps(results))
    twice = report([path, path], calibration, bootstrap=0)
    assert twice.faces == 88 and "no image name or box" in input_notes(twice)[0]


def test_no_bootstrap_gives_no_interval_and_one_replicate_is_refused(tmp_path, calibration, outputs, capsys):
    result = report([outputs["json"]], calibration, bootstrap=0, by="gender")
    data = result.to_json()
    for shares in [*data["attributes"].values(), *data["by"]["groups"]["female"]["attributes"].values()]:
        assert all(s["low"] is None and s["high"] is None for s in shares.values())
    assert "—" in result.to_text() and "<td>—</td>" in report_html(result)
    with pytest.raises(ReportError, match="bootstrap 1"):
        report([outputs["json"]], calibration, bootstrap=1)
    for count in ("1", "9", "10001"):
        with pytest.raises(SystemExit) as exit_:
            _run(tmp_path, calibration, outputs["json"], "--bootstrap", count)
        assert exit_.value.code == 2 and "--bootstrap" in capsys.readouterr().err
    with_interval = report([outputs["json"]], calibration, bootstrap=10).to_json()["attributes"]["gender"]["female"]
    assert with_interval["low"] <= with_interval["estimate"] <= with_interval["high"]


def test_video_frames_are_said_to_count_a_person_once_a_frame(tmp_path, calibration):
    frames = synthetic.results_of(synthetic.simulate(12, seed=33), faces_per_image=1)
    for i, frame in enumerate(frames):
        frame["image"] = f"clip.mp4#{i}"
    for path in _write_run(tmp_path, frames, video=True).values():
        result = report([path], calibration, bootstrap=0)
        assert result.faces == 12
        assert any("12 video frames" in note and "not of people" in note for note in result.notes), path


def test_a_bom_a_cut_csv_row_and_a_semicolon_csv(tmp_path, calibration, outputs):
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + outputs["json"].read_bytes())
    assert report([bom], calibration, bootstrap=0).faces == 44
    text = outputs["csv"].read_text()
    complete = "".join(text.splitlines(keepends=True)[:-2]).rstrip("\r\n")  # to the last face analysed
    whole = tmp_path / "no_line_end.csv"  # a last row complete but for its line end is kept
    whole.write_text(complete)
    kept = report([whole], calibration, bootstrap=0)
    assert kept.faces == 44 and not input_notes(kept)
    cut = tmp_path / "cut.csv"
    cut.write_text(complete[:-60])
    result = report([cut], calibration, bootstrap=0)
    assert result.faces == 43 and any("cut.csv: its last row is cut short" in note for note in result.notes)
    semicolons = tmp_path / "excel.csv"
    semicolons.write_text(text.replace(",", ";"))
    with pytest.raises(ReportError) as error:
        report([semicolons], calibration, bootstrap=0)
    assert "semicolons" in _one_line(error, "excel.csv")


def test_results_still_being_written_get_a_note(tmp_path, calibration, outputs):
    jsonl = tmp_path / "live.jsonl"
    jsonl.write_bytes(outputs["jsonl"].read_bytes())
    with open(jsonl, "a") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as `run --jsonl` holds it
        notes = report([jsonl], calibration, bootstrap=0).notes
    assert any("live.jsonl: a run is still writing it" in note for note in notes)
    assert not input_notes(report([jsonl], calibration, bootstrap=0))
    lock = FolderLock(outputs["parquet"])
    try:
        notes = report([outputs["parquet"]], calibration, bootstrap=0).notes
    finally:
        lock.release()
    assert any("still writing" in note for note in notes)


def test_results_without_a_model_say_which_calibration_corrects_them(tmp_path, calibration, outputs, capsys):
    results = json.loads(outputs["json"].read_text())
    for result in results:
        del result["model"]
    path = tmp_path / "unnamed.json"
    path.write_text(json.dumps(results))
    asked = []
    model = tmp_path / "model"
    assert _run(tmp_path, calibration, path, "--bootstrap", 0,
                default_model_dir=lambda model_type: asked.append(model_type) or model) == 0
    assert asked == ["facenet"] and "do not name the model" in capsys.readouterr().out
    with pytest.raises(UsageError) as error:  # a model this version does not ship
        _run(tmp_path, calibration, outputs["json"], default_model_dir=lambda model_type: tmp_path / "evil_model")
    _one_line(error, "evil_model", "--model_path")
    with pytest.raises(UsageError) as error:
        _run(tmp_path, calibration, outputs["json"], "--model_path", tmp_path / "nowhere")
    _one_line(error, "--model_path", "nowhere")


def _broken(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(json.dumps(data))
    return path


def test_hostile_result_files_get_one_line_errors(tmp_path, calibration, outputs):
    results = json.loads(outputs["json"].read_text())
    faces = [r for r in results if r["faces"] and not r["faces"][0]["too_small"]]
    word = json.loads(json.dumps(faces))
    word[0]["faces"][0]["race_probabilities"]["white"] = "abc"
    number = json.loads(json.dumps(faces))
    number[0]["faces"] = 5
    small = [{**r, "faces": [f for f in r["faces"] if f["too_small"]]} for r in results]
    cases = {"word.json": (word, "not numbers"), "number.json": (number, "not a list"),
             "deep.json": (b"[" + b"[" * 100_000, "nested too deeply"),
             "utf16.json": (json.dumps(faces).encode("utf-16"), "UTF-16"),
             "photo.dat": ((REPO_ROOT / "examples" / "astronaut.jpg").read_bytes(), "binary"),
             "page.txt": (b"<!doctype html><html></html>", "HTML"),
             "small.json": ([r for r in small if r["faces"]], "2 too small")}
    for name, (data, reason) in cases.items():
        with pytest.raises(ReportError) as error:
            report([_broken(tmp_path, name, data)], calibration, bootstrap=0)
        assert reason in _one_line(error, name)


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path, calibration):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    errors = []

    def read():
        try:
            report([fifo], calibration, bootstrap=0)
        except ReportError as error:
            errors.append(str(error))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive() and "not a file or folder" in errors[0]


def test_an_unreadable_folder_says_so(tmp_path, calibration, outputs, monkeypatch):
    def denied(folder):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reading.os, "listdir", denied)
    with pytest.raises(ReportError) as error:
        report([outputs["parquet"]], calibration, bootstrap=0)
    assert "Permission denied" in _one_line(error, outputs["parquet"])


def test_a_cut_json_list_is_read_with_a_note_over_several_chunks(tmp_path, calibration, outputs):
    text = outputs["json"].read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[:text.rindex("]")].rstrip().rstrip(","))
    result = report([cut], calibration, bootstrap=0, chunk_faces=8)
    assert result.faces == 44 and any("not closed" in note for note in result.notes)
    cut.write_text(text[:text.rindex('"image"')])  # inside the last result (the image without a face)
    result = report([cut], calibration, bootstrap=0, chunk_faces=8)
    assert result.faces == 44 and result.skipped["no_face"] == 0
    assert any("last result is cut short" in note for note in result.notes)


def test_a_damaged_calibration_file_is_one_line(tmp_path, calibration):
    saved = save_calibration(calibration, tmp_path)
    with np.load(saved) as data:
        arrays = dict(data)
    for name, change in {"sizes.npz": {"race_labels": arrays["race_labels"][:10]},
                         "columns.npz": {"race_probs": arrays["race_probs"][:, :3]},
                         "nan.npz": {"gender_probs": arrays["gender_probs"] * np.nan}}.items():
        np.savez(tmp_path / name, **{**arrays, **change})
        with pytest.raises(ReportError) as error:
            load_calibration(tmp_path / name)
        _one_line(error, name)


def test_report_changes_no_input(tmp_path, calibration, outputs):
    before = {path: _digest(path) for path in outputs.values()}
    names = sorted(os.listdir(outputs["parquet"]))
    assert _run(tmp_path, calibration, *outputs.values(), "--json", tmp_path / "out.json", "--html",
                tmp_path / "out.html", "--bootstrap", 0) == 0
    assert {path: _digest(path) for path in outputs.values()} == before
    assert sorted(os.listdir(outputs["parquet"])) == names
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
