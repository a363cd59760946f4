import json

import cv2
import numpy as np
import pandas as pd
import pytest

from face_analysis.data import prepare
from face_analysis.models import architectures as build_model
from face_analysis.models import facenet_backbone
from face_analysis.models import store as model_store
from face_analysis.labels import FACENET_STAGES, GENDERS, INPUT_SIZES, MAX_AGE, RACES

NORMAL_SIZE = INPUT_SIZES["normal"]


def _check_outputs(model, size):
    outputs = model.predict_on_batch(np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32"))
    assert outputs["age"].shape == (2, MAX_AGE + 1)
    assert outputs["gender"].shape == (2, len(GENDERS))
    assert outputs["race"].shape == (2, len(RACES))
    for key in ("age", "gender", "race"):
        assert np.allclose(outputs[key].sum(axis=1), 1.0, atol=1e-4)


def test_normal_architecture_shapes():
    model = build_model.build_normal_model()
    assert model.input.shape[1:] == (NORMAL_SIZE, NORMAL_SIZE, 3)
    _check_outputs(model, NORMAL_SIZE)


def test_facenet_architecture_shapes_and_frozen_stem():
    model = build_model.build_facenet_model()
    assert model.input.shape[1:] == (160, 160, 3)
    assert not model.get_layer(build_model.STEM_NAME).trainable
    assert model.get_layer(build_model.TAIL_NAME).trainable
    _check_outputs(model, 160)


def _scaled_astronaut_faces(astronaut_jpg) -> np.ndarray:
    """The astronaut's face and the whole photo at 160 px, scaled as FaceNet's input."""
    photo = cv2.cvtColor(cv2.imread(str(astronaut_jpg)), cv2.COLOR_BGR2RGB)
    faces = np.stack([cv2.resize(photo[40:240, 130:330], (160, 160)), cv2.resize(photo, (160, 160))])
    return (faces.astype(np.float32) - 127.5) / 128.0


def test_every_facenet_split_composes_to_the_whole_backbone(astronaut_jpg):
    """Frozen stem then fine-tuned tail, split at any stage, computes what the unsplit backbone computes."""
    scaled = _scaled_astronaut_faces(astronaut_jpg)
    whole = facenet_backbone.build_backbone_part().predict_on_batch(scaled)
    for stage in FACENET_STAGES:
        stem, tail, _ = build_model.build_facenet_parts(fine_tune_from=stage)
        split = tail.predict_on_batch(stem.predict_on_batch(scaled))
        assert split.shape == whole.shape
        assert np.abs(split - whole).max() < 1e-4, stage


def test_keras_rebuild_matches_the_frozen_facenet_graph(astronaut_jpg):
    """The Keras layers rebuilt from the .pb give the graph's own embeddings to within 1e-4."""
    scaled = _scaled_astronaut_faces(astronaut_jpg)
    keras_block8 = facenet_backbone.build_backbone_part().predict_on_batch(scaled)
    ours = facenet_backbone.embeddings_from_block8(np.asarray(keras_block8, np.float64))
    reference = facenet_backbone.reference_embeddings(scaled)
    assert reference.shape == (2, 512)
    assert np.abs(ours - reference).max() < 1e-4


def test_backbone_file_is_checked(monkeypatch, tmp_path):
    fake = tmp_path / facenet_backbone.GRAPH_FILE
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(facenet_backbone, "graph_path", lambda: fake)
    facenet_backbone.load_graph_def.cache_clear()
    try:
        with pytest.raises(facenet_backbone.BackboneError, match="sha256"):
            facenet_backbone.load_graph_def()
    finally:
        facenet_backbone.load_graph_def.cache_clear()


@pytest.fixture(scope="module")
def saved_normal(tmp_path_factory):
    model = build_model.build_normal_model()
    directory = tmp_path_factory.mktemp("models") / "normal_model"
    model_store.save_model(model, directory, {"model_type": "normal", "input_size": NORMAL_SIZE}, {"split.csv": b"x\n"})
    return model, directory


def test_the_split_is_saved_compressed_and_an_older_models_split_csv_still_read(tmp_path):
    split = pd.DataFrame({"sha256": ["0" * 64, "ab" * 32], "split": ["train", "test"]})
    files = prepare.split_files(split)
    assert list(files) == [prepare.SPLIT_FILE] and files == prepare.split_files(split)  # same bytes
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / prepare.SPLIT_FILE).write_bytes(files[prepare.SPLIT_FILE])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "split.csv").write_bytes(model_store.csv_bytes(split))
    for folder in ("new", "old"):
        assert prepare.read_split(tmp_path / folder).equals(split)
    with pytest.raises(model_store.ModelError, match="split.csv.gz: missing"):
        prepare.read_split(tmp_path)


