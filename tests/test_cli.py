"""The command line's smaller promises: --debug anywhere, the model type read from --model_path, natural
order, a single annotated file, --quiet, and the README's sample output matching what the tool prints."""
import json
import re

import cv2
import pytest

from conftest import REPO_ROOT, run_cli
from face_analysis import cli as main
from face_analysis.io import images as image_io


@pytest.mark.parametrize("argv", [["--debug", "run", "--img", "x.jpg"], ["run", "--img", "x.jpg", "--debug"],
                                  ["train", "--debug"], ["evaluate", "--debug"]])
def test_debug_is_accepted_before_or_after_the_command(argv):
    assert main.build_parser().parse_args(argv).debug is True


def test_debug_defaults_to_off():
    assert main.build_parser().parse_args(["run", "--img", "x.jpg"]).debug is False


def test_model_path_alone_reads_the_type_from_the_manifest(astronaut_jpg, tmp_path):
    by_path, by_type = tmp_path / "path.json", tmp_path / "type.json"
    assert run_cli("run", "--img", astronaut_jpg, "--model_path", REPO_ROOT / "saved_model" / "normal_model",
                   "--json", by_path) == 0
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--json", by_type) == 0
    assert json.loads(by_path.read_text()) == json.loads(by_type.read_text())


def test_a_type_that_contradicts_the_folder_says_which_is_which(astronaut_jpg, capsys):
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "facenet",
                   "--model_path", REPO_ROOT / "saved_model" / "normal_model") == 1
    err = capsys.readouterr().err
    assert "holds a 'normal' model, but --model_type is 'facenet'" in err


def test_folders_and_globs_list_in_natural_order(tmp_path):
    for name in ("img10.jpg", "img2.jpg", "img1.jpg", "Img3.jpg"):
        (tmp_path / name).write_bytes(b"x")
    expected = ["img1.jpg", "img2.jpg", "Img3.jpg", "img10.jpg"]
    assert [p.split("/")[-1] for p in image_io.expand_inputs([str(tmp_path)])] == expected
    assert [p.split("/")[-1] for p in image_io.expand_inputs([str(tmp_path / "*.jpg")])] == expected


def test_output_names_a_file_for_one_image_and_a_folder_for_several(astronaut_jpg, tmp_path):
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--output", tmp_path / "ann.jpg") == 0
    annotated = cv2.imread(str(tmp_path / "ann.jpg"))
    assert annotated is not None and annotated.shape == (512, 512, 3)
    other = tmp_path / "other" / "astronaut.jpg"  # the same name in another folder (one file twice is one image)
    other.parent.mkdir()
    other.write_bytes(astronaut_jpg.read_bytes())
    assert run_cli("run", "--img", astronaut_jpg, other, "--model_type", "normal",
                   "--output", tmp_path / "many.jpg") == 0
    assert sorted(p.name for p in (tmp_path / "many.jpg").iterdir()) == ["astronaut.jpg", "astronaut_1.jpg"]


def test_quiet_silences_the_video_progress_bar(astronaut_jpg, tmp_path, capsys):
    from test_run import make_video

    make_video(tmp_path / "clip.mp4", astronaut_jpg, frames=6)
    assert run_cli("run", "--video", tmp_path / "clip.mp4", "--model_type", "normal", "--output",
                   tmp_path / "out.mp4", "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_small_faces_are_reported_without_labels(astronaut_jpg, tmp_path, capsys):
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--min_face", 500, "--json", target,
                   "--csv", tmp_path / "out.csv") == 0
    [face] = json.loads(target.read_text())[0]["faces"]
    assert face["too_small"] is True and face["age"] is None and face["race_probabilities"] is None
    assert face["age_group_probabilities"] is None
    assert face["face_size"] == 117 and face["detection_score"] > 0.6
    assert "1 face(s), 1 too small to analyse" in capsys.readouterr().err
    header, row = (line.split(",") for line in (tmp_path / "out.csv").read_text().splitlines()[:2])
    assert row[header.index("too_small")] == "1" and row[header.index("age")] == ""  # too_small, no age
    assert row[header.index("model")] == "normal" and row[header.index("age_group_probabilities.70+")] == ""


def test_readme_sample_output_is_what_the_shipped_model_prints(monkeypatch, capsys):
    """The quick start's sample block, line for line, against `run --img examples/astronaut.jpg`."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```\n(examples/astronaut\.jpg: .*?)```", readme, re.S).group(1).strip().splitlines()
    monkeypatch.chdir(REPO_ROOT)
    assert run_cli("run", "--img", "examples/astronaut.jpg") == 0
    captured = capsys.readouterr()
    printed = [line for line in (captured.out + captured.err).splitlines() if "TFLite file" not in line]
    assert printed == block


def test_threads_follow_the_cores_this_process_may_use():
    import os
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {0}); from face_analysis.models import compiled; "
            "print(compiled.available_cores())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
    assert done.stdout.strip() == "1", done.stderr


def test_one_thread_gives_the_same_results(astronaut_jpg, tmp_path):
    one, default = tmp_path / "one.json", tmp_path / "default.json"
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--threads", 1, "--json", one) == 0
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--json", default) == 0
    faces = [json.loads(path.read_text())[0]["faces"][0] for path in (one, default)]
    assert faces[0]["box"] == faces[1]["box"] and faces[0]["gender"] == faces[1]["gender"]
    assert abs(faces[0]["age"] - faces[1]["age"]) < 0.2
