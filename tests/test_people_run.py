"""`run --people` and `report --count people` (issue 36): person numbers in every output, the --embeddings file,
video tracks joined into people with their time on screen, people counted once with their faces' mean
probabilities, and the one-line refusals."""
import json
import stat

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import photo_folder, run_cli
from face_analysis.labels import AGE_BUCKETS, RACES
from face_analysis.reporting import ReportError, build_calibration, report, synthetic
from face_analysis.reporting.reading import person_numbers

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def people_run(tmp_path_factory, astronaut_jpg, camera_jpg):
    """`run --people` on 3 copies of the astronaut, the cameraman, a broken JPEG and an empty file, every output."""
    root = tmp_path_factory.mktemp("people")
    folder = photo_folder(root / "photos", astronaut_jpg, 3, camera_jpg)
    out = {"json": root / "r.json", "csv": root / "r.csv", "jsonl": root / "r.jsonl", "parquet": root / "pq",
           "embeddings": root / "faces.npz"}
    status = run_cli("run", "--img", folder, "--people", *(v for k, p in out.items() for v in (f"--{k}", p)))
    return status, out


def persons_by_image(results) -> dict:
    return {r["image"].rsplit("/", 1)[-1]: [f.get("person") for f in r["faces"]] for r in results}


def test_copies_of_one_face_are_one_person_in_every_output(people_run):
    status, out = people_run
    assert status == 1  # the broken and the empty file fail; the others are numbered and written
    by_image = persons_by_image(json.loads(out["json"].read_text()))
    assert by_image["p00.jpg"] == by_image["p01.jpg"] == by_image["p02.jpg"] == [by_image["p00.jpg"][0]]
    assert by_image["camera.jpg"][0] not in (None, by_image["p00.jpg"][0])
    assert sorted({by_image["p00.jpg"][0], by_image["camera.jpg"][0]}) == [1, 2]
    assert by_image["broken.jpg"] == [] and by_image["empty.png"] == []
    lines = [json.loads(line) for line in out["jsonl"].read_text().splitlines()]
    assert persons_by_image(lines) == by_image
    csv = pd.read_csv(out["csv"])
    assert dict(zip(csv["image"].str.rsplit("/", n=1).str[-1], csv["person"])) == {
        name: people[0] for name, people in by_image.items() if people}
    parquet = pd.read_parquet(out["parquet"])
    assert persons_by_image(parquet.to_dict("records")) == by_image


def test_recurring_keeps_apart_people_it_has_no_fragment_of(people_run, tmp_path):
    """--recurring on the same photos: the astronaut's 3 copies and the cameraman stay 2 people (the cameraman,
    one face, is far from the astronaut: nothing to join), in the same order."""
    _, out = people_run
    target = tmp_path / "r.json"
    folder = next(iter(json.loads(out["json"].read_text())))["image"].rsplit("/", 1)[0]
    assert run_cli("run", "--img", folder, "--people", "--recurring", "--json", target, "--quiet") == 1
    assert persons_by_image(json.loads(target.read_text())) == persons_by_image(json.loads(out["json"].read_text()))


def test_embeddings_are_written_only_on_request_and_for_the_owner(people_run):
    _, out = people_run
    with np.load(out["embeddings"]) as saved:
        assert saved["embedding"].shape == (4, 512) and saved["embedding"].dtype == np.float32
        assert np.allclose(np.linalg.norm(saved["embedding"], axis=1), 1, atol=1e-3)
        names = [name.rsplit("/", 1)[-1] for name in saved["image"]]
        assert sorted(names) == ["camera.jpg", "p00.jpg", "p01.jpg", "p02.jpg"] and list(saved["face"]) == [0] * 4
        assert len(set(saved["person"][[names.index(f"p0{i}.jpg") for i in range(3)]])) == 1
    assert stat.S_IMODE(out["embeddings"].stat().st_mode) == 0o600
    assert sorted(p.name for p in out["embeddings"].parent.iterdir() if "npz" in p.name) == ["faces.npz"]


