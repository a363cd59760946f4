"""Labelled photo sets described by a CSV (FairFace's format): parsing, bad rows skipped with a count, and
`evaluate` through the detector as `run` analyses photos. Generated data only."""
import json
import tarfile

import cv2
import numpy as np
import pytest

from conftest import run_cli
from face_analysis.data import labelled as labelled_sets
from face_analysis.labels import RACES

GROUPS = ["30-39", "20-29", "more than 70", "30-39", "40-49", "3-9"]
RACE_GROUPS = ["White", "Latino_Hispanic", "East Asian", "Southeast Asian", "Middle Eastern", "Indian"]


def make_photo_set(folder, copies: int = 6, extra_rows=()):
    """A FairFace-style set: copies of the astronaut photo (each with different bytes), half as files and half
    in a .tar.gz, and a CSV labelling them (plus extra_rows)."""
    from skimage import data

    folder.mkdir(parents=True)
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    names = [f"{i}.jpg" for i in range(1, copies + 1)]
    for i, name in enumerate(names):
        copy = photo.copy()
        copy[500:508, 8 * i:8 * i + 8] = 255  # a mark of its own, so that every copy has its own content
        cv2.imwrite(str(folder / name), copy)
    with tarfile.open(folder / "part_2.tar.gz", "w:gz") as archive:
        for name in names[copies // 2:]:
            archive.add(folder / name, arcname=name)
            (folder / name).unlink()
    rows = ["file,age,gender,race"] + [f"{name},{GROUPS[i % 6]},{'Male' if i % 6 == 2 else 'Female'},"
                                       f"{RACE_GROUPS[i % 6]}" for i, name in enumerate(names)]
    (folder / "labels.csv").write_text("\n".join(rows + list(extra_rows)) + "\n")
    return folder


@pytest.fixture
def photo_set(tmp_path):
    """Six labelled photos and rows with a blank field, unknown labels and a missing file."""
    return make_photo_set(tmp_path / "faces", 6, [
        "7.jpg,30-39,Female,White",  # no such image
        "1.jpg,,Female,White",  # blank field
        "2.jpg,30-39,Unknown,White", "3.jpg,200-300,Male,White", "4.jpg,30-39,Male,Martian"])  # unknown labels


def test_rows_become_intervals_and_five_classes_and_bad_rows_are_counted(photo_set):
    labelled = labelled_sets.load_labelled_set(photo_set)
    frame = labelled.frame.set_index("name")
    assert sorted(frame.index) == [f"{i}.jpg" for i in range(1, 7)]
    assert tuple(frame.loc["3.jpg", ["age_lo", "age_hi"]]) == (70, 116)
    assert tuple(frame.loc["6.jpg", ["age_lo", "age_hi"]]) == (3, 9)
    assert [RACES[r] for r in frame["race"]] == ["white", "others", "asian", "asian", "others", "indian"]
    assert list(frame["gender"]) == [1, 1, 0, 1, 1, 1]
    assert labelled.skipped == {"no such image": 1, "blank field": 1, "unknown label": 3}
    assert set(labelled.images) == set(frame.index)


def test_a_csv_without_the_columns_is_not_a_labelled_set(tmp_path):
    (tmp_path / "other.csv").write_text("name,score\nx,1\n")
    assert labelled_sets.label_csv(tmp_path) is None
    assert labelled_sets.label_csv(tmp_path / "other.csv") is None


def test_evaluate_runs_photos_through_the_detector(photo_set, tmp_path, capsys):
    target = tmp_path / "figures.json"
    assert run_cli("evaluate", "--model_type", "normal", "--data_path", photo_set, "--split", "all",
                   "--stats_dir", tmp_path / "stats", "--json", target) == 0
    metrics = json.loads(target.read_text())
    assert metrics["images"] == 6 and metrics["faces_not_found"] == 0 and metrics["source"] == "faces"
    assert 0 <= metrics["gender_accuracy"]["of_all"] <= 1
    assert metrics["age_group_within_one"]["of_all"] >= metrics["age_group_accuracy"]["of_all"]
    assert [r["race_group"] for r in metrics["gender_by_race_group"]] == sorted(
        ["White", "Latino_Hispanic", "East Asian", "Southeast Asian", "Middle Eastern", "Indian"])
    report = (tmp_path / "stats" / "model_metrics" / "normal_model_stats" / "faces" / "report.md").read_text()
    assert "Faces not found: 0" in report
    assert "## faces: photos through `run`'s path" in (tmp_path / "stats" / "README.md").read_text()


def test_two_sets_in_folders_of_the_same_name_both_get_their_figures(tmp_path):
    first, second = make_photo_set(tmp_path / "a" / "faces", 2), make_photo_set(tmp_path / "b" / "faces", 4)
    target = tmp_path / "figures.json"
    assert run_cli("evaluate", "--model_type", "normal", "--data_path", first, second, "--split", "all",
                   "--stats_dir", tmp_path / "stats", "--json", target) == 0
    figures = json.loads(target.read_text())
    assert {name: figures[name]["images"] for name in figures} == {"faces": 2, "faces-2": 4}
    stats = tmp_path / "stats" / "model_metrics" / "normal_model_stats"
    assert json.loads((stats / "faces-2" / "metrics.json").read_text())["images"] == 4


def test_rows_name_images_by_their_path_so_equal_file_names_do_not_mix(tmp_path):
    """FairFace's own layout: train/1.jpg and val/1.jpg side by side; a row names its image by path."""
    for part, value in (("train", 10), ("val", 200)):
        (tmp_path / part).mkdir()
        cv2.imwrite(str(tmp_path / part / "1.jpg"), np.full((64, 64, 3), value, np.uint8))
    (tmp_path / "labels.csv").write_text("file,age,gender,race\ntrain/1.jpg,20-29,Male,White\n1.jpg,3-9,Male,White\n")
    labelled = labelled_sets.load_labelled_set(tmp_path)
    assert list(labelled.frame["name"]) == ["train/1.jpg"]  # the bare "1.jpg" is ambiguous: skipped
    assert labelled.skipped["no such image"] == 1
    assert cv2.imdecode(np.frombuffer(labelled.images["train/1.jpg"], np.uint8), 0).mean() < 50


def test_age_groups_saved_as_dates_by_a_spreadsheet_are_read_as_their_groups():
    rows = [{"file": f"train/{i}.jpg", "age": age, "gender": "Female", "race": "Black"}
            for i, age in enumerate(["03-Sep", "Oct-19", "3-9", "Sep-03"])]
    frame, skipped = labelled_sets.parse_rows(rows)
    assert frame["age_group"].tolist() == ["3-9", "10-19", "3-9"]
    assert frame[["age_lo", "age_hi"]].values.tolist() == [[3, 9], [10, 19], [3, 9]]
    assert skipped["unknown label"] == 1


def test_nul_bytes_in_the_labels_are_skipped_and_counted_or_named(tmp_path, capsys):
    folder = make_photo_set(tmp_path / "faces", 6, ["1.jpg,30-39,Fe\x00male,White", "\x00\x00\x00",
                                                    "2.jpg\x00,20-29,Male,White"])
    labelled = labelled_sets.load_labelled_set(folder / "labels.csv")
    assert len(labelled.frame) == 6 and labelled.skipped["NUL byte"] == 3
    assert run_cli("evaluate", "--model_type", "normal", "--data_path", folder / "labels.csv", "--split", "all",
                   "--stats_dir", tmp_path / "stats") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyError" not in err and "normal on 6 faces photos" in err
    header = tmp_path / "header" / "labels.csv"
    header.parent.mkdir()
    header.write_bytes(b"fi\x00le,age,gender,race\n1.jpg,30-39,Male,White\n")  # no longer the columns of a set
    assert run_cli("evaluate", "--model_type", "normal", "--data_path", header, "--stats_dir", tmp_path / "s2") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {header}: ") and err.count("\n") == 1 and "KeyError" not in err
