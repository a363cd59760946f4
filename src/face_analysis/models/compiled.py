"""Fast inference without TensorFlow: saved models compiled and run by OpenVINO, in float32 or int8.

float32: a TFLite export derived from the weights and never committed: `train` writes it at the end, and the
first float32 `run` of a model without one builds it once (that needs TensorFlow) into .cache/tflite/.
int8: part of the saved model (model_int8.xml/.bin, OpenVINO's format, in its manifest), made by NNCF's
post-training quantization of the float32 export: activation ranges measured on training images, weights of
7 bits (no int16 overflow on CPUs without VNNI), biases corrected layer by layer. `train` writes it;
`quantize` adds it to an older model. Compiled programs are cached in .cache/openvino/."""
from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from face_analysis import extras, paths
from face_analysis.labels import GENDERS, MAX_AGE, RACES
from face_analysis.models import facenet_graph
from face_analysis.models import store as model_store

OUTPUTS = {MAX_AGE + 1: "age", len(GENDERS): "gender", len(RACES): "race"}  # told apart by their sizes
INT8_FILE, INT8_WEIGHTS = "model_int8.xml", "model_int8.bin"
SMALL_FACES_FILE, SMALL_FACES_WEIGHTS = "small_faces_int8.xml", "small_faces_int8.bin"  # models.small_faces
CALIBRATION_IMAGES = 256  # training images the int8 quantization measures its activation ranges on
AGREEMENT_IMAGES = 300  # other training images on which int8 is checked against float32
QUANTIZE_IMAGES = CALIBRATION_IMAGES + AGREEMENT_IMAGES  # `quantize` refuses fewer unless --force
AGREEMENT = {"same_gender": 0.99, "same_race": 0.99, "age_difference": 0.5}  # short of these, quantizing warns
BUILD_SECONDS = {"facenet": 30, "normal": 10}  # a TFLite build on 2 CPU cores, TensorFlow's import included
log = logging.getLogger(__name__)


EXPORT_VERSION = b"plain-2"  # changes whenever the float32 export does (plain-2: no mirror averaging inside)


def tflite_path(directory: Path) -> Path:
    """Where the float32 TFLite export of a saved model lives: named after a hash of the model's manifest and
    of EXPORT_VERSION, so changed weights or a changed export each get a new file."""
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
def float_export(model):
    """A float32 TFLite export of model in the cache folder, for int8_files and then write_tflite (which keeps
    it); removed if nothing keeps it."""
    path = export_tflite(model, paths.CACHE_DIR / "tflite" / f"export-{os.getpid()}.tflite")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def quantization_samples(rows: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, agreement): two disjoint fixed random samples of the rows of a training part, of
    CALIBRATION_IMAGES and AGREEMENT_IMAGES rows; fewer rows than both need are shared out in that proportion
    (agreement keeps at least one row when there are two)."""
    picks = np.random.default_rng(seed).permutation(np.unique(rows))
    cut = min(CALIBRATION_IMAGES, max(1, len(picks) * CALIBRATION_IMAGES // QUANTIZE_IMAGES))
    return np.sort(picks[:cut]), np.sort(picks[cut:cut + AGREEMENT_IMAGES])


def int8_files(exported: Path, calibration: np.ndarray, agreement: np.ndarray) -> dict[str, bytes]:
    """A model's float32 export quantized to int8 (float32 input and outputs) as OpenVINO files {name: bytes},
    calibrated on `calibration` (uint8 RGB training images); logs how well int8 agrees with float32 on
    `agreement` (other training images), and warns when it falls short of AGREEMENT (issue targets)."""
    import tempfile

    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    quantized = nncf.quantize(
        openvino.Core().read_model(str(exported)),
        nncf.Dataset([image[None].astype(np.float32) for image in calibration]),
        subset_size=len(calibration), fast_bias_correction=False,
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE))
    with tempfile.TemporaryDirectory() as folder:
        openvino.save_model(quantized, str(Path(folder) / INT8_FILE), compress_to_fp16=False)
        agreement = np.asarray(agreement, np.float32)
        figures = agreement_figures(CompiledModel(exported)(agreement),
                                    CompiledModel(Path(folder) / INT8_FILE)(agreement))
        short = (figures["same_gender"] < AGREEMENT["same_gender"] or figures["same_race"] < AGREEMENT["same_race"]
                 or figures["age_difference"] > AGREEMENT["age_difference"])
        log.log(logging.WARNING if short else logging.INFO, "int8 against float32 on %d training images: same "
                "gender %.1f %%, same race %.1f %%, ages %.2f years apart on average", len(agreement),
                100 * figures["same_gender"], 100 * figures["same_race"], figures["age_difference"])
        return {name: (Path(folder) / name).read_bytes() for name in (INT8_FILE, INT8_WEIGHTS)}


def agreement_figures(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Shares of images with the same gender and race, and the mean and largest age difference (years)."""
    ages = np.arange(MAX_AGE + 1)
    difference = np.abs(got["age"] @ ages - expected["age"] @ ages)
    return {"same_gender": float(np.mean(got["gender"].argmax(1) == expected["gender"].argmax(1))),
            "same_race": float(np.mean(got["race"].argmax(1) == expected["race"].argmax(1))),
            "age_difference": float(difference.mean()), "largest_age_difference": float(difference.max())}


