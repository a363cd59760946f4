"""`run` on real photos, crops and video with the shipped models, checked against the JSON contract."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, run_cli
from face_analysis.labels import AGE_BUCKETS, MODEL_TYPES, RACES

FACE_KEYS = {"box", "age", "age_std", "gender", "gender_probability", "race", "race_probabilities",
             "detection_score", "face_size", "too_small", "age_group_probabilities"}


def check_result_schema(result: dict) -> None:
    assert set(result) == {"image", "model", "width", "height", "faces", "error"}
    assert result["model"] in MODEL_TYPES
    assert isinstance(result["width"], int) and isinstance(result["height"], int)
    for face in result["faces"]:
        assert FACE_KEYS <= set(face) <= FACE_KEYS | {"track_id"}
        assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
        assert face["face_size"] == max(face["box"][2:])
        assert face["detection_score"] is None or 0 < face["detection_score"] <= 1
        if face["too_small"]:
            assert all(face[key] is None for key in FACE_KEYS - {"box", "detection_score", "face_size", "too_small"})
            continue
        assert 0 <= face["age"] <= 116 and face["age_std"] >= 0
        assert face["gender"] in ("male", "female") and 0.5 <= face["gender_probability"] <= 1
        assert list(face["race_probabilities"]) == list(RACES) and face["race"] in RACES
        assert abs(sum(face["race_probabilities"].values()) - 1) < 1e-3
        assert face["race_probabilities"][face["race"]] == max(face["race_probabilities"].values())
        assert list(face["age_group_probabilities"]) == list(AGE_BUCKETS)
        assert abs(sum(face["age_group_probabilities"].values()) - 1) < 2e-3


@pytest.mark.parametrize("model_type", ["facenet", "normal"])
def test_run_on_a_real_photo_finds_the_one_face(model_type, astronaut_jpg, tmp_path):
    target = tmp_path / "out.json"
    code = run_cli("run", "--img", astronaut_jpg, "--model_type", model_type, "--json", target,
                   "--output", tmp_path / "annotated")
    assert code == 0
    results = json.loads(target.read_text())
    assert len(results) == 1
    check_result_schema(results[0])
    assert results[0]["error"] is None and (results[0]["width"], results[0]["height"]) == (512, 512)
    [face] = results[0]["faces"]
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200  # the astronaut's face, top centre
    annotated = cv2.imread(str(tmp_path / "annotated" / "astronaut.jpg"))
    original = cv2.imread(str(astronaut_jpg))
    assert annotated.shape == original.shape and np.abs(annotated.astype(int) - original).max() > 100


def test_batch_reports_bad_files_and_goes_on(astronaut_jpg, tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"this is not a picture")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 200, np.uint8))
    target = tmp_path / "out.json"
    code = run_cli("run", "--img", tmp_path / "broken.jpg", tmp_path / "missing.jpg", blank, astronaut_jpg,
                   "--model_type", "normal", "--json", target)
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.jpg: not an image or a damaged one" in err and "missing.jpg: no such file" in err
    results = {r["image"].split("/")[-1]: r for r in json.loads(target.read_text())}
    for result in results.values():
        check_result_schema(result)
    assert results["broken.jpg"]["faces"] == [] and results["broken.jpg"]["error"]
    assert results["blank.png"]["faces"] == [] and results["blank.png"]["error"] is None
    assert len(results["astronaut.jpg"]["faces"]) == 1


def test_detector_none_takes_each_image_as_one_face(tmp_path):
    from conftest import write_synthetic_face

    for i in range(3):
        write_synthetic_face(tmp_path / f"crop{i}.jpg", seed=i, size=120)
    target = tmp_path / "out.json"
    assert run_cli("run", "--img", tmp_path / "*.jpg", "--detector", "none", "--model_type", "normal",
                   "--json", target) == 0
    results = json.loads(target.read_text())
    assert [r["image"].split("/")[-1] for r in results] == ["crop0.jpg", "crop1.jpg", "crop2.jpg"]
    for result in results:
        check_result_schema(result)
        assert [face["box"] for face in result["faces"]] == [[0, 0, 120, 120]]


def make_video(path, astronaut_jpg, frames=24):
    """A 640x480 video of the astronaut photo drifting across a grey background."""
    photo = cv2.resize(cv2.imread(str(astronaut_jpg)), (320, 320))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[80:400, 40 + 8 * i:360 + 8 * i] = photo
        writer.write(frame)
    writer.release()


def test_video_file_to_annotated_video_and_json(astronaut_jpg, tmp_path):
    source, output, target = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "frames.json"
    make_video(source, astronaut_jpg)
    assert run_cli("run", "--video", source, "--output", output, "--json", target, "--model_type", "normal") == 0
    capture = cv2.VideoCapture(str(output))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    frames = json.loads(target.read_text())
    assert [f["frame"] for f in frames] == list(range(24))
    with_face = [f for f in frames if len(f["faces"]) == 1]
    assert len(with_face) >= 20
    for frame in frames:
        check_result_schema({k: v for k, v in frame.items() if k != "frame"})
    track_ids = [f["faces"][0]["track_id"] for f in with_face]
    assert max(track_ids.count(t) for t in set(track_ids)) >= 20  # one face, followed as one track


def test_video_that_cannot_be_opened_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert run_cli("run", "--video", tmp_path / "bad.mp4", "--output", tmp_path / "o.mp4", "--model_type", "normal") == 1
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "Traceback" not in err


def test_command_line_exit_codes_and_messages(tmp_path):
    """The real entry point: usage errors exit 2, a missing input exits 1 with one line and no traceback."""
    script = [sys.executable, str(REPO_ROOT / "src" / "main.py")]
    usage = subprocess.run(script + ["run"], capture_output=True, text=True)
    assert usage.returncode == 2 and "give --img PATH..., --img_list FILE or --video" in usage.stderr
    missing = subprocess.run(script + ["run", "--img", str(tmp_path / "nope.jpg"), "--model_type", "normal"],
                             capture_output=True, text=True)
    assert missing.returncode == 1
    assert "nope.jpg: no such file or folder" in missing.stderr and "Traceback" not in missing.stderr