def test_report_counts_people_once_and_says_so(people_run, tmp_path, capsys):
    _, out = people_run
    for results in (out["json"], out["csv"], out["parquet"]):
        target, page = tmp_path / "people.json", tmp_path / "people.html"
        assert run_cli("report", results, "--count", "people", "--bootstrap", 0, "--json", target, "--html", page) == 0
        figures = json.loads(target.read_text())
        assert figures["people"] == 2 and figures["faces"] == 4  # 3 copies of one face and 1 other face
        assert "people counted" in page.read_text()
        assert capsys.readouterr().out.startswith("2 people counted once each, in 4 faces analysed")
    assert run_cli("report", out["json"], "--bootstrap", 0, "--json", tmp_path / "faces.json") == 0
    assert "people" not in json.loads((tmp_path / "faces.json").read_text())


def test_report_counts_people_on_results_without_person_in_one_line(people_run, tmp_path, capsys):
    _, out = people_run
    results = json.loads(out["json"].read_text())
    for result in results:
        for face in result["faces"]:
            face.pop("person", None)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(results))
    capsys.readouterr()
    assert run_cli("report", plain, "--count", "people") == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "rerun `run` with --people" in error and "plain.json" in error


def test_a_collection_of_one_face_and_people_of_two_runs(people_run, astronaut_jpg, tmp_path, capsys):
    """The normal model's crops are not FaceNet's: the identity crops are made apart."""
    _, out = people_run
    one = tmp_path / "one.json"
    assert run_cli("run", "--img", astronaut_jpg, "--people", "--model_type", "normal", "--json", one) == 0
    assert "face at (177,60) 93x117, person 1:" in capsys.readouterr().out
    assert [f["person"] for f in json.loads(one.read_text())[0]["faces"]] == [1]
    target = tmp_path / "r.json"
    assert run_cli("report", one, "--count", "people", "--bootstrap", 0, "--json", target) == 0
    assert json.loads(target.read_text())["people"] == 1
    assert run_cli("run", "--img", astronaut_jpg, "--people", "--json", one, "--quiet") == 0  # the facenet model's
    assert run_cli("report", out["json"], one, "--count", "people", "--bootstrap", 0, "--json", target) == 0
    figures = json.loads(target.read_text())
    assert figures["people"] == 3  # person numbers hold within one run's results: 2 + 1
    assert "counted twice" in capsys.readouterr().out


def face(female: float, race: str = "white") -> dict:
    races = {name: 0.9 if name == race else 0.025 for name in RACES}
    return {"box": [0, 0, 60, 60], "gender": "female" if female >= 0.5 else "male",
            "gender_probability": max(female, 1 - female), "race_probabilities": races,
            "age_group_probabilities": {group: 1 / len(AGE_BUCKETS) for group in AGE_BUCKETS}, "too_small": False}


def test_a_person_has_the_mean_of_their_faces_probabilities(tmp_path):
    """Person 1: faces 60 %, 60 % and 20 % female (mean 47 %: a man); person 2: 90 %. Faces: 3 of 4 are women;
    people: 1 of 2."""
    results = [{"image": f"{i}.jpg", "model": "facenet", "faces": [{**face(p), "person": person}]}
               for i, (p, person) in enumerate([(0.6, 1), (0.6, 1), (0.2, 1), (0.9, 2)])]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    calibration = build_calibration(synthetic.simulate(500, seed=3), "facenet")
    faces = report(path, calibration, method="cc", bootstrap=0)
    people = report(path, calibration, method="cc", bootstrap=0, count="people")
    assert faces.people is None and faces.attributes["gender"]["female"].counted == pytest.approx(0.75)
    assert people.people == 2 and people.faces == 4
    assert people.attributes["gender"]["female"].counted == pytest.approx(0.5)
    assert people.to_json()["people"] == 2


