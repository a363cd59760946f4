"""A facenet model's part for small faces (models.small_faces, `quantize --small_faces_from`): attached from
another model with the same stem, it answers for the faces under its size and leaves the others alone."""
import json
import shutil

import numpy as np
import pytest
from skimage import data

from conftest import REPO_ROOT, run_cli
from face_analysis.analyzer import FaceAnalyzer
from face_analysis.labels import GENDERS, MAX_AGE, RACES
from face_analysis.models import compiled, small_faces
from face_analysis.models import store as model_store

SHIPPED = REPO_ROOT / "saved_model" / "facenet_model"


@pytest.fixture()
def two_copies(tmp_path):
    """Two copies of the shipped facenet model: the one completed, and the one whose part is taken."""
    return shutil.copytree(SHIPPED, tmp_path / "model"), shutil.copytree(SHIPPED, tmp_path / "small")


def uniform_part(path) -> dict[str, bytes]:
    """A stand-in small-face part (stem maps in, every class equally likely out), as the files attach writes."""
    import openvino
    import openvino.opset13 as ops

    maps = ops.parameter([-1, 896, 8, 8], np.float32, name="stem_maps")
    zero = ops.multiply(ops.reduce_mean(maps, np.array([1, 2, 3]), keep_dims=True), np.float32(0))  # (N, 1, 1, 1)
    flat = ops.reshape(zero, np.array([-1, 1], np.int64), special_zero=False)
    outputs = [ops.softmax(ops.add(flat, np.zeros((1, n), np.float32)), 1) for n in (MAX_AGE + 1, len(GENDERS), len(RACES))]
    openvino.save_model(openvino.Model(outputs, [maps]), str(path / compiled.SMALL_FACES_FILE))
    return {name: (path / name).read_bytes() for name in (compiled.SMALL_FACES_FILE, compiled.SMALL_FACES_WEIGHTS)}


def test_a_part_answers_for_the_faces_under_its_size_only(two_copies, tmp_path):
    model, small = two_copies
    plain = FaceAnalyzer("facenet", model_path=SHIPPED, threads=1).analyze(data.astronaut())[0]
    small_faces.attach(model, small, below=40)
    files = uniform_part(tmp_path)
    info = json.loads((model / "model.json").read_text())
    for below, expect_uniform in ((40, False), (1000, True)):  # the astronaut's face is about 120 px
        info["small_face_part"]["below"] = below
        model_store.add_files(model, {**files, "model.json": json.dumps(info).encode()})
        face = FaceAnalyzer("facenet", model_path=model, threads=1).analyze(data.astronaut())[0]
        if expect_uniform:
            assert face.gender_probability == pytest.approx(0.5, abs=1e-3)
            assert all(p == pytest.approx(1 / len(RACES), abs=1e-3) for p in face.race_probabilities.values())
        else:
            assert (face.gender, face.race) == (plain.gender, plain.race) and face.age == pytest.approx(plain.age, abs=0.3)
        assert face.box == plain.box


def test_a_part_taken_from_the_same_model_gives_its_answers(two_copies, capsys):
    model, small = two_copies
    assert run_cli("quantize", "--model_path", model, "--small_faces_from", small, "--small_faces_below", 1000) == 0
    assert "for faces under 1000 px" in capsys.readouterr().err
    info = json.loads((model / "model.json").read_text())
    assert info["small_face_part"]["below"] == 1000 and (model / compiled.SMALL_FACES_FILE).is_file()
    assert compiled.SMALL_FACES_WEIGHTS in json.loads((model / model_store.MANIFEST).read_text())
    plain = FaceAnalyzer("facenet", model_path=SHIPPED, threads=1).analyze(data.astronaut())[0]
    routed = FaceAnalyzer("facenet", model_path=model, threads=1, tta=True).analyze(data.astronaut())[0]
    mirrored = FaceAnalyzer("facenet", model_path=SHIPPED, threads=1, tta=True).analyze(data.astronaut())[0]
    assert (routed.gender, routed.race) == (plain.gender, plain.race) == (mirrored.gender, mirrored.race)
    assert routed.age == pytest.approx(mirrored.age, abs=0.3)


def test_attaching_is_refused_in_one_line_where_the_stems_differ(two_copies, capsys):
    model, _ = two_copies
    before = (model / model_store.MANIFEST).read_text()
    normal = REPO_ROOT / "saved_model" / "normal_model"
    assert run_cli("quantize", "--model_path", model, "--small_faces_from", normal) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "model_type" in error and "\n" not in error
    assert (model / model_store.MANIFEST).read_text() == before  # the model left as it was
    assert run_cli("quantize", "--model_path", model) == 2
    assert "--data_path" in capsys.readouterr().err
