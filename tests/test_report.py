"""`report` (issue 24) on tiny generated results: prior shifts recovered, intervals that hold the truth,
one-line errors for bad result files, the same report from every results format."""
import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from face_analysis.errors import FaceAnalysisError
from face_analysis.labels import AGE_BUCKETS, MAX_AGE
from face_analysis.reporting import (DEFAULT_METHODS, ReportError, age_group_probabilities, build_calibration,
                                     load_calibration, report, save_calibration)
from face_analysis.reporting import command, quantify, synthetic
from face_analysis.reporting.attributes import ATTRIBUTES, CSV_PROBABILITY_COLUMNS, csv_column
from face_analysis.reporting.calibration import labelled_arrays
from face_analysis.reporting.correction import corrected_shares
from face_analysis.reporting.html import report_html

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIFT = {"race": np.array([0.7, 0.1, 0.1, 0.05, 0.05])}


@pytest.fixture(scope="module")
def calibration():
    return build_calibration(synthetic.simulate(2000, seed=11), "facenet")


def _write_json(path, results):
    path.write_text(json.dumps(results))
    return path


def _csv_frame(results) -> pd.DataFrame:
    rows = []
    for result in results:
        for face in result["faces"]:
            row = {"image": result["image"], "model": result.get("model"), "gender": face["gender"],
                   "gender_probability": face["gender_probability"], "too_small": int(face["too_small"])}
            for attribute in ("race", "age_group"):
                given = face.get(f"{attribute}_probabilities") or {}
                row.update({csv_column(attribute, n): given.get(n) for n in ATTRIBUTES[attribute]})
            rows.append(row)
    return pd.DataFrame(rows)


def test_age_group_probabilities_sum_the_years_of_each_group():
    uniform = np.full(MAX_AGE + 1, 1 / (MAX_AGE + 1))
    groups = age_group_probabilities(uniform, decimals=None)
    assert list(groups) == list(AGE_BUCKETS)
    assert groups["0-2"] == pytest.approx(3 / 117) and groups["70+"] == pytest.approx(47 / 117)
    assert sum(groups.values()) == pytest.approx(1)
    at = np.zeros(MAX_AGE + 1)
    at[70] = 1
    assert age_group_probabilities(at)["70+"] == 1 and age_group_probabilities(at)["60-69"] == 0


def test_default_method_recovers_a_known_prior_shift(calibration):
    frame = synthetic.simulate(3000, seed=12, shares=SHIFT)
    probs, labels = labelled_arrays(frame)
    truth = np.bincount(labels["race"], minlength=5) / len(frame)
    cal_probs, cal_labels = calibration.arrays(["race"])
    found = quantify.estimate(DEFAULT_METHODS["race"], cal_probs, cal_labels, [probs["race"].astype(float)],
                              bootstrap=0)
    counting_error = np.abs(found.counted - truth).sum()
    assert 100 * counting_error > 15  # what counting gets wrong
    assert np.abs(found.point - truth).sum() < 0.3 * counting_error  # the correction removes most of it


@pytest.mark.parametrize("method", ["acc", "pacc", "emq_bcts"])
def test_every_correction_beats_counting_on_a_shift(calibration, method):
    probs, labels = labelled_arrays(synthetic.simulate(3000, seed=13, shares=SHIFT))
    truth = np.bincount(labels["race"], minlength=5) / len(labels["race"])
    cal_probs, cal_labels = calibration.arrays(["race"])
    found = quantify.estimate(method, cal_probs, cal_labels, [probs["race"].astype(float)], bootstrap=0)
    assert np.abs(found.point - truth).sum() < 0.5 * np.abs(found.counted - truth).sum()


def test_life_stage_comes_from_the_age_groups(calibration):
    (race, stage), (race_labels, stage_labels) = calibration.arrays(["race", "life_stage"])
    groups = calibration.labels["age_group"]
    assert stage.shape == (len(calibration), 3) and np.allclose(stage.sum(1), 1, atol=1e-3)
    assert np.array_equal(stage_labels, np.select([groups <= 2, groups <= 6], [0, 1], 2))
    assert np.allclose(stage[:, 2], calibration.probs["age_group"][:, 7:].sum(1), atol=1e-6)


