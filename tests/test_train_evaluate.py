"""Smoke runs of `train` and `evaluate` for both model types on the tiny generated data set."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from face_analysis.data import prepare
from face_analysis.detection import crop as face_crop
from face_analysis.io import images as image_io
from face_analysis.models import store as model_store
from face_analysis.analyzer import FaceAnalyzer


@pytest.fixture(scope="module", params=["normal", "facenet"])
def trained(request, tiny_utk, tmp_path_factory):
    model_type = request.param
    root = tmp_path_factory.mktemp(f"train_{model_type}")
    model_dir, stats = root / "model", root / "statistics"
    code = run_cli("train", "--model_type", model_type, "--data_path", tiny_utk, "--epochs", 1, "--head_epochs", 1,
                   "--batch_size", 16, "--model_path", model_dir, "--stats_dir", stats, "--eval")
    assert code == 0
    return model_type, model_dir, stats


def test_train_saves_a_loadable_model_with_its_split(trained):
    model_type, model_dir, _ = trained
    model, info = model_store.load_model(model_dir, model_type)
    assert info["model_type"] == model_type
    split = prepare.read_split(model_dir)
    assert len(split) == 60 and set(split["split"]) <= {"train", "val", "test"}
    assert list(split.columns) == ["sha256", "split"]
    assert split.groupby("sha256")["split"].nunique().max() == 1
    history = pd.read_csv(model_dir / "history.csv")
    assert "val_loss" in history and len(history) >= 1
    # train stored the calibration `report` needs: its validation part's predictions, in the manifest
    from face_analysis.reporting import load_calibration

    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["calibration.npz"] == model_store.file_sha256(model_dir / "calibration.npz")
    calibration = load_calibration(model_dir)
    assert calibration.model_type == model_type and len(calibration) == (split["split"] == "val").sum()
    if model_type == "facenet":  # only the stages from the split on are stored; the frozen ones are rebuilt
        assert info["fine_tune_from"] == "mixed_7a"
        with np.load(model_dir / "weights.npz") as weights:
            stored = set(weights.files)
        assert any("Block8" in name for name in stored) and any("Mixed_7a" in name for name in stored)
        assert not any("Repeat_1" in name or "Mixed_6a" in name for name in stored)


def test_train_quantizes_to_int8_files_that_answer_as_float32(trained, tiny_utk):
    """train saves the int8 files in the model's manifest; on the training images their probabilities are
    close to the float32 model's."""
    from face_analysis.data.prepare import prepare_data
    from face_analysis.models import compiled as lite_model

    model_type, model_dir, _ = trained
    manifest = json.loads((model_dir / model_store.MANIFEST).read_text())
    assert {lite_model.INT8_FILE, lite_model.INT8_WEIGHTS} <= set(manifest)
    info = model_store.read_model_info(model_dir)
    data = prepare_data([tiny_utk], info["input_size"], use_cache=False)
    images = data.images[data.part("train")].astype(np.float32)
    float32 = lite_model.load_lite_model(model_dir, precision="float32")[0](images)
    int8 = lite_model.load_lite_model(model_dir, precision="int8")[0](images)
    for key in ("age", "gender", "race"):  # one epoch leaves the model unsure: compare probabilities, not classes
        assert np.abs(float32[key] - int8[key]).sum(axis=1).mean() < 0.1  # L1 distance per image
    assert not np.array_equal(float32["age"], int8["age"])  # a different program, not the float one again


def test_train_writes_data_distributions_before_and_after_rebalancing(trained):
    _, _, stats = trained
    raw = pd.read_csv(stats / "data_stats" / "raw_data_stats" / "counts.csv")
    adjusted = pd.read_csv(stats / "data_stats" / "adjusted_data_stats" / "counts.csv")
    assert raw.loc[raw["label"] == "age", "images"].sum() == 60
    assert adjusted.loc[adjusted["label"] == "age", "images"].sum() >= raw.loc[raw["label"] == "race", "images"].sum() * 0.5
    for folder in ("raw_data_stats", "adjusted_data_stats"):
        assert (stats / "data_stats" / folder / "distributions.png").stat().st_size > 1000