def test_screen_time_weighs_each_person_by_their_frames(tmp_path):
    """Person 1 (a woman) in 3 frames, person 2 (a man) in 1: 75 % of the time on screen is a woman's, 50 % of
    the people; the bootstrap draws people, so the interval is that of two people, not of four faces."""
    frames = [{"frame": i, "image": "clip.mp4", "model": "facenet",
               "faces": [{**face(p), "person": person, "box": [10 * i, 0, 60, 60]}]}
              for i, (p, person) in enumerate([(0.9, 1), (0.9, 1), (0.9, 1), (0.1, 2)])]
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(frames))
    calibration = build_calibration(synthetic.simulate(500, seed=3), "facenet")
    timed = report(path, calibration, method="cc", bootstrap=200, count="screen_time")
    assert timed.people == 2 and timed.count == "screen_time" and timed.to_json()["count"] == "screen_time"
    assert timed.attributes["gender"]["female"].counted == pytest.approx(0.75)
    assert timed.attributes["gender"]["female"].estimate == pytest.approx(0.75)
    low, high = timed.attributes["gender"]["female"].low, timed.attributes["gender"]["female"].high
    assert low == pytest.approx(0) and high == pytest.approx(1)  # two people drawn: none, one or both women
    assert "weighed by time on screen" in timed.to_text()
    photos = tmp_path / "photos.json"
    photos.write_text(json.dumps([{k: v for k, v in f.items() if k != "frame"} for f in frames]))
    with pytest.raises(ReportError, match="no video frames"):
        report(photos, calibration, bootstrap=0, count="screen_time")


def test_person_values_that_are_not_person_numbers_are_refused():
    assert person_numbers("f", [1, None, float("nan"), 3.0]).tolist() == [1, -1, -1, 3]
    for bad in ([0], [1.5], ["x"], [-2]):
        with pytest.raises(ReportError, match="f: a face whose person is not a whole number"):
            person_numbers("f", bad)


@pytest.mark.parametrize("options, message", [
    (("--people", "--resume", "--jsonl", "r.jsonl"), "--resume --people needs --embeddings FILE"),
    (("--embeddings", "e.npz"), "--embeddings needs --people"),
    (("--people", "--embeddings", "-"), "--embeddings: give a file"),
    (("--recurring",), "--recurring needs --people"),
])
def test_refusals_are_one_line_with_status_2(options, message, astronaut_jpg, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", "--img", astronaut_jpg, *options) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "e.npz").exists()


def test_resume_numbers_new_faces_on_from_the_earlier_run(astronaut_jpg, camera_jpg, tmp_path, capsys):
    """--resume --people: the earlier faces keep their numbers, a new photo of a person seen before gets that
    person's, and the --embeddings file then holds every face; a file of another run is refused."""
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "b.jpg").write_bytes(camera_jpg.read_bytes())
    (folder / "c.jpg").write_bytes(astronaut_jpg.read_bytes())
    lines, saved, every = tmp_path / "r.jsonl", tmp_path / "faces.npz", tmp_path / "all.json"
    common = ("--people", "--model_type", "normal", "--jsonl", lines, "--embeddings", saved, "--quiet")
    assert run_cli("run", "--img", folder, *common) == 0
    before = persons_by_image(json.loads(line) for line in lines.read_text().splitlines())
    assert sorted(before) == ["b.jpg", "c.jpg"] and before["b.jpg"] != before["c.jpg"]
    (folder / "a.jpg").write_bytes(astronaut_jpg.read_bytes())  # new, before the others in the folder's order
    (folder / "d.jpg").write_bytes(camera_jpg.read_bytes())
    other = tmp_path / "other.npz"
    np.savez(other, image=np.array([str(folder / "b.jpg")]), face=np.array([0]), person=np.array([7]),
             embedding=np.ones((1, 512), np.float32) / np.sqrt(512))
    capsys.readouterr()
    assert run_cli("run", "--img", folder, *common[:-3], "--embeddings", other, "--resume") == 2
    assert "not the file of the run being continued" in capsys.readouterr().err
    assert run_cli("run", "--img", folder, *common, "--resume", "--json", every) == 0
    after = persons_by_image(json.loads(every.read_text()))
    assert after == {**before, "a.jpg": before["c.jpg"], "d.jpg": before["b.jpg"]}
    assert persons_by_image(json.loads(line) for line in lines.read_text().splitlines()) == after
    with np.load(saved) as embeddings:
        names = [name.rsplit("/", 1)[-1] for name in embeddings["image"]]
        assert sorted(names) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
        assert dict(zip(names, embeddings["person"].tolist())) == {name: people[0] for name, people in after.items()}


def test_resume_people_onto_results_without_people_is_refused(astronaut_jpg, tmp_path, capsys):
    lines = tmp_path / "r.jsonl"
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--jsonl", lines, "--quiet") == 0
    assert run_cli("run", "--img", astronaut_jpg, "--model_type", "normal", "--jsonl", lines, "--quiet",
                   "--people", "--resume", "--embeddings", tmp_path / "e.npz") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "have no person number" in error and not (tmp_path / "e.npz").exists()