def test_stratified_correction_follows_errors_that_differ_with_age():
    """A model leaning to "white" on elders only: plain correction applies the adults' errors to a collection of
    elders (worse than counting); stratified by life stage, the elders' own."""
    calibration = build_calibration(synthetic.simulate(4000, seed=21, shares={"age_group": np.full(9, 1 / 9)},
                                                       elder_lean=1.5), "facenet")
    elders = {"race": np.array([0.6, 0.1, 0.1, 0.1, 0.1]), "age_group": np.r_[np.zeros(7), 0.7, 0.3]}
    for seed in range(2):
        probs, labels = labelled_arrays(synthetic.simulate(3000, seed=22 + seed, shares=elders, elder_lean=1.5))
        truth = np.bincount(labels["race"], minlength=5) / len(labels["race"])
        faces = {a: p.astype(float) for a, p in probs.items()}
        error = {stratified: 100 * np.abs(corrected_shares("pacc", calibration, faces, "race", bootstrap=0,
                                                           stratified=stratified).point - truth).sum()
                 for stratified in (False, True)}
        assert error[True] < 20 and error[True] < 0.5 * error[False]


def test_a_correction_stratified_by_two_attributes_sums_their_joint_classes(calibration, monkeypatch):
    """attributes.STRATA may name several strata: the method runs on the joint classes of all of them (gender x
    race x life stage: 30) and the shares are the sums over the strata."""
    from face_analysis.reporting import attributes

    probs, _ = labelled_arrays(synthetic.simulate(800, seed=17, shares=SHIFT))
    faces = {a: p.astype(float) for a, p in probs.items()}
    monkeypatch.setitem(attributes.STRATA, "gender", ("race", "life_stage"))
    found = corrected_shares("pacc", calibration, faces, "gender", bootstrap=5)
    cal_probs, cal_labels = calibration.arrays(["gender", "race", "life_stage"])
    stage, _ = attributes.derived(faces, None, "life_stage")
    joint = quantify.estimate("pacc", cal_probs, cal_labels, [faces["gender"], faces["race"], stage], bootstrap=0)
    assert joint.point.shape == (30,)
    assert found.point.shape == (2,) and found.replicates.shape == (5, 2)
    np.testing.assert_allclose(found.point, joint.point.reshape(2, 15).sum(1), atol=1e-9)
    assert found.point.sum() == pytest.approx(1)


def test_a_joint_class_missing_from_calibration_gets_the_product_of_each_attributes_errors():
    rng = np.random.default_rng(5)
    first, second = rng.integers(0, 3, 4000), rng.integers(0, 2, 4000)
    keep = ~((first == 2) & (second == 1))
    first, second = first[keep], second[keep]
    probs = [synthetic.head_probabilities("age_group", first, rng)[:, :3], np.eye(2)[second] * 0.8 + 0.1]
    probs[0] /= probs[0].sum(1, keepdims=True)
    fitted = quantify.Quantifier.fit("pacc", probs, [first, second])
    expected = np.kron(probs[0][first == 2].mean(0), probs[1][second == 1].mean(0))
    assert np.abs(fitted.matrix[:, 2 * 2 + 1] - expected).max() < 0.02


def test_intervals_hold_the_truth_in_a_small_simulation(calibration):
    covered = total = 0
    for seed in range(5):
        probs, labels = labelled_arrays(synthetic.simulate(600, seed=100 + seed, shares=SHIFT))
        for attribute in ("race", "gender"):
            cal_probs, cal_labels = calibration.arrays([attribute])
            found = quantify.estimate(DEFAULT_METHODS[attribute], cal_probs, cal_labels,
                                      [probs[attribute].astype(float)], bootstrap=40, seed=seed)
            low, high = quantify.interval(found.point, found.replicates)
            truth = np.bincount(labels[attribute], minlength=len(low)) / len(labels[attribute])
            covered += int(((low <= truth) & (truth <= high)).sum())
            total += len(truth)
    assert covered / total >= 0.8


def test_json_jsonl_csv_and_parquet_give_the_same_report(tmp_path, calibration):
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = synthetic.results_of(synthetic.simulate(300, seed=14, shares=SHIFT), too_small=4)
    json_file = _write_json(tmp_path / "r.json", results)
    jsonl_file = tmp_path / "r.jsonl"
    jsonl_file.write_text("".join(json.dumps(r) + "\n" for r in results))
    csv_file = tmp_path / "r.csv"
    _csv_frame(results).to_csv(csv_file, index=False)
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(results[:50]), folder / "results-a-00000.parquet")
    pq.write_table(pa.Table.from_pylist(results[50:]), folder / "results-a-00001.parquet")
    reports = [report([path], calibration, bootstrap=20, chunk_faces=64).to_json()
               for path in (json_file, jsonl_file, csv_file, folder)]
    assert reports[0]["faces"] == 300 and reports[0]["skipped"]["too_small"] == 4
    assert reports[0]["model"] == "facenet"
    for other in reports[1:]:
        assert other == reports[0]