def test_eval_writes_figures_and_plots(trained):
    model_type, _, stats = trained
    out = stats / "model_metrics" / f"{model_type}_model_stats"
    metrics = json.loads((out / "metrics.json").read_text())
    test_rows = pd.read_csv(out / "predictions.csv")
    assert metrics["images"] == len(test_rows) > 0
    assert 0 <= metrics["gender_accuracy"] <= 1 and metrics["age_mae"] >= 0
    assert [row["bucket"] for row in metrics["age_mae_by_bucket"]][-1] == "70+"
    assert {row["race"] for row in metrics["by_race"]} <= {"white", "black", "asian", "indian", "others"}
    for name in ("training_curves.png", "gender_confusion.png", "race_confusion.png", "age_predicted_vs_true.png",
                 "age_mae_by_bucket.png", "prediction_grid.png", "by_race.csv", "age_mae_by_bucket.csv", "report.md"):
        assert (out / name).is_file(), name
    assert {row["race"] for row in metrics["by_race_age_10_plus"]} <= {row["race"] for row in metrics["by_race"]}
    assert sum(row["images"] for row in metrics["by_race_age_10_plus"]) == (test_rows["age"] >= 10).sum()
    summary = (stats / "README.md").read_text()
    assert f"| {model_type} | {metrics['images']} | {metrics['age_mae']:.2f} |" in summary
    # the probabilities run's CSV has, which benchmarks/audit.py reads beside the true labels
    from face_analysis.reporting.attributes import CSV_PROBABILITY_COLUMNS
    from face_analysis.reporting.calibration import labelled_arrays

    assert set(CSV_PROBABILITY_COLUMNS) <= set(test_rows.columns)
    probs, labels = labelled_arrays(test_rows)
    assert set(probs) == {"race", "gender", "age_group"} and (labels["age_group"] >= 0).all()
    np.testing.assert_allclose(probs["age_group"].sum(1), 1, atol=5e-3)


def test_evaluate_command_on_all_images(trained, tiny_utk, tmp_path, capsys):
    model_type, model_dir, _ = trained
    target = tmp_path / "metrics.json"
    code = run_cli("evaluate", "--model_type", model_type, "--model_path", model_dir, "--data_path", tiny_utk,
                   "--split", "all", "--json", target, "--stats_dir", tmp_path / "stats")
    assert code == 0
    metrics = json.loads(target.read_text())
    assert metrics["images"] == 60 and metrics["split"] == "all"
    assert sum(row["images"] for row in metrics["by_gender"]) == 60


def test_train_refuses_unusable_data(tmp_path, capsys):
    assert run_cli("train", "--model_type", "normal", "--data_path", tmp_path / "missing",
                   "--model_path", tmp_path / "m") == 1
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_soft_targets_mix_teacher_and_labels():

    from face_analysis.training.recipes import soft_targets

    frame = pd.DataFrame({"age_lo": [30, 3], "age_hi": [30, 9], "gender": [1, 0], "race": [2, 4]})
    plain = soft_targets(frame)
    assert np.allclose(plain["age"].sum(axis=1), 1) and plain["age"][0].argmax() == 30
    assert np.allclose(plain["age"][1, 3:10], 1 / 7) and plain["age"][1, :3].sum() == plain["age"][1, 10:].sum() == 0
    assert plain["race"].tolist()[1] == [0, 0, 0, 0, 1]
    teacher = {"age": np.full((2, 117), 1 / 117, np.float32), "gender": np.array([[0.2, 0.8], [0.6, 0.4]]),
               "race": np.full((2, 5), 0.2)}
    mixed = soft_targets(frame, teacher, weight=0.5)
    assert np.allclose(mixed["gender"][0], [0.1, 0.9]) and np.allclose(mixed["race"][1], [0.1, 0.1, 0.1, 0.1, 0.6])
    assert np.allclose(mixed["age"].sum(axis=1), 1)


def test_normal_model_distilled_from_a_facenet_teacher(trained, tiny_utk, tmp_path):
    model_type, model_dir, _ = trained
    if model_type != "facenet":
        pytest.skip("the teacher is the facenet model")
    student = tmp_path / "student"
    assert run_cli("train", "--model_type", "normal", "--data_path", tiny_utk, "--epochs", 1, "--batch_size", 16,
                   "--distill_from", model_dir, "--distill_weight", 0.8, "--model_path", student,
                   "--stats_dir", tmp_path / "stats") == 0
    _, info = model_store.load_model(student, "normal")
    assert info["distilled_from"] == str(model_dir) and info["distill_weight"] == 0.8


def test_whole_network_fine_tuning_from_a_saved_model_changes_the_frozen_stages(trained, tiny_utk, tmp_path):
    """--init_from with --whole_epochs: the saved model's weights, then every FaceNet stage learns (the first
    convolution too, frozen in the phases on cached maps); the result keeps the architecture, crop and records
    how it was made."""
    model_type, model_dir, _ = trained
    if model_type != "facenet":
        pytest.skip("whole-network fine-tuning is facenet's")
    tuned = tmp_path / "whole"
    assert run_cli("train", "--data_path", tiny_utk, "--init_from", model_dir, "--whole_epochs", 1,
                   "--batch_size", 16, "--model_path", tuned, "--stats_dir", tmp_path / "stats") == 0
    before, _ = model_store.load_model(model_dir, "facenet")
    after, info = model_store.load_model(tuned, "facenet")
    assert info["init_from"] == str(model_dir) and info["whole_epochs"] == 1.0
    assert info["fine_tune_from"] == "mixed_7a" and pd.read_csv(tuned / "history.csv")["phase"].tolist() == ["whole"]
    stem_before, stem_after = (m.get_layer("facenet_stem") for m in (before, after))
    conv = next(layer.name for layer in stem_before.layers if layer.weights)
    assert not np.array_equal(stem_before.get_layer(conv).get_weights()[0], stem_after.get_layer(conv).get_weights()[0])


