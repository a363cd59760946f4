"""A facenet model's part for small faces: the Mixed_7a, Block8 and heads of another facenet model that learned
from shrunk faces (`train --small_faces`), kept in the first model's folder (int8, compiled.SMALL_FACES_FILE)
and run on the first model's stem maps for the faces under a size. Both models share FaceNet's frozen stem, so
a small face costs the small part once more, not a second model; large faces keep the first model's answers."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from face_analysis.models import compiled, facenet_graph
from face_analysis.models import store as model_store

SAME = ("model_type", "input_size", "crop_widen", "fine_tune_from")  # what both models must share


def attach(model_dir: Path, small_dir: Path, below: int) -> dict:
    """Put the part after the stem of the facenet model in small_dir into model_dir, for faces smaller than
    `below` pixels (box's longer side); returns model_dir's new info. Both must be facenet models whose stem
    is FaceNet's own, split at the same stage, with the same input and crop."""
    import openvino

    info, small = model_store.read_model_info(model_dir, "facenet"), model_store.read_model_info(small_dir, "facenet")
    differ = [key for key in SAME if info.get(key) != small.get(key)]
    if differ:
        raise model_store.ModelError(f"{small_dir}: its {', '.join(differ)} differ from {model_dir}'s: the small-face "
                                     "part must follow the same stem")
    if info.get("whole_epochs") or small.get("whole_epochs"):
        raise model_store.ModelError("a model fine-tuned whole has no stem of FaceNet's own to share")
    part = facenet_graph.after_stem(openvino.Core().read_model(str(Path(small_dir) / compiled.INT8_FILE)),
                                    info["fine_tune_from"])
    if part is None:
        raise model_store.ModelError(f"{small_dir}: no FaceNet stem found in {compiled.INT8_FILE} "
                                     f"(fine_tune_from {info['fine_tune_from']})")
    with tempfile.TemporaryDirectory() as folder:
        openvino.save_model(part, str(Path(folder) / compiled.SMALL_FACES_FILE), compress_to_fp16=False)
        files = {name: (Path(folder) / name).read_bytes()
                 for name in (compiled.SMALL_FACES_FILE, compiled.SMALL_FACES_WEIGHTS)}
    info = {**info, "small_face_part": {"below": int(below), "small_faces_share": small.get("small_faces"),
                                    "training_seconds": small.get("training_seconds")}}
    files["model.json"] = (json.dumps(info, indent=2) + "\n").encode()
    model_store.add_files(model_dir, files)
    return info
