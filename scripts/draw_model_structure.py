"""Draw each architecture into model_structure/ (needs `pip install pydot` and Graphviz's `dot`).

    python scripts/draw_model_structure.py
"""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent

import keras

from face_analysis.models import architectures as build_model


def main():
    out = ROOT / "model_structure"
    out.mkdir(exist_ok=True)
    normal = build_model.build_normal_model()
    keras.utils.plot_model(normal, out / "normal_model.png", show_shapes=True, expand_nested=True, dpi=72)
    facenet = build_model.build_facenet_model()
    keras.utils.plot_model(facenet, out / "facenet_model.png", show_shapes=True, show_layer_names=True, show_trainable=True, dpi=72)
    heads = facenet.get_layer(build_model.HEADS_NAME)
    keras.utils.plot_model(heads, out / "heads.png", show_shapes=True, dpi=72)
    for name, model in (("normal", normal), ("facenet", facenet)):
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line), expand_nested=(name == "normal"))
        (out / f"{name}_model_summary.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