@contextmanager
def quiet_stderr():
    """Silence what native libraries print straight to stderr (TensorFlow and OpenVINO start-up notes)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class CompiledModel:
    """A model file (TFLite, or OpenVINO's .xml with its .bin) compiled by OpenVINO for this CPU, behind the
    same call as a Keras model: a batch of uint8-range images (float32) in, the softmax dict out. stem_stage (a
    facenet model's fine_tune_from, whose stem is FaceNet's own): the dict also holds "stem_maps", the output of
    that frozen stem, for the identity embeddings (self.stem_stage None where the file has no such output).
    small_faces (the file of another model's part after that same stem, and a face size in pixels): faces
    smaller than that, by the sizes given with the images, get that part's answers from their stem maps."""

    def __init__(self, path: Path, num_threads: int | None = None, stem_stage: str | None = None,
                 small_faces: tuple[Path, int] | None = None):
        import openvino

        self._made_from = (path, num_threads, stem_stage, small_faces)
        core = openvino.Core()
        core.set_property({"CACHE_DIR": str(paths.CACHE_DIR / "openvino")})  # compiled once per file and CPU
        with quiet_stderr():
            model = core.read_model(str(path))
            names = {int(output.partial_shape[-1].get_length()): i for i, output in enumerate(model.outputs)}
            if set(names) != set(OUTPUTS):
                raise model_store.ModelError(f"{path}: outputs of sizes {sorted(names)}, not {sorted(OUTPUTS)}")
            self.output_index = {OUTPUTS[size]: index for size, index in names.items()}
            stem = facenet_graph.stem_output(model, stem_stage) if stem_stage else None
            self.stem_stage = stem_stage if stem is not None else None
            if stem is not None:
                model.add_outputs([stem])
                self.output_index["stem_maps"] = len(model.outputs) - 1
            self.input_size = int(model.inputs[0].partial_shape[1].get_length())
            # threads not pinned to cores: pinned, a core busy with another process made batch 1 ten times slower
            config = {"INFERENCE_NUM_THREADS": num_threads or available_cores(), "PERFORMANCE_HINT": "LATENCY",
                      "ENABLE_CPU_PINNING": False}
            self.compiled = core.compile_model(model, "CPU", config)
            self.request = self.compiled.create_infer_request()
            self.small_faces = None
            if small_faces is not None:
                if stem is None:
                    raise model_store.ModelError(f"{path}: a small-face part, but no stem output to give it")
                tail = core.compile_model(core.read_model(str(small_faces[0])), "CPU", config)
                self.small_faces = (tail, tail.create_infer_request(), int(small_faces[1]))
            self(np.zeros((1, self.input_size, self.input_size, 3), np.float32))  # warm-up

    def copy(self) -> CompiledModel:
        """Another compiled copy of the same files, for another thread (the files were checked already)."""
        return CompiledModel(*self._made_from)

    def __call__(self, images: np.ndarray, sizes=None) -> dict[str, np.ndarray]:
        """The outputs for a batch of images; sizes (each face's size in pixels): the small ones answered by
        the small-face part, where the model has one."""
        results = self.request.infer({0: np.ascontiguousarray(images, np.float32)})
        out = {name: np.array(results[self.compiled.outputs[index]]) for name, index in self.output_index.items()}
        small = None if sizes is None or self.small_faces is None else np.asarray(sizes) < self.small_faces[2]
        if small is not None and small.any():
            tail, request, _ = self.small_faces
            answers = request.infer({0: np.ascontiguousarray(out["stem_maps"][small])})
            for output in tail.outputs:
                out[OUTPUTS[int(output.partial_shape[-1].get_length())]][small] = answers[output]
        return out


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and `taskset` narrow),
    not every core of the machine: inference threads beyond them only wait on each other."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_digest(path: Path) -> None:
    """Write a cached file's sha256 beside it (atomically), for cached_file_ok."""
    tmp = _digest_path(path).with_name(f"{_digest_path(path).name}.tmp{os.getpid()}")
    tmp.write_text(model_store.file_sha256(path) + "\n")
    os.replace(tmp, _digest_path(path))


def cached_file_ok(path: Path) -> bool:
    """Whether a cached file is there and still has the sha256 written beside it when it was made."""
    try:
        return _digest_path(path).read_text().strip() == model_store.file_sha256(path)
    except OSError:
        return False


def write_tflite(model, directory: Path, exported: Path | None = None) -> Path:
    """Export a saved model's TFLite file into the cache with its sha256 beside it (what `run` checks);
    `exported`: its float_export, made already, moved into place instead."""
    path = tflite_path(directory)
    if exported is None:
        export_tflite(model, path)
    else:
        os.replace(exported, path)
    write_digest(path)
    return path


def load_lite_model(directory: Path, model_type: str | None = None, num_threads: int | None = None,
                    precision: str = "int8", stem_maps: bool = False) -> tuple[CompiledModel, dict]:
    """(CompiledModel, info) of a saved model at the given precision, after its manifest check. float32 builds
    its TFLite file when it is missing or does not match the sha256 recorded when it was built. stem_maps: a
    facenet model whose stem stayed FaceNet's own (not fine-tuned whole) also outputs that stem's maps."""
    info = model_store.read_model_info(directory, model_type)
    small = info.get("small_face_part")  # a facenet model's part for small faces (models.small_faces)
    small_faces = (Path(directory) / SMALL_FACES_FILE, small["below"]) if small else None
    stem_stage = (info.get("fine_tune_from") if (stem_maps or small) and info["model_type"] == "facenet"
                  and not info.get("whole_epochs") else None)
    if precision == "int8":
        path = Path(directory) / INT8_FILE
        if not path.is_file():
            raise model_store.ModelError(
                f"{directory}: this model has no int8 file ({INT8_FILE}); add it with `face-analysis quantize "
                f"--model_path {directory} --data_path DATA...` or run it with --precision float32")
        return _compiled(path, num_threads, info, stem_stage, small_faces), info
    path = tflite_path(directory)
    if not cached_file_ok(path):
        extras.require("--precision float32 (its first run builds the export)", "train", "tensorflow", "keras")
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
    return _compiled(path, num_threads, info, stem_stage, small_faces), info


def _compiled(path: Path, num_threads: int | None, info: dict, stem_stage: str | None,
              small_faces: tuple[Path, int] | None) -> CompiledModel:
    try:
        compiled = CompiledModel(path, num_threads, stem_stage, small_faces)
    except (ValueError, RuntimeError) as error:
        raise model_store.ModelError(f"{path}: unusable TFLite file ({error})") from None
    if compiled.input_size != info["input_size"]:
        raise model_store.ModelError(f"{path}: input size {compiled.input_size}, the model says {info['input_size']}")
    return compiled