def test_a_report_of_many_small_faces_says_their_shares_are_rougher(tmp_path, calibration):
    """Faces under 48 px (a crowd's, found by the closer look) err more than the calibration set's full-size
    ones: from 10 % of the analysed faces, the report says so, counting them alike in every format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = synthetic.results_of(synthetic.simulate(200, seed=18))
    faces = [face for result in results for face in result["faces"]]
    for face in faces[::5]:
        face["box"][2:] = [30, 36]
    json_file = _write_json(tmp_path / "r.json", results)
    frame = _csv_frame(results)
    frame[list("xywh")] = [face["box"] for face in faces]
    frame.to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(results), tmp_path / "pq" / "results-a-00000.parquet")
    for path in (json_file, tmp_path / "r.csv", tmp_path / "pq"):
        notes = report([path], calibration, bootstrap=0).notes
        assert [n for n in notes if "under 48 px" in n] == [
            next(n for n in notes if n.startswith("40 of the 200 analysed faces are under 48 px"))], path
    for face in faces[::5][1:]:
        face["box"][2:] = [64, 64]
    assert not any("under 48 px" in n for n in report([_write_json(tmp_path / "few.json", results)], calibration,
                                                      bootstrap=0).notes)  # 1 of 200: no note


def test_the_default_corrects_each_attribute_with_its_own_method(tmp_path, calibration):
    """Without --method, gender is corrected with acc and race with pacc (quantify.DEFAULT_METHODS), and the
    report names both; --method applies one method to every attribute."""
    frame = synthetic.simulate(500, seed=16, shares={"gender": np.array([0.25, 0.75]), **SHIFT})
    path = _write_json(tmp_path / "r.json", synthetic.results_of(frame))
    probs, _ = labelled_arrays(frame)
    faces = {a: p.astype(float) for a, p in probs.items()}
    default = report([path], calibration, bootstrap=0)
    assert DEFAULT_METHODS["gender"] != DEFAULT_METHODS["race"]
    assert default.method == ", ".join(f"{a} {m}" for a, m in DEFAULT_METHODS.items())
    for attribute in ("race", "gender"):
        expected = corrected_shares(DEFAULT_METHODS[attribute], calibration, faces, attribute, bootstrap=0).point
        other = "pacc" if DEFAULT_METHODS[attribute] == "acc" else "acc"
        elsewise = corrected_shares(other, calibration, faces, attribute, bootstrap=0).point
        got = np.array([s.estimate for s in default.attributes[attribute].values()])
        assert np.abs(got - expected).max() < 1e-3 < np.abs(got - elsewise).max()
    assert report([path], calibration, method="pacc", bootstrap=0).method == "pacc"


def test_report_json_schema_by_and_html(tmp_path, calibration):
    results = synthetic.results_of(synthetic.simulate(400, seed=15, shares={"gender": np.array([0.2, 0.8])}),
                                   too_small=3, no_face=2)
    path = _write_json(tmp_path / "r.json", results)
    result = report([path], calibration, by="gender", method="pacc", bootstrap=20)
    data = result.to_json()
    assert set(data) >= {"faces", "skipped", "attributes", "method", "model"}
    assert data["skipped"]["too_small"] == 3 and data["skipped"]["no_face"] == 2
    assert set(data["attributes"]) == {"race", "gender", "age_group"}
    assert list(data["attributes"]["age_group"]) == list(AGE_BUCKETS)
    for shares in data["attributes"].values():
        assert sum(s["estimate"] for s in shares.values()) == pytest.approx(1, abs=2e-3)
        assert all(s["low"] <= s["estimate"] <= s["high"] for s in shares.values())
    within = data["by"]["groups"]["female"]["attributes"]["race"]
    assert sum(s["estimate"] for s in within.values()) == pytest.approx(1, abs=2e-3)
    assert "female" in result.to_text() and "95 % interval" in result.to_text()
    page = report_html(result)
    assert page.count("data:image/png;base64,") == 3 + 2 * 2


def _one_line_error(paths, calibration, name):
    with pytest.raises(ReportError) as error:
        report(paths, calibration, bootstrap=0)
    message = str(error.value)
    assert isinstance(error.value, FaceAnalysisError) and "\n" not in message and name in message
    return message


def test_bad_result_files_get_one_line_errors(tmp_path, calibration):
    good = synthetic.results_of(synthetic.simulate(20, seed=16))
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert "empty" in _one_line_error([empty], calibration, "empty.json")
    nothing = tmp_path / "nothing.json"
    nothing.write_text("[]\n")
    assert "no results" in _one_line_error([nothing], calibration, "nothing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"[{\"image\": \xff\xfe\x00 not json")
    _one_line_error([garbage], calibration, "garbage.json")
    broken_csv = tmp_path / "broken.csv"
    broken_csv.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    _one_line_error([broken_csv], calibration, "broken.csv")
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("not parquet")
    _one_line_error([not_parquet], calibration, "x.parquet")
    _one_line_error([tmp_path / "missing.json"], calibration, "missing.json")
    other = _write_json(tmp_path / "normal.json", synthetic.results_of(synthetic.simulate(20, seed=17), model="normal"))
    first = _write_json(tmp_path / "facenet.json", good)
    assert "normal" in _one_line_error([first, other], calibration, "normal.json")
    mixed = _write_json(tmp_path / "mixed.json", good + json.loads(other.read_text()))
    _one_line_error([mixed], calibration, "mixed.json")
    _one_line_error([other], calibration, "normal.json")  # the calibration is facenet's
    old = json.loads(first.read_text())
    for result in old:
        for face in result["faces"]:
            del face["age_group_probabilities"]
    old_file = _write_json(tmp_path / "old.json", old)
    assert "age_group_probabilities" in _one_line_error([old_file], calibration, "old.json")
    today_csv = tmp_path / "today.csv"  # run's CSV before the probabilities were added: race_probability only
    today_csv.write_text("image,gender,gender_probability,race,race_probability,too_small\n"
                         "a.jpg,male,0.9,white,0.8,0\n")
    assert "race_probabilities" in _one_line_error([today_csv], calibration, "today.csv")


def test_an_interrupted_json_list_is_read_with_a_note(tmp_path, calibration):
    results = synthetic.results_of(synthetic.simulate(30, seed=18))
    path = tmp_path / "cut.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in results))  # no closing bracket
    result = report([path], calibration, bootstrap=0)
    assert result.faces == 30 and any("not closed" in note for note in result.notes)


def test_calibration_round_trip_and_bad_files(tmp_path, calibration):
    saved = save_calibration(calibration, tmp_path)
    assert saved.name == "calibration.npz" and saved.stat().st_size < 200_000
    loaded = load_calibration(tmp_path)
    assert loaded.model_type == "facenet" and len(loaded) == len(calibration)
    for attribute in ATTRIBUTES:
        np.testing.assert_array_equal(loaded.labels[attribute], calibration.labels[attribute])
        np.testing.assert_allclose(loaded.probs[attribute], calibration.probs[attribute], atol=1e-3)
    saved.write_bytes(b"damaged")
    with pytest.raises(ReportError, match="calibration.npz"):
        load_calibration(tmp_path)
    with pytest.raises(ReportError, match="calibrate"):
        load_calibration(tmp_path / "nothing_here" if (tmp_path / "nothing_here").mkdir() is None else None)


def test_command_writes_json_and_html(tmp_path, calibration, capsys):
    save_calibration(calibration, tmp_path)
    results = _write_json(tmp_path / "r.json", synthetic.results_of(synthetic.simulate(200, seed=19)))
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(results), "--json", str(tmp_path / "out.json"), "--html",
                              str(tmp_path / "out.html"), "--by", "gender", "--bootstrap", "10", "--method", "pacc"])
    assert command.run_report(args, default_model_dir=lambda model_type: tmp_path) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["method"] == "pacc" and data["by"]["attribute"] == "gender"
    assert (tmp_path / "out.html").read_text().startswith("<!doctype html>")
    assert "race" in capsys.readouterr().out
    args = parser.parse_args(["report", str(results), "--json", str(tmp_path / "default.json"), "--bootstrap", "0"])
    assert command.run_report(args, default_model_dir=lambda model_type: tmp_path) == 0
    assert json.loads((tmp_path / "default.json").read_text())["method"] == "race emq_bcts, gender acc, age_group cc"


def _audit():
    spec = importlib.util.spec_from_file_location("audit", REPO_ROOT / "benchmarks" / "audit.py")
    audit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(audit)
    return audit


def test_audit_collections_are_skewed_even_when_the_table_is_barely_larger():
    audit = _audit()
    race = np.repeat(np.arange(5), 202)  # 1,010 faces, a fifth of each race: a collection of 1,000 is most of it
    labels = {"race": race, "gender": race % 2, "age_group": race}
    picked = audit.draw(audit.collections(labels)["80 % white"][0], 1000, np.random.default_rng(0))
    assert len(picked) == 1000 and 0.75 < np.mean(race[picked] == 0) < 0.85


def test_audit_benchmark_runs_on_synthetic_faces(capsys):
    audit = _audit()
    assert audit.main(["--synthetic", "--seeds", "1", "--bootstrap", "0", "--size", "300",
                       "--methods", "cc", "pacc", "--attributes", "race", "gender"]) == 0
    out = capsys.readouterr().out
    assert "80 % indian" in out and "children (0-19)" in out and "pacc" in out


def test_audit_hard_collections_hold_one_group_or_a_given_size():
    audit = _audit()
    race = np.repeat(np.arange(5), 400)
    labels = {"race": race, "gender": race % 2, "age_group": np.arange(2000) % 9}
    found = audit.collections(labels, hard=True)
    assert set(np.unique(race[found["black only"][0] > 0])) == {1}
    assert set(np.unique(race[found["no indian"][0] > 0])) == {0, 1, 2, 4}
    assert found["250 at random"][1] == 250 and found["elders (60+) only"][1] is None
    assert np.isclose(found["children (0-9) only"][0].sum(), 1)


# --- wired into the product: run's outputs carry the probabilities, calibrate stores a checked calibration ---

def _model_copy(tmp_path, model_type="normal", calibration=None):
    """A copy of a shipped model, with `calibration` (synthetic predictions) added through its manifest."""
    import shutil

    from face_analysis.models import store as model_store
    from face_analysis.reporting.calibration import FILE_NAME, calibration_bytes

    folder = tmp_path / f"{model_type}_copy"
    shutil.copytree(REPO_ROOT / "saved_model" / f"{model_type}_model", folder)
    model_store.add_files(folder, {FILE_NAME: calibration_bytes(calibration)} if calibration else {},
                          remove=() if calibration else {FILE_NAME})  # (the shipped model's own, if any)
    assert (folder / FILE_NAME).exists() == bool(calibration)
    return folder


def test_run_writes_the_probabilities_in_every_format_and_report_reads_them(tmp_path, monkeypatch, capsys):
    from conftest import run_cli
    from face_analysis.io import writers
    from face_analysis.models import store as model_store

    model = _model_copy(tmp_path, calibration=build_calibration(synthetic.simulate(1500, seed=21), "normal"))
    outputs = {"json": tmp_path / "r.json", "csv": tmp_path / "r.csv", "parquet": tmp_path / "pq"}
    assert run_cli("run", "--img", REPO_ROOT / "examples" / "crowd.jpg", REPO_ROOT / "examples" / "astronaut.jpg",
                   "--model_path", model, "--quiet", *(f for kind, path in outputs.items()
                                                      for f in (f"--{kind}", path))) == 0
    results = json.loads(outputs["json"].read_text())
    faces = [face for result in results for face in result["faces"] if not face["too_small"]]
    assert {result["model"] for result in results} == {"normal"} and len(faces) >= 2
    for face in faces:
        assert list(face["age_group_probabilities"]) == list(AGE_BUCKETS)
        assert sum(face["age_group_probabilities"].values()) == pytest.approx(1, abs=2e-3)
    header = list(pd.read_csv(outputs["csv"], nrows=0).columns)
    assert header == writers.CSV_COLUMNS and "model" in header
    assert set(writers.PROBABILITY_COLUMNS) == set(CSV_PROBABILITY_COLUMNS) <= set(header)
    rows = pd.read_csv(outputs["csv"])
    assert set(rows["model"]) == {"normal"}
    analysed = rows[rows["too_small"] == 0]
    assert np.allclose(analysed[[c for c in header if c.startswith("gender_probabilities.")]].sum(axis=1), 1, atol=2e-4)
    import pyarrow.parquet as pq

    schema = pq.read_schema(writers.parquet_files(outputs["parquet"])[0])
    assert "model" in schema.names
    assert "age_group_probabilities" in [f.name for f in schema.field("faces").type.value_type]
    reports = []
    for kind, path in outputs.items():
        target = tmp_path / f"report_{kind}.json"
        assert run_cli("report", path, "--model_path", model, "--json", target, "--bootstrap", 10) == 0
        reports.append(json.loads(target.read_text()))
    assert reports[0]["faces"] == len(faces) and reports[0]["model"] == "normal"
    assert reports[1]["faces"] == reports[2]["faces"] == len(faces)
    assert reports[2]["attributes"] == reports[0]["attributes"]  # Parquet and JSON: the same values
    asked = []
    monkeypatch.setattr(model_store, "default_model_dir", lambda model_type: asked.append(model_type) or model)
    assert run_cli("report", outputs["json"], "--bootstrap", 0) == 0  # the model the results name
    assert asked == ["normal"] and "age_group" in capsys.readouterr().out


def test_report_without_a_calibration_says_to_run_calibrate(tmp_path, capsys):
    from conftest import run_cli

    model = _model_copy(tmp_path)
    results = _write_json(tmp_path / "r.json", synthetic.results_of(synthetic.simulate(20, seed=22), model="normal"))
    assert run_cli("report", results, "--model_path", model) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "calibrate --model_path" in error and "calibration.npz" in error


def test_resume_reads_a_parquet_folder_written_before_the_probabilities(tmp_path, capsys):
    """--resume over results-*.parquet files of the earlier schema (no "model", no age_group_probabilities)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conftest import run_cli
    from face_analysis.io import writers

    old_face = pa.struct([field for field in writers.parquet_schema().field("faces").type.value_type
                          if field.name != "age_group_probabilities"])
    old_schema = pa.schema([("image", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                            ("faces", pa.list_(old_face)), ("error", pa.string())])
    astronaut = str(REPO_ROOT / "examples" / "astronaut.jpg")
    face = {"box": [1, 2, 30, 40], "age": 30.0, "age_std": 5.0, "gender": "female", "gender_probability": 0.9,
            "race": "white", "race_probabilities": dict.fromkeys(("white", "black", "asian", "indian", "others"), 0.2),
            "detection_score": 0.9, "face_size": 40, "too_small": False}
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"image": astronaut, "width": 512, "height": 512, "faces": [face],
                                          "error": None}], schema=old_schema), folder / "results-old-00000.parquet")
    target = tmp_path / "all.json"
    assert run_cli("run", "--img", astronaut, REPO_ROOT / "examples" / "crowd.jpg", "--model_type", "normal",
                   "--parquet", folder, "--resume", "--json", target, "--quiet") == 0
    assert "1 image(s) done before" in capsys.readouterr().err
    results = {r["image"]: r for r in json.loads(target.read_text())}
    assert results[astronaut]["model"] is None and results[astronaut]["faces"][0]["age_group_probabilities"] is None
    assert results[str(REPO_ROOT / "examples" / "crowd.jpg")]["model"] == "normal"
    with pytest.raises(ReportError, match="age_group_probabilities"):  # report names what the old files lack
        report([folder], build_calibration(synthetic.simulate(200, seed=23), "normal"), bootstrap=0)


