"""Which crop of a detector's box makes predictions on detected faces agree with predictions on UTKFace chips?

Each test chip is pasted into a larger frame (border replicated, as context), the detector finds the face,
and the face is cropped at several scales and vertical shifts around the detector's `chip_crop`. Agreement
with the prediction on the chip itself is reported per crop, along with where the box sits on the chip.

    python benchmarks/crop_expansion.py --model_type facenet --detector yunet --images 300
"""
import argparse

import cv2
import numpy as np
import pandas as pd

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.data import prepare
from face_analysis.data.prepare import prepare_data
from face_analysis.detection import crop as face_crop
from face_analysis.labels import MAX_AGE
from face_analysis.models import store as model_store

SCALE_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.25, 1.5)
SHIFT_FACTORS = (0.0, 1.0, 1.5)
AGES = np.arange(MAX_AGE + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_type", default="facenet")
    parser.add_argument("--data_path", nargs="+", default=["../shared/data/UTKFace"])
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()

    analyzer = FaceAnalyzer(args.model_type, detector=args.detector)
    base = analyzer.detector.chip_crop
    scales = [round(base["scale"] * f, 3) for f in SCALE_FACTORS]
    shifts = [round(base["shift_y"] * f, 3) for f in SHIFT_FACTORS]
    directory = model_store.default_model_dir(args.model_type)
    split = prepare.read_split(directory)
    data = prepare_data(args.data_path, 160)
    test = np.flatnonzero(data.frame["sha256"].isin(split.loc[split["split"] == "test", "sha256"]))
    picks = np.random.default_rng(0).choice(test, min(args.images, len(test)), replace=False)

    chips, crops, geometry = [], {(s, d): [] for s in scales for d in shifts}, []
    for row in picks:
        chip = data.images[row]
        frame = cv2.copyMakeBorder(chip, 80, 80, 80, 80, cv2.BORDER_REPLICATE)
        boxes = [d.box for d in analyzer.detector.detect(frame)]
        centre = np.array(frame.shape[:2][::-1]) / 2
        boxes = [b for b in boxes if np.linalg.norm(np.array(b[:2]) + np.array(b[2:]) / 2 - centre) < 30]
        if len(boxes) != 1:
            continue
        x, y, w, h = boxes[0]
        side = chip.shape[0]
        geometry.append((side / max(w, h), (80 + side / 2 - (x + w / 2)) / w, (80 + side / 2 - (y + h / 2)) / h))
        chips.append(face_crop.whole_image(chip, analyzer.input_size))
        for scale, shift in crops:
            crops[(scale, shift)].append(face_crop.crop_face(frame, boxes[0], analyzer.input_size, scale, shift))

    reference = analyzer.predict_crops(np.stack(chips))
    ref_age = reference["age"] @ AGES
    geometry = np.array(geometry)
    print(f"{args.detector}: {len(chips)} of {len(picks)} test chips with one face found; chip side / box side "
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
    print(f"shipped crop: scale {base['scale']}, shift_y {base['shift_y']}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