def test_save_and_load_round_trip(saved_normal):
    model, directory = saved_normal
    loaded, info = model_store.load_model(directory, "normal")
    assert info["model_type"] == "normal"
    x = np.random.default_rng(1).uniform(0, 255, (3, NORMAL_SIZE, NORMAL_SIZE, 3)).astype("float32")
    expected, got = model.predict_on_batch(x), loaded.predict_on_batch(x)
    for key in expected:  # weights are stored as float16
        assert np.abs(expected[key] - got[key]).max() < 2e-2
    assert not any(p.name.startswith(".") for p in directory.parent.iterdir())  # no temporary folder left


def test_tampered_or_mismatched_models_are_refused(saved_normal, tmp_path):
    import shutil

    _, directory = saved_normal
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    with pytest.raises(model_store.ModelError, match="holds a 'normal' model"):
        model_store.load_model(copy, "facenet")
    weights = copy / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(model_store.ModelError, match="sha256 mismatch.*git checkout saved_model"):
        model_store.load_model(copy)
    with pytest.raises(model_store.ModelError, match="no saved model"):
        model_store.load_model(tmp_path / "nothing")
    shutil.rmtree(copy)
    shutil.copytree(directory, copy)
    info = json.loads((copy / "model.json").read_text())
    info["races"] = ["a", "b"]
    (copy / "model.json").write_text(json.dumps(info))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model.json"] = model_store.file_sha256(copy / "model.json")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(model_store.ModelError, match="races"):
        model_store.load_model(copy)


def test_interrupted_save_keeps_the_previous_model(saved_normal, monkeypatch):
    model, directory = saved_normal
    before = (directory / "weights.npz").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_store.np, "savez_compressed", disk_full)
    with pytest.raises(OSError, match="No space"):
        model_store.save_model(model, directory, {"model_type": "normal", "input_size": NORMAL_SIZE})
    assert (directory / "weights.npz").read_bytes() == before
    model_store.load_model(directory, "normal")
    assert not any(p.name.startswith(".") for p in directory.parent.iterdir())


def test_float32_export_agrees_with_keras(saved_normal, tiny_utk):
    """The float32 TFLite export compiled by OpenVINO gives the Keras model's probabilities (not only its
    classes: the tiny test model's are near ties, which rounding can flip), and its age within 0.5 year."""
    from face_analysis.data.prepare import prepare_data
    from face_analysis.labels import MAX_AGE
    from face_analysis.models import compiled as lite_model

    model, directory = saved_normal
    lite, info = lite_model.load_lite_model(directory, "normal", precision="float32")
    assert lite_model.tflite_path(directory).is_file()
    keras_model, _ = model_store.load_model(directory, "normal")
    images = prepare_data([tiny_utk], NORMAL_SIZE, use_cache=False).images.astype("float32")
    expected, got = keras_model.predict_on_batch(images), lite(images)
    ages = np.arange(MAX_AGE + 1)
    assert np.abs(expected["age"] @ ages - got["age"] @ ages).max() < 0.5
    for key in ("gender", "race"):
        assert np.abs(expected[key] - got[key]).max() < 1e-3, key


def test_run_tta_averages_each_face_with_its_mirror_image(saved_normal):
    """run --tta: the mean of the plain outputs on each crop and on its mirror image; without it the
    plain outputs."""
    from face_analysis.analyzer import FaceAnalyzer

    _, directory = saved_normal
    crops = np.random.default_rng(1).integers(0, 256, (5, NORMAL_SIZE, NORMAL_SIZE, 3), dtype=np.uint8)
    plain_analyzer = FaceAnalyzer(model_path=directory, detector="none", precision="float32")
    plain, mirrored = plain_analyzer.predict_crops(crops), plain_analyzer.predict_crops(crops[:, :, ::-1])
    averaged = FaceAnalyzer(model_path=directory, detector="none", tta=True,
                            precision="float32").predict_crops(crops, batch_size=2)
    for key in ("age", "gender", "race"):
        assert not np.allclose(plain[key], mirrored[key], atol=1e-6)
        np.testing.assert_allclose(averaged[key], (plain[key] + mirrored[key]) / 2, rtol=1e-5, atol=1e-6)


def test_a_model_without_int8_files_names_the_fix(saved_normal):
    from face_analysis.analyzer import FaceAnalyzer

    _, directory = saved_normal
    with pytest.raises(model_store.ModelError, match="quantize"):
        FaceAnalyzer(model_path=directory)
