"""Fast inference without TensorFlow: saved models exported to TFLite and run by the LiteRT interpreter.

A TFLite file is derived from a saved model (it is never committed): `train` writes it at the end, and
the first `run` of a model without one builds it once (that needs TensorFlow) into .cache/tflite/."""
from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from face_analysis import model_store, paths

OUTPUTS = ("age", "gender", "race")
BUILD_SECONDS = {"facenet": 30, "normal": 10}  # a TFLite build on 2 CPU cores, TensorFlow's import included
log = logging.getLogger(__name__)


EXPORT_VERSION = b"plain-2"  # changes whenever the export does (plain-2: no mirror averaging inside)


def tflite_path(directory: Path) -> Path:
    """Where the TFLite export of a saved model lives: named after a hash of the model's manifest and of
    EXPORT_VERSION, so changed weights or a changed export each get a new file."""
    manifest = (Path(directory) / model_store.MANIFEST).read_bytes()
    digest = hashlib.sha256(manifest + EXPORT_VERSION).hexdigest()[:16]
    return paths.CACHE_DIR / "tflite" / f"{digest}.tflite"


def export_tflite(model, path: Path) -> Path:
    """Convert a trained Keras model to TFLite (float32), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.tflite")
    with quiet_stderr():
        model.export(str(tmp), format="litert", verbose=False)
    os.replace(tmp, path)
    return path


@contextmanager
def quiet_stderr():
    """Silence what native libraries print straight to stderr (TensorFlow and LiteRT start-up notes)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class LiteModel:
    """A TFLite model behind the same call as a Keras one: uint8-range images in, softmax dict out."""

    def __init__(self, path: Path, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        with quiet_stderr():
            self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads or available_cores())
            signature = self.interpreter.get_signature_list()["serving_default"]
            self.input_name = signature["inputs"][0]
            self.runner = self.interpreter.get_signature_runner()
            shape = self.interpreter.get_input_details()[0]["shape_signature"]
            self.input_size = int(shape[1])
            self(np.zeros((1, self.input_size, self.input_size, 3), np.float32))  # warm-up
        if set(signature["outputs"]) != set(OUTPUTS):
            raise model_store.ModelError(f"{path}: outputs {signature['outputs']} are not {list(OUTPUTS)}")

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.runner(**{self.input_name: np.asarray(images, np.float32)})
        return {name: np.asarray(outputs[name]) for name in OUTPUTS}


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset` narrow),
    not every core of the machine: inference threads beyond them only wait on each other."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_tflite(model, directory: Path) -> Path:
    """Export a saved model's TFLite file into the cache with its sha256 beside it (what `run` checks)."""
    path = export_tflite(model, tflite_path(directory))
    tmp = _digest_path(path).with_name(f"{_digest_path(path).name}.tmp{os.getpid()}")
    tmp.write_text(model_store.file_sha256(path) + "\n")
    os.replace(tmp, _digest_path(path))
    return path


def _cached_tflite_ok(path: Path) -> bool:
    """Whether a cached TFLite file is there and still has the sha256 written beside it when it was built."""
    try:
        return _digest_path(path).read_text().strip() == model_store.file_sha256(path)
    except OSError:
        return False


def load_lite_model(directory: Path, model_type: str | None = None,
                    num_threads: int | None = None) -> tuple[LiteModel, dict]:
    """(LiteModel, info) of a saved model, after its manifest check; builds the TFLite file when it is missing
    or does not match the sha256 recorded when it was built."""
    info = model_store.read_model_info(directory, model_type)
    path = tflite_path(directory)
    if not _cached_tflite_ok(path):
        seconds = BUILD_SECONDS.get(info["model_type"], 30)
        if path.is_file():
            log.warning("the cached TFLite file of the %s model does not match its recorded sha256: rebuilding it "
                        "(about %d s) ...", info["model_type"], seconds)
        else:
            log.warning("first run of the %s model: building its TFLite file once (about %d s, up to 2 GB of "
                        "memory) ...", info["model_type"], seconds)
        with quiet_stderr():
            model, info = model_store.load_model(directory, model_type)
        write_tflite(model, directory)
    try:
        lite = LiteModel(path, num_threads)
    except (ValueError, RuntimeError) as error:
        raise model_store.ModelError(f"{path}: unusable TFLite file ({error}); delete it to rebuild it") from None
    if lite.input_size != info["input_size"]:
        raise model_store.ModelError(f"{path}: input size {lite.input_size}, the model says {info['input_size']}")
    return lite, info
