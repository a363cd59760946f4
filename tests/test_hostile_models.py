"""`calibrate`, `quantize` and `evaluate` against a user who wants to break them: too little data, read-only and
linked model folders, killed and interrupted runs, labelled sets whose rows cannot be used, list files of
the wrong type. Shipped models are copied into tmp_path before anything may change them."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, run_cli
from face_analysis.data import labelled as labelled_sets
from face_analysis.data import prepare
from face_analysis.errors import DataError, UsageError
from face_analysis.models import compiled as lite_model
from face_analysis.models import store as model_store
from face_analysis.reporting.calibration import FILE_NAME, MIN_FACES, load_calibration
from test_labelled_sets import make_photo_set


def _model_copy(tmp_path, name="model", model_type="normal"):
    folder = tmp_path / name
    shutil.copytree(REPO_ROOT / "saved_model" / f"{model_type}_model", folder)
    return folder


def _files(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _hidden_beside(folder) -> list[str]:
    return sorted(path.name for path in folder.parent.iterdir() if path.name.startswith("."))


def _run_unprivileged(*args) -> subprocess.CompletedProcess:
    """The command line in a new process that file permissions hold for (root: without the capabilities that
    override them, as a user's process)."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: file permissions cannot hold for this process")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    return subprocess.run([*prefix, sys.executable, "-m", "face_analysis", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


# --- calibrate: a minimum of faces, never a silent replacement ---

def test_calibrate_refuses_too_few_faces_and_keeps_the_calibration(tmp_path, tiny_utk, capsys):
    model = _model_copy(tmp_path)
    before, shipped = _files(model), len(load_calibration(model))
    assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {model}: only 60 held-out face(s)") and f"needs {MIN_FACES}" in error
    assert f"calibration of {shipped:,} faces is kept" in error and "--force" in error
    assert _files(model) == before
    assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk, "--force") == 0
    said = capsys.readouterr().err
    assert f"replaced the earlier calibration of {shipped:,} faces" in said and f"fewer than the {MIN_FACES}" in said
    assert len(load_calibration(model)) == 60
    model_store.read_model_info(model)


def test_calibrate_help_names_the_minimum(capsys):
    with pytest.raises(SystemExit):
        run_cli("calibrate", "--help")
    assert f"{MIN_FACES} labelled faces" in " ".join(capsys.readouterr().out.split())


def test_a_damaged_calibration_removed_is_said(tmp_path, tiny_utk, capsys):
    model = _model_copy(tmp_path)
    with open(model / FILE_NAME, "ab") as file:
        file.write(b"\0")
    assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk) == 1
    err = capsys.readouterr().err
    assert f"removed {model / FILE_NAME} from the model: not as its manifest records it" in err
    assert "it has no calibration" in err.splitlines()[-1]
    model_store.read_model_info(model)  # the model loads again


def test_calibrate_on_photos_without_faces_says_so(tmp_path, capsys):
    import cv2

    folder = tmp_path / "blank"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.full((100, 100, 3), 40 * i, np.uint8))
    (folder / "labels.csv").write_text("file,age,gender,race\n" + "".join(f"{i}.jpg,20-29,Male,White\n"
                                                                      for i in range(3)))
    model = _model_copy(tmp_path)
    before = _files(model)
    assert run_cli("calibrate", "--model_path", model, "--data_path", folder, "--force") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: no face found in any of the 3 held-out photo(s): nothing to calibrate with")
    assert _files(model) == before


def test_model_path_that_is_the_data_is_refused(tiny_utk, tmp_path, capsys):
    for model in (tiny_utk, tiny_utk.parent):
        assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk) == 2
        assert f"--model_path {model}: is or holds the data {tiny_utk}" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert run_cli("calibrate", "--model_path", tmp_path / "file", "--data_path", tiny_utk) == 1
    assert "not a folder" in capsys.readouterr().err


