import hashlib

import numpy as np
import pandas as pd
import pytest

from face_analysis.data import utk as utk_data
from face_analysis.labels import age_bucket
from face_analysis.data.utk import UtkLabel, parse_utk_name


@pytest.mark.parametrize("name, expected", [
    ("25_0_2_20170116174525125.jpg.chip.jpg", UtkLabel(25, 0, 2)),
    ("1_1_4_20161221193016140.jpg.chip.jpg", UtkLabel(1, 1, 4)),
    ("116_1_0_20170120134921760.jpg.chip.jpg", UtkLabel(116, 1, 0)),
    ("24_0_1_20170116220224657 .jpg.chip.jpg", UtkLabel(24, 0, 1)),  # stray space
    ("55_0_0_20170116232725357jpg.chip.jpg", UtkLabel(55, 0, 0)),  # missing dot
    ("dir/sub/30_1_3_20170109142408075.jpg.chip.jpg", UtkLabel(30, 1, 3)),
])
def test_parse_names(name, expected):
    assert parse_utk_name(name) == expected


@pytest.mark.parametrize("name", [
    "39_1_20170116174525125.jpg.chip.jpg",  # no race field
    "61_1_20170109142408075.jpg.chip.jpg",
    "200_0_1_20170116174525125.jpg.chip.jpg",  # impossible age
    "25_2_1_20170116174525125.jpg.chip.jpg",  # gender out of range
    "25_0_7_20170116174525125.jpg.chip.jpg",  # race out of range
    "holiday.jpg",
])
def test_names_without_labels(name):
    assert parse_utk_name(name) is None


def _frame(rows):
    frame = pd.DataFrame(rows, columns=["name", "age", "gender", "race", "sha256"])
    return frame.assign(age_lo=frame["age"], age_hi=frame["age"])


def test_dedupe_keeps_agreeing_copies_once_and_drops_conflicts():
    frame = _frame([("a", 20, 0, 1, "s1"), ("b", 20, 0, 1, "s1"), ("c", 30, 1, 2, "s2"),
                    ("d", 31, 1, 2, "s2"), ("e", 40, 0, 0, "s3")])
    kept = utk_data.dedupe(frame)
    assert sorted(kept["name"]) == ["a", "e"]


def test_split_is_fixed_by_content_and_never_splits_an_image():
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    frame = _frame([(f"n{i}", 20, 0, 0, s) for i, s in enumerate(shas)] + [("dup", 20, 0, 0, shas[0])])
    first = utk_data.assign_splits(frame)
    shuffled = utk_data.assign_splits(frame.sample(frac=1, random_state=3))
    assert first.set_index("name")["split"].to_dict() == shuffled.set_index("name")["split"].to_dict()
    assert first.groupby("sha256")["split"].nunique().max() == 1
    fractions = first["split"].value_counts(normalize=True)
    for split, expected in utk_data.SPLIT_FRACTIONS:
        assert abs(fractions[split] - expected) < 0.04


def test_rebalancing_oversamples_rare_ages_within_the_training_part_only():
    ages = [25] * 400 + [5] * 40 + [85] * 10
    train = _frame([(f"n{i}", a, 0, 0, f"{i:064x}") for i, a in enumerate(ages)])
    positions = utk_data.rebalance_ages(train, seed=0)
    assert positions.min() >= 0 and positions.max() < len(train)  # only rows of the training part
    assert set(range(len(train))) <= set(positions.tolist())  # every original row kept
    buckets = train["age"].iloc[positions].map(age_bucket).value_counts()
    assert buckets["20-29"] == 400  # the largest bucket is not touched
    assert buckets["3-9"] == 160  # 4x its size (capped)
    assert buckets["70+"] == 40
    assert np.array_equal(positions, utk_data.rebalance_ages(train, seed=0))  # seeded


def test_loader_reads_folders_and_counts_unusable_files(tiny_utk, tmp_path):
    import tarfile

    archive = tmp_path / "part.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for file in sorted(tiny_utk.iterdir())[:10]:
            tar.add(file, arcname=file.name)
    dataset = utk_data.load_utkface([tiny_utk, archive], 64, use_cache=False)
    assert dataset.images.shape[1:] == (64, 64, 3) and dataset.images.dtype == np.uint8
    assert len(dataset.frame) == len(dataset.images) >= 60
    assert len(utk_data.dedupe(dataset.frame)) == 60  # archive copies are byte-identical duplicates


def test_loader_rejects_unusable_data_paths(tmp_path):
    with pytest.raises(utk_data.DataError, match="no such file"):
        utk_data.load_utkface([tmp_path / "missing"], 64, use_cache=False)
    with pytest.raises(utk_data.DataError, match="no labelled UTKFace images"):
        utk_data.load_utkface([tmp_path], 64, use_cache=False)


def test_balancing_raises_rare_photo_cells_to_the_median_and_leaves_chips_alone():
    common = [("White", 0, 30)] * 40 + [("Black", 1, 30)] * 20 + [("Indian", 0, 30)] * 20
    rare = [("Black", 1, 70)] * 4  # older Black women: a fifth of the median cell
    rows = [{"race_group": g, "gender": s, "age_lo": a} for g, s, a in common + rare]
    rows += [{"race_group": None, "gender": 1, "age_lo": 70}] * 5  # UTKFace chips
    train = pd.DataFrame(rows)
    positions = np.arange(len(train))
    balanced = utk_data.balance_groups(train, positions, seed=0)
    picked = train.iloc[balanced]
    assert np.array_equal(balanced[:len(positions)], positions)  # every row still once, then the extra draws
    older_black = (picked["race_group"] == "Black") & (picked["age_lo"] == 70)
    assert older_black.sum() == 12  # 3 times its own 4: the median (20) is further than 3x
    assert (picked["race_group"] == "White").sum() == 40 and (picked["race_group"] == "Indian").sum() == 20
    assert picked["race_group"].isna().sum() == 5


def test_a_file_name_that_is_not_utf8_does_not_stop_the_cache_key(tmp_path):
    """A name from an old camera's disk (bytes that are not UTF-8) once made every command on the folder fail
    with "'utf-8' codec can't encode character"."""
    import os

    from face_analysis.data.utk import _cache_key

    os.mkdir(tmp_path / "chips")
    with open(os.path.join(os.fsencode(tmp_path / "chips"), b"25_0_0_2017011617452512\xff.jpg.chip.jpg"), "wb") as f:
        f.write(b"x")
    first = _cache_key([tmp_path / "chips"], 64)
    assert len(first) == 16 and first == _cache_key([tmp_path / "chips"], 64)