def test_calibrate_stores_a_calibration_checked_by_the_manifest(tmp_path, tiny_utk, capsys):
    from conftest import run_cli
    from face_analysis.models import store as model_store
    from test_labelled_sets import make_photo_set

    model = _model_copy(tmp_path)
    photos = make_photo_set(tmp_path / "photos", copies=6)
    assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk, photos, "--force") == 0  # 6 faces
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["calibration.npz"] == model_store.file_sha256(model / "calibration.npz")
    calibration = load_calibration(model)
    assert calibration.model_type == "normal" and set(calibration.labels) == set(ATTRIBUTES)
    assert len(calibration) == 6  # the photos only (UTKFace chips join only without photos); never seen: all held out
    assert (calibration.labels["race"] >= 0).all() and (calibration.labels["age_group"] >= 0).all()
    np.testing.assert_allclose(calibration.probs["age_group"].sum(1), 1, atol=5e-3)
    results = _write_json(tmp_path / "r.json", synthetic.results_of(synthetic.simulate(50, seed=24), model="normal"))
    assert run_cli("report", results, "--model_path", model, "--bootstrap", 0) == 0
    capsys.readouterr()
    with open(model / "calibration.npz", "ab") as file:  # damaged: report and run refuse the model in one line
        file.write(b"\0")
    for command in (("report", results, "--model_path", model),
                    ("run", "--img", REPO_ROOT / "examples" / "astronaut.jpg", "--model_path", model, "--quiet")):
        assert run_cli(*command) == 1
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and "calibration.npz" in error and "sha256" in error and "calibrate" in error
    assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk, "--force") == 0  # replaced, checked
    assert len(load_calibration(model)) == 60
    model_store.read_model_info(model)
