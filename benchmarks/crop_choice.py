"""Which crop of a detected face should the models learn from photos: the detector's UTKFace-like chip crop
or a wider one with hair and context?

A linear probe on frozen FaceNet embeddings: each labelled photo's largest face is found as `run` finds it,
cropped with the detector's chip crop widened by each factor (same centre), embedded by the pretrained
FaceNet, and a logistic regression per task is fitted on photos of the training part and scored on the
validation part (content-hash split, as `train` makes it). The test part is never read.

    python benchmarks/crop_choice.py --data_path ../shared/data/FairFace --train_images 2000
"""
import argparse
import hashlib

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from face_analysis.data import labelled as labelled_sets
from face_analysis.data import utk as utk_data
from face_analysis.detection import crop as face_crop
from face_analysis.detection import detectors as face_detection
from face_analysis.detection.detectors import DEFAULT_DETECT_SIZE
from face_analysis.io.images import decode_image
from face_analysis.models import facenet_backbone

INPUT_SIZE = facenet_backbone.INPUT_SIZE


def embed(model, crops: np.ndarray) -> np.ndarray:
    scaled = (crops.astype(np.float32) - 127.5) / 128.0
    block8 = np.concatenate([model.predict_on_batch(scaled[i:i + 32]) for i in range(0, len(scaled), 32)])
    return facenet_backbone.embeddings_from_block8(block8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_path", default="../shared/data/FairFace")
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--widen", type=float, nargs="+", default=[1.0, 1.25, 1.5])
    parser.add_argument("--train_images", type=int, default=2000, help="photos of the training part to fit on")
    args = parser.parse_args()

    labelled = labelled_sets.load_labelled_set(args.data_path)
    frame = labelled.frame
    frame = frame.assign(split=[utk_data.split_of(hashlib.sha256(labelled.images[n]).hexdigest())
                                for n in frame["name"]])
    train = frame[frame["split"] == "train"].sample(n=args.train_images, random_state=0)
    val = frame[frame["split"] == "val"]
    detector = face_detection.make_detector(args.detector, DEFAULT_DETECT_SIZE)
    chip = detector.chip_crop
    model = facenet_backbone.build_backbone_part(end=facenet_backbone.BACKBONE_END)

    faces = {}
    for part, rows in (("train", train), ("val", val)):
        for index, name in tqdm(list(zip(rows.index, rows["name"])), desc=f"finding faces ({part})", unit="img"):
            image = decode_image(labelled.images[name], name)
            found = detector.detect(image)
            if found:
                faces[index] = (image, found[0].box)
    print(f"faces found: {len(faces)} of {len(train) + len(val)} photos")
    train = train[train.index.isin(faces)]
    val = val[val.index.isin(faces)]
    def labels(rows):
        return {"gender": rows["gender"].to_numpy(), "race": rows["race"].to_numpy(),
                "age group": rows["age_lo"].to_numpy()}  # each group has its own lower bound

    print(f"| widen | crop scale of the box | gender | race (5) | age group (9) |   ({len(train)} train, "
          f"{len(val)} val photos, {args.detector})")
    print("| --- | --- | --- | --- | --- |")
    for widen in args.widen:
        scale = chip["scale"] * widen

        def crops(rows, scale=scale):
            return np.stack([face_crop.crop_face(*faces[i], INPUT_SIZE, scale, chip["shift_y"]) for i in rows.index])

        fit_x, val_x = embed(model, crops(train)), embed(model, crops(val))
        scores = []
        for task, y in labels(train).items():
            probe = LogisticRegression(C=1.0, max_iter=2000).fit(fit_x, y)
            scores.append(100 * np.mean(probe.predict(val_x) == labels(val)[task]))
        print(f"| {widen:g} | {scale:.3f} | " + " | ".join(f"{s:.1f} %" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
