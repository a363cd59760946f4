"""`report`'s intervals at the edges (issue 37): a class absent, a single face, one face repeated, one race only:
never of zero width, within 0..1, holding the truth."""
import json

import numpy as np
import pytest

from face_analysis.reporting import build_calibration, quantify, report, synthetic
from face_analysis.reporting.attributes import ATTRIBUTES

RACES = ATTRIBUTES["race"]


@pytest.fixture(scope="module")
def calibration():
    return build_calibration(synthetic.simulate(2000, seed=31), "facenet")


def results_file(tmp_path, frame, name="r.json"):
    path = tmp_path / name
    path.write_text(json.dumps(synthetic.results_of(frame)))
    return path


def assert_honest(shares):
    for name, share in shares.items():
        assert 0 <= share.low <= share.estimate <= share.high <= 1, name
        assert share.high - share.low > 0.004, f"{name}: an interval of zero width"


def test_an_absent_class_gets_an_interval_from_0_to_more(tmp_path, calibration):
    frame = synthetic.simulate(400, seed=32, shares={"race": np.array([0.4, 0.3, 0.3, 0.0, 0.0])})
    found = report([results_file(tmp_path, frame)], calibration, bootstrap=40)
    for attribute, shares in found.attributes.items():
        assert_honest(shares)
    for absent in ("indian", "others"):  # within a point of the truth, and [0, more] where estimated at 0
        share = found.attributes["race"][absent]
        assert share.low < 0.01 and share.high > 0 and (share.estimate > 0 or share.low == 0)


def test_a_single_face_gets_wide_honest_intervals(tmp_path, calibration):
    frame = synthetic.simulate(1, seed=33)
    found = report([results_file(tmp_path, frame)], calibration, bootstrap=40)
    assert found.faces == 1
    for shares in found.attributes.values():
        assert_honest(shares)
    truth = RACES[int(frame["race"].iloc[0])]
    assert found.attributes["race"][truth].high > 0.5  # one face cannot rule its own race out


def test_one_face_repeated_is_never_an_interval_of_zero_width(tmp_path, calibration):
    """Issue 24's zero-width case: every bootstrap replicate of fifty copies of one face clips at 0 or 1."""
    frame = synthetic.simulate(1, seed=34)
    frame = frame.loc[frame.index.repeat(50)].reset_index(drop=True)
    found = report([results_file(tmp_path, frame)], calibration, bootstrap=40)
    for shares in found.attributes.values():
        assert_honest(shares)


def test_a_collection_of_one_race_holds_the_truth(tmp_path, calibration):
    frame = synthetic.simulate(600, seed=35, shares={"race": np.array([0.0, 1.0, 0.0, 0.0, 0.0])})
    found = report([results_file(tmp_path, frame)], calibration, bootstrap=60)
    race = found.attributes["race"]
    assert_honest(race)
    assert race["black"].low <= 1 <= race["black"].high + 1e-9 and race["black"].estimate > 0.85
    assert all(race[name].low == 0 for name in RACES if name != "black")
    women = np.mean(frame["gender"] == ATTRIBUTES["gender"].index("female"))
    assert found.attributes["gender"]["female"].low <= women <= found.attributes["gender"]["female"].high


def test_the_widening_never_leaves_0_to_1():
    point = np.array([0.0, 0.002, 0.5, 0.998])
    replicates = np.tile(point, (20, 1))
    low, high = quantify.interval(point, replicates, allowance=0.01)
    assert np.all(low >= 0) and np.all(high <= 1) and np.all(high - low > 0)
    assert low[0] == 0 and high[-1] == 1 and np.isclose(high[2] - low[2], 0.02)


def test_the_default_intervals_span_the_other_corrections(calibration):
    """Gender's interval spans the corrections by race and by life stage, the age groups' the EM correction
    (attributes.SPANNED_BY): where the corrections disagree (children only), each lies inside it."""
    from face_analysis.reporting.attributes import SPANNED_BY
    from face_analysis.reporting.calibration import labelled_arrays
    from face_analysis.reporting.correction import corrected_shares

    children = synthetic.simulate(500, seed=36, shares={"age_group": np.array([1, 1, 0, 0, 0, 0, 0, 0, 0.0])})
    probs, _ = labelled_arrays(children)
    for attribute, others in SPANNED_BY.items():
        found = corrected_shares(quantify.DEFAULT_METHODS[attribute], calibration, probs, attribute, bootstrap=30)
        low, high = quantify.interval(found.point, found.replicates, allowance=found.allowance, span=found.span)
        own_low, own_high = quantify.interval(found.point, found.replicates, allowance=found.allowance)
        assert np.all(low <= own_low) and np.all(high >= own_high)
        for method, _ in others:
            other = corrected_shares(method, calibration, probs, attribute, bootstrap=0).point
            assert np.all(low <= other + 0.02) and np.all(other - 0.02 <= high), (attribute, method)
    assert corrected_shares("pacc", calibration, probs, "age_group", bootstrap=30).span is None  # not the default


def test_the_audit_splits_a_calibration_in_halves(tmp_path, capsys):
    """benchmarks/audit.py --halves: each half of the calibration set audits the other (how report's defaults
    were chosen, on validation photos only)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("audit", Path(__file__).parents[1] / "benchmarks" / "audit.py")
    audit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(audit)
    table = tmp_path / "cal.csv"
    synthetic.simulate(1200, seed=37).to_csv(table, index=False)
    assert audit.main(["--calibration", str(table), "--halves", "0", "--hard", "--seeds", "1", "--bootstrap", "10",
                       "--methods", "cc", "default", "--attributes", "race", "gender",
                       "--out", str(tmp_path / "out.csv")]) == 0
    assert "calibration 600 faces (halves)" in capsys.readouterr().out
    import pandas as pd

    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out["seed"]) == {0, 1000}  # both directions, kept apart