def make_people_video(path, astronaut_jpg, camera_jpg, frames: int = 12, gap: int = 8, fps: int = 10):
    """The astronaut, nobody, the cameraman, nobody, the astronaut again: each stretch `frames` long, each gap
    longer than a track outlives its face."""
    astronaut, camera = (cv2.resize(cv2.imread(str(p)), (320, 320)) for p in (astronaut_jpg, camera_jpg))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for photo, count in ((astronaut, frames), (None, gap), (camera, frames), (None, gap), (astronaut, frames)):
        for i in range(count):
            frame = np.full((480, 640, 3), 90, np.uint8)
            if photo is not None:
                frame[80:400, 100 + 4 * i:420 + 4 * i] = photo
            writer.write(frame)
    writer.release()


def test_video_people_who_leave_and_come_back_are_two_people(astronaut_jpg, camera_jpg, tmp_path, capsys):
    source, target = tmp_path / "in.mp4", tmp_path / "frames.json"
    make_people_video(source, astronaut_jpg, camera_jpg)
    assert run_cli("run", "--video", source, "--people", "--json", target, "--output", tmp_path / "out.mp4") == 0
    frames = json.loads(target.read_text())
    faces = [(f["frame"], x["track_id"], x.get("person")) for f in frames for x in f["faces"]]
    person_of = {track: person for _, track, person in faces}
    assert len(person_of) == 3 and sorted(set(person_of.values())) == [1, 2]
    first, _, last = sorted(person_of)
    assert person_of[first] == person_of[last] != person_of[sorted(person_of)[1]]
    seconds = {p: sum(1 for _, _, q in faces if q == p) / 10 for p in (1, 2)}
    assert seconds[1] >= 2 * seconds[2] > 0  # on screen twice as long
    assert f"2 people; person 1 {seconds[1]:g} s on screen; person 2 {seconds[2]:g} s on screen" in \
        capsys.readouterr().err
    assert run_cli("report", target, "--count", "people", "--bootstrap", 0, "--json", tmp_path / "r.json") == 0
    assert json.loads((tmp_path / "r.json").read_text())["people"] == 2
    page = tmp_path / "time.html"
    assert run_cli("report", target, "--count", "screen_time", "--json", tmp_path / "t.json", "--html", page) == 0
    on_screen = json.loads((tmp_path / "t.json").read_text())
    assert on_screen["people"] == 2 and on_screen["count"] == "screen_time" and "time on screen" in page.read_text()
    woman = {p: np.mean([x["gender_probability"] if x["gender"] == "female" else 1 - x["gender_probability"]
                         for f in frames for x in f["faces"] if x.get("person") == p]) > 0.5 for p in (1, 2)}
    female = sum(seconds[p] for p in (1, 2) if woman[p]) / (seconds[1] + seconds[2])  # by the mean of each's faces
    assert on_screen["attributes"]["gender"]["female"]["counted"] == pytest.approx(female, abs=1e-4)


def test_two_faces_on_screen_at_once_are_two_people_however_alike(astronaut_jpg, tmp_path, capsys):
    """The same photo twice side by side for 12 frames: FaceNet cannot tell the two apart, the frames can."""
    source, target = tmp_path / "twins.mp4", tmp_path / "frames.json"
    face = cv2.resize(cv2.imread(str(astronaut_jpg)), (300, 300))
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for _ in range(12):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[90:390, 10:310] = frame[90:390, 330:630] = face
        writer.write(frame)
    writer.release()
    assert run_cli("run", "--video", source, "--people", "--json", target, "--model_type", "normal") == 0
    people = [{x["person"] for x in f["faces"]} for f in json.loads(target.read_text())]
    assert all(len(p) == 2 for p in people) and set.union(*people) == {1, 2}
    assert "2 people; person 1 1.2 s on screen; person 2 1.2 s on screen" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (("--video", "0"), "--people counts the people of a video file, not of a camera or stream"),
    (("--video", "clip.mp4", "--embeddings", "e.npz"), "--embeddings is for images"),
])
def test_video_refusals_are_one_line_with_status_2(extra, message, capsys):
    assert run_cli("run", *extra, "--people", "--model_type", "normal") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