def test_a_link_to_a_model_folder_stays_a_link(tmp_path, tiny_utk):
    model = _model_copy(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(model, target_is_directory=True)
    assert run_cli("calibrate", "--model_path", link, "--data_path", tiny_utk, "--force") == 0
    assert link.is_symlink() and len(load_calibration(model)) == 60
    assert _hidden_beside(model) == []


# --- the model folder: read-only, killed runs, an interrupted swap ---

@pytest.mark.parametrize("command", ["calibrate", "quantize"])
def test_a_read_only_model_folder_is_refused_in_one_line_and_nothing_is_left(tmp_path, tiny_utk, command):
    model = _model_copy(tmp_path / "models")
    before = _files(model)
    for path in (model, *model.iterdir()):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        done = _run_unprivileged(command, "--model_path", model, "--data_path", tiny_utk)
    finally:
        model.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (f"error: {model}: not writable (permission denied); the model is left as it is: "
                                   "make it writable or work on a copy")
    assert _hidden_beside(model) == [] and _files(model) == before


def test_leftovers_of_killed_runs_are_removed_those_of_running_ones_kept(tmp_path, tiny_utk):
    model = _model_copy(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (f".model.tmp-{dead.pid}", f".model.old-{dead.pid}", f".model.tmp-{os.getppid()}"):
        shutil.copytree(model, tmp_path / name)
        (tmp_path / name).chmod(0o555)  # a copy of a read-only model, as earlier versions left them
    assert run_cli("calibrate", "--model_path", model, "--data_path", tiny_utk) == 1  # refused: too few faces
    assert _hidden_beside(model) == [f".model.tmp-{os.getppid()}"]
    (tmp_path / f".model.tmp-{os.getppid()}").chmod(0o755)


def test_an_interrupted_swap_puts_the_model_folder_back(tmp_path, monkeypatch):
    model = _model_copy(tmp_path)
    before = _files(model)
    replace, calls = os.replace, []

    def interrupted(source, target):
        calls.append(target)
        if len(calls) == 2:  # between the two renames: the folder is away, its new copy not yet in place
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(model_store.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model_store.add_files(model, {"extra.txt": b"x"})
    assert _files(model) == before and _hidden_beside(model) == []


# --- quantize: the documented counts, held-out agreement images ---

def test_quantization_samples_are_disjoint_and_shared_out_in_proportion():
    from face_analysis.training.trainer import quantization_images

    images = np.arange(40)[:, None]
    calibration, agreement = quantization_images(images, np.arange(21))
    assert len(calibration) and len(agreement) and not set(calibration.ravel()) & set(agreement.ravel())
    for rows in (2, 21, lite_model.QUANTIZE_IMAGES, 5000):
        calibration, agreement = lite_model.quantization_samples(np.arange(rows))
        assert not set(calibration) & set(agreement) and len(agreement) >= 1
        assert len(calibration) == min(lite_model.CALIBRATION_IMAGES, max(1, rows * 256 // 556))
        assert len(agreement) == min(lite_model.AGREEMENT_IMAGES, rows - len(calibration))


def test_quantize_refuses_fewer_images_than_documented(tmp_path, tiny_utk, capsys):
    """The shipped model's split does not hold the generated chips; a model whose split does (made here from
    the shipped one's files) has 42 of them in its training part."""
    from face_analysis.data.prepare import prepare_data

    model = _model_copy(tmp_path)
    info = model_store.read_model_info(model)
    frame = prepare_data([tiny_utk], info["input_size"], use_cache=False).frame
    split = frame[["sha256"]].assign(split=["val" if i % 10 == 0 else "train" for i in range(len(frame))])
    model_store.add_files(model, prepare.split_files(split))
    before = _files(model)
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(tiny_utk / frame.loc[split["split"] == "train", "name"].iloc[0], one)
    for extra in ((), ("--force",)):
        assert run_cli("quantize", "--model_path", model, "--data_path", one if extra else tiny_utk, *extra) == 1
        error = capsys.readouterr().err.strip().splitlines()[-1]
        found = (split["split"] == "train").sum() if not extra else 1
        assert f"{model}: {found} image(s) of its training part found" in error
        assert f"quantize needs {lite_model.QUANTIZE_IMAGES}" in error and "left as they are" in error
        assert ("--force" in error) == (not extra)  # one image cannot be checked on another: not even forced
    assert _files(model) == before


# --- evaluate: labelled sets whose rows cannot be used ---

def _set(tmp_path, csv_bytes: bytes, name="faces"):
    folder = make_photo_set(tmp_path / name, 2)
    (folder / "labels.csv").write_bytes(csv_bytes)
    return folder


def test_evaluate_a_set_of_unusable_rows_names_the_file_and_the_reasons(tmp_path, capsys):
    folder = _set(tmp_path, b"file,age,gender,race\n\0\0\0,20-29,Male,White\n\0x.jpg,30-39,Female,Black\n"
                            b"1.jpg,,Male,White\n")
    assert run_cli("evaluate", "--model_type", "normal", "--data_path", folder, "--split", "all",
                   "--stats_dir", tmp_path / "stats") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {folder / 'labels.csv'}: no usable row (3 row(s) skipped: 2 NUL byte, 1 blank field)")


@pytest.mark.parametrize("content, message", [
    (b"file,age,gender,race\n", "no usable row (only its header)"),
    (b"file,age,gender,race\n1.jpg,200-300,Male,White\n1.jpg,20-29,X,White\n2.jpg,20-29,Male,Martian\n",
     "no usable row (3 row(s) skipped: 3 unknown label)"),
    (b"file,age,gender,race\n9.jpg,20-29,Male,White\n", "no usable labelled image (1 row(s) skipped: 1 no such image)"),
    (b"file,age,gender,race\n1.jpg,20-29,Male,W" + b"x" * 200_000 + b"\n", "not a readable CSV (field larger"),
])
def test_labelled_sets_that_cannot_be_used_are_named_in_one_line(tmp_path, content, message):
    folder = _set(tmp_path, content)
    with pytest.raises(DataError) as refused:
        labelled_sets.load_labelled_set(folder)
    assert str(refused.value).startswith(f"{folder / 'labels.csv'}: {message}")


@pytest.mark.parametrize("content", [b"", b"file;age;gender;race\n1.jpg;20-29;Male;White\n"])
def test_a_csv_given_that_is_not_a_labelled_set_is_named(tmp_path, content):
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(DataError, match=r"labels.csv: not a labelled set \(its first row"):
        labelled_sets.split_sources([tmp_path / "labels.csv"])


def test_repeated_conflicting_and_not_utf8_rows_are_counted_and_a_bom_is_read(tmp_path):
    folder = _set(tmp_path, b"\xef\xbb\xbffile,age,gender,race\n1.jpg,20-29,Male,White\n1.jpg,20-29,Male,White\n"
                            b"2.jpg,20-29,Male,White\n2.jpg,60-69,Female,Black\n\xff\xfe.jpg,20-29,Male,White\n")
    labelled = labelled_sets.load_labelled_set(folder)
    assert list(labelled.frame["name"]) == ["1.jpg"]
    assert labelled.skipped == {"repeated row": 1, "conflicting labels": 2, "not UTF-8": 1}


def test_a_set_given_twice_is_read_once(tmp_path):
    folder = make_photo_set(tmp_path / "faces", 2)
    assert labelled_sets.split_sources([folder, folder / "labels.csv", folder]) == ([], [folder])


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_unreadable_data_says_permission_denied(tmp_path, tiny_utk, command):
    data = tmp_path / "data"
    shutil.copytree(tiny_utk, data / "utk")
    model = _model_copy(tmp_path)
    extra = ("--stats_dir", tmp_path / "stats") if command == "evaluate" else ()
    for locked in (data / "utk", data):  # a folder inside the data, then the data itself
        locked.chmod(0)
        try:
            done = _run_unprivileged(command, "--model_path", model, "--data_path", data, *extra)
        finally:
            locked.chmod(0o755)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines()[-1] == f"error: {locked}: permission denied (the data must be readable)"


# --- run --img_list: a Parquet column that is not text ---

def test_an_img_list_parquet_column_of_another_type_is_named(tmp_path, astronaut_jpg):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from face_analysis.io.lists import read_image_list

    for name, column in (("lists", pa.array([[str(astronaut_jpg)]])), ("numbers", pa.array([1, 2]))):
        pq.write_table(pa.table({"path": column}), tmp_path / f"{name}.parquet")
        with pytest.raises(UsageError, match=rf"{name}.parquet: .*column 'path' is of type .*, not a string"):
            read_image_list(tmp_path / f"{name}.parquet")
    pq.write_table(pa.table({"path": pa.array([str(astronaut_jpg)]).dictionary_encode()}), tmp_path / "d.parquet")
    assert read_image_list(tmp_path / "d.parquet") == [str(astronaut_jpg)]
