"""How small can a face be and still get a meaningful prediction? The choice of `run --min_face`.

UTKFace test chips (the models' saved test split) are shrunk to a face of N pixels and brought back to the
model's input size, as `run` does with a small detected face; per size, both shipped models' accuracy
against the labels and how often they agree with each other on gender. The chip spans about 0.93 of a
YuNet box's height, so a chip of N pixels stands for a detected face (box's longer side) of about N / 0.93.

    python benchmarks/face_size.py --data_path ../shared/data/UTKFace --images 800
"""
import argparse

import cv2
import numpy as np
import pandas as pd

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.data import prepare
from face_analysis.data.prepare import prepare_data
from face_analysis.detection.detectors import YuNetDetector
from face_analysis.models import store as model_store
from face_analysis.results import AGES

SIZES = (8, 12, 16, 20, 24, 32, 48, 160)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_path", nargs="+", default=["../shared/data/UTKFace"])
    parser.add_argument("--images", type=int, default=800)
    args = parser.parse_args()
    models = {name: FaceAnalyzer(name, detector="none") for name in ("facenet", "normal")}
    split = prepare.read_split(model_store.default_model_dir("facenet"))
    data = prepare_data(args.data_path, 160)
    test = np.flatnonzero(data.frame["sha256"].isin(split.loc[split["split"] == "test", "sha256"]))
    picks = np.random.default_rng(0).choice(test, min(args.images, len(test)), replace=False)
    chips, labels = data.images[picks], data.frame.iloc[picks]
    box_per_chip = 1 / YuNetDetector.chip_crop["scale"]
    rows = []
    for size in SIZES:
        outputs = {}
        for name, analyzer in models.items():
            side = analyzer.input_size
            small = [cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA) for chip in chips]
            crops = np.stack([cv2.resize(s, (side, side), interpolation=cv2.INTER_LINEAR) for s in small])
            outputs[name] = analyzer.predict_crops(crops, [round(size * box_per_chip)] * len(crops))  # a face's size
        row = {"chip_px": size, "face_px": round(size * box_per_chip)}
        for name, out in outputs.items():
            row[f"{name}_mae"] = float(np.abs(out["age"] @ AGES - labels["age"].to_numpy()).mean())
            row[f"{name}_gender"] = float((out["gender"].argmax(1) == labels["gender"].to_numpy()).mean())
            row[f"{name}_race"] = float((out["race"].argmax(1) == labels["race"].to_numpy()).mean())
        row["gender_agreement"] = float((outputs["facenet"]["gender"].argmax(1)
                                         == outputs["normal"]["gender"].argmax(1)).mean())
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1, float_format=lambda v: f"{v:.3f}"),
              flush=True)


if __name__ == "__main__":
    main()
