"""Which crop of a Haar box makes predictions on detected faces agree with predictions on UTKFace chips?

Each test chip is pasted into a larger frame (border replicated, as context), Haar finds the face, and
the face is cropped at several scales and vertical shifts of the box. Agreement with the prediction on
the chip itself is reported per crop, along with where the box sits on the chip.

    python benchmarks/crop_expansion.py --model_type facenet --data_path ../shared/data/UTKFace --images 400
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import cv2  # noqa: E402

import face_crop  # noqa: E402
import model_store  # noqa: E402
import train_model  # noqa: E402
from analyzer import FaceAnalyzer  # noqa: E402
from labels import MAX_AGE  # noqa: E402

SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6)
SHIFTS = (0.0, 0.085, 0.15)
AGES = np.arange(MAX_AGE + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_type", default="facenet")
    parser.add_argument("--data_path", nargs="+", default=["../shared/data/UTKFace"])
    parser.add_argument("--images", type=int, default=400)
    args = parser.parse_args()

    analyzer = FaceAnalyzer(args.model_type)
    directory = model_store.default_model_dir(args.model_type)
    split = pd.read_csv(io.StringIO(model_store.read_text_file(directory, "split.csv")), dtype={"sha256": str})
    data = train_model.prepare_data(args.data_path, 160)
    test = np.flatnonzero(data.frame["sha256"].isin(split.loc[split["split"] == "test", "sha256"]))
    picks = np.random.default_rng(0).choice(test, min(args.images, len(test)), replace=False)

    chips, crops, geometry = [], {(s, d): [] for s in SCALES for d in SHIFTS}, []
    for row in picks:
        chip = data.images[row]
        frame = cv2.copyMakeBorder(chip, 80, 80, 80, 80, cv2.BORDER_REPLICATE)
        boxes = analyzer.detector.detect(frame)
        centre = np.array(frame.shape[:2][::-1]) / 2
        boxes = [b for b in boxes if np.linalg.norm(np.array(b[:2]) + np.array(b[2:]) / 2 - centre) < 30]
        if len(boxes) != 1:
            continue
        x, y, w, h = boxes[0]
        geometry.append((160 / w, (80 + 80 - (x + w / 2)) / w, (80 + 80 - (y + h / 2)) / h))
        chips.append(face_crop.whole_image(chip, analyzer.input_size))
        for scale, shift in crops:
            crops[(scale, shift)].append(face_crop.crop_face(frame, boxes[0], analyzer.input_size, scale, shift))

    reference = analyzer.predict_crops(np.stack(chips))
    ref_age = reference["age"] @ AGES
    geometry = np.array(geometry)
    print(f"{len(chips)} of {len(picks)} test chips with one Haar face; chip side / box width "
          f"{np.median(geometry[:, 0]):.3f}, chip centre offset x {np.median(geometry[:, 1]):+.3f} w, "
          f"y {np.median(geometry[:, 2]):+.3f} h (medians)")
    rows = []
    for (scale, shift), faces in crops.items():
        out = analyzer.predict_crops(np.stack(faces))
        rows.append({"scale": scale, "shift_y": shift,
                     "age_difference": float(np.abs(out["age"] @ AGES - ref_age).mean()),
                     "gender_agreement": float((out["gender"].argmax(1) == reference["gender"].argmax(1)).mean()),
                     "race_agreement": float((out["race"].argmax(1) == reference["race"].argmax(1)).mean())})
    table = pd.DataFrame(rows).sort_values("age_difference")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