def test_init_from_is_refused_without_whole_epochs_and_for_the_normal_model(trained, tmp_path, capsys):
    _, model_dir, _ = trained
    assert run_cli("train", "--init_from", model_dir, "--model_path", tmp_path / "m") == 2
    assert "--init_from needs --whole_epochs" in capsys.readouterr().err
    assert run_cli("train", "--model_type", "normal", "--whole_epochs", 1, "--model_path", tmp_path / "m") == 2
    assert "are for --model_type facenet" in capsys.readouterr().err


def test_age_loss_rewards_mass_inside_an_age_group_and_near_an_exact_age():
    from face_analysis.models import architectures as build_model

    inside, outside = np.zeros((1, 117), np.float32), np.zeros((1, 117), np.float32)
    inside[0, 25], outside[0, 45] = 1.0, 1.0
    group, exact = np.array([[20, 29]], np.float32), np.array([[25, 25]], np.float32)
    smooth = lambda p: (p + 1e-3) / (p + 1e-3).sum()  # noqa: E731
    loss = lambda y, p: float(np.asarray(build_model.age_loss(y, smooth(p)))[0])  # noqa: E731
    assert loss(group, inside) < loss(group, outside)
    assert loss(exact, inside) < loss(exact, outside)
    assert float(np.asarray(build_model.years_mae(group, inside))[0]) == 0.0
    assert abs(float(np.asarray(build_model.years_mae(group, outside))[0]) - 16) < 1e-4
    assert abs(float(np.asarray(build_model.years_mae(exact, outside))[0]) - 20) < 1e-4


def test_train_on_utkface_and_a_labelled_photo_set_together(tiny_utk, tmp_path):
    """Both kinds of data in one run: photos go through the detector, each source is split on its own, and the
    model records its sources."""
    from test_labelled_sets import make_photo_set

    photos = make_photo_set(tmp_path / "photoset", copies=20)
    model_dir = tmp_path / "mixed"
    assert run_cli("train", "--model_type", "normal", "--data_path", tiny_utk, photos, "--epochs", 1,
                   "--batch_size", 16, "--model_path", model_dir, "--stats_dir", tmp_path / "stats",
                   "--crop_widen", 1.5) == 0
    _, info = model_store.load_model(model_dir, "normal")
    assert set(info["sources"]) == {"utkface", "photoset"}
    assert sum(info["sources"]["photoset"].values()) == 20
    # run crops faces as the model learned them: the detector's chip crop widened by the saved factor
    assert info["crop_widen"] == 1.5
    analyzer = FaceAnalyzer(model_path=model_dir)
    image = image_io.load_image(next(p for p in photos.iterdir() if p.suffix == ".jpg"))
    box = analyzer.detector.detect(image)[0].box
    chip = analyzer.detector.chip_crop
    size = info["input_size"]
    wide = face_crop.crop_face(image, box, size, 1.5 * chip["scale"], chip["shift_y"])
    assert np.array_equal(analyzer.crops(image, [box])[0], wide)
    assert not np.array_equal(wide, face_crop.crop_face(image, box, size, chip["scale"], chip["shift_y"]))



def test_quantize_remakes_the_int8_files_of_a_saved_model(trained, tiny_utk, tmp_path):
    """quantize rewrites the int8 files and the manifest of a copy of the model; the copy still loads in both
    precisions, its float32 export already in the cache."""
    from face_analysis.models import compiled as lite_model

    model_type, model_dir, _ = trained
    if model_type != "normal":
        pytest.skip("one model type is enough for the command")
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    before = json.loads((copy / model_store.MANIFEST).read_text())
    assert run_cli("quantize", "--model_path", copy, "--data_path", tiny_utk, "--force") == 0  # dozens of images, not 556
    after = json.loads((copy / model_store.MANIFEST).read_text())
    assert set(after) == set(before) and after["weights.npz"] == before["weights.npz"]
    assert lite_model.tflite_path(copy).is_file()
    for precision in ("int8", "float32"):
        assert lite_model.load_lite_model(copy, precision=precision)[1]["model_type"] == "normal"
    assert not list((lite_model.tflite_path(copy).parent).glob("export-*"))
