"""Small faces of crowds, through `run`'s path: FairFace test photos shrunk so that the face's box is about N
pixels, eight to a 640x480 picture; per size, the share of faces found, labelled (not too small), and the
accuracy of the labelled ones (gender, 5-class race, 9 age groups) against FairFace's labels.

    python benchmarks/small_faces.py --data_path ../shared/data/FairFace path/to/FairFace-20001-40000
    python benchmarks/small_faces.py --model_path DIR --sizes 16 24 --min_face 0 --photos 800
    python benchmarks/small_faces.py --sizes 36 --photos 3000 --table small36.csv   # then benchmarks/audit.py --table

Each photo's face is found once at full size (its box gives the scale); the photo is shrunk with area
averaging, saved as JPEG (quality 90) inside the picture, as a camera stores a crowd, and the picture goes
through FaceAnalyzer as `run --img` does (default detector and --detect_size, the model's crop, int8). A
placed face is found when a detection overlaps its expected box with IoU >= 0.3 (a small box moves a few
pixels). The test part of each source is the 20 % chosen by the content hash (data.utk.split_of), as
`evaluate` uses; photos whose face is not found at full size are left out."""
import argparse
import hashlib

import cv2
import numpy as np
import pandas as pd

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.data.labelled import load_labelled_set
from face_analysis.data.utk import split_of
from face_analysis.io.writers import PROBABILITY_COLUMNS, probability_values
from face_analysis.labels import AGE_BUCKETS, AGE_GROUP_INTERVALS, GENDERS, RACES
from face_analysis.option_types import UPSCALE
from face_analysis.runners.tracking import iou

CELLS = [(col * 160, row * 240) for row in range(2) for col in range(4)]  # eight 160x240 cells of 640x480


def test_photos(paths, count: int, seed: int, split: str = "test"):
    """(RGB photo, labels) of up to `count` photos of the `split` part drawn from the labelled sets, in a fixed
    order."""
    rows = []
    for path in paths:
        labelled = load_labelled_set(path)
        for row in labelled.frame.itertuples():
            data = labelled.images[row.name]
            if split_of(hashlib.sha256(data).hexdigest()) == split:
                rows.append((data, row))
    picks = np.random.default_rng(seed).permutation(len(rows))[:count]
    for i in picks:
        data, row = rows[i]
        yield cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), row


def pictures(photos, size: int, finder):
    """Pictures of eight photos each, shrunk so that each face's box is `size` px: (picture, [(expected box,
    labels)])."""
    picture, placed = np.full((480, 640, 3), 120, np.uint8), []
    for photo, labels in photos:
        found = finder.detect(photo)
        if not found:
            continue
        x, y, w, h = found[0].box
        scale = size / max(w, h)
        small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        small = small[:240, :160]
        left, top = CELLS[len(placed)]
        left += (160 - small.shape[1]) // 2
        top += (240 - small.shape[0]) // 2
        picture[top:top + small.shape[0], left:left + small.shape[1]] = small
        placed.append(((left + x * scale, top + y * scale, w * scale, h * scale), labels))
        if len(placed) == len(CELLS):
            ok, encoded = cv2.imencode(".jpg", picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            yield cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].copy(), placed
            picture, placed = np.full((480, 640, 3), 120, np.uint8), []


def measure(analyzer: FaceAnalyzer, photos, size: int, finder, table: list | None = None) -> dict:
    """The size's row; with `table`, each labelled face's labels and probabilities appended to it (audit.py's
    table format)."""
    faces = found = labelled = gender = race = age = 0
    for picture, placed in pictures(photos, size, finder):
        predictions = analyzer.analyze(picture)
        for box, labels in placed:
            faces += 1
            best = max(predictions, key=lambda p: iou(p.box, box), default=None)
            if best is None or iou(best.box, box) < 0.3:
                continue
            found += 1
            if best.gender is None:
                continue
            labelled += 1
            if table is not None:
                table.append({"name": labels.name, "box (px)": size, "race": labels.race, "gender": labels.gender,
                              "age_group": labels.age_group, **dict(zip(PROBABILITY_COLUMNS, probability_values(best)))})
            gender += best.gender == GENDERS[labels.gender]
            race += best.race == RACES[labels.race]
            groups = best.age_group_probabilities  # FairFace's nine groups, in its order
            age += max(groups, key=groups.get) == AGE_BUCKETS[list(AGE_GROUP_INTERVALS).index(labels.age_group)]
    return {"box (px)": size, "faces": faces, "found %": 100 * found / max(faces, 1),
            "labelled % of found": 100 * labelled / max(found, 1), "gender %": 100 * gender / max(labelled, 1),
            "race %": 100 * race / max(labelled, 1), "age group %": 100 * age / max(labelled, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_path", nargs="+", default=["../shared/data/FairFace"])
    parser.add_argument("--model_type", default="facenet")
    parser.add_argument("--model_path")
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 24, 32, 48])
    parser.add_argument("--photos", type=int, default=800, help="photos per size (default 800)")
    parser.add_argument("--min_face", type=int, help="run's --min_face (default: run's)")
    parser.add_argument("--detect_size", type=int, help="run's --detect_size (default: run's)")
    parser.add_argument("--upscale", help="run's --upscale (default: run's)")
    parser.add_argument("--table", metavar="CSV", help="also write each labelled face's labels and probabilities "
                        "here, the table benchmarks/audit.py reads (a collection of small faces)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("val", "test"), default="test", help="the part of each source "
                        "(val: to choose with; test: to measure once)")
    args = parser.parse_args()
    options = {k: v for k, v in (("min_face", args.min_face), ("detect_size", args.detect_size),
                                 ("upscale", args.upscale and UPSCALE(args.upscale))) if v is not None}
    analyzer = FaceAnalyzer(None if args.model_path else args.model_type, args.model_path, **options)
    finder = FaceAnalyzer(None if args.model_path else args.model_type, args.model_path, upscale=1.0).detector
    photos = list(test_photos(args.data_path, args.photos, args.seed, args.split))
    table = [] if args.table else None
    rows = [measure(analyzer, photos, size, finder, table) for size in args.sizes]
    if table is not None:
        pd.DataFrame(table).to_csv(args.table, index=False)
    print(f"{analyzer.model_type} ({analyzer.model_dir}), --min_face {analyzer.min_face}, --detect_size "
          f"{analyzer.detect_size}, --upscale {analyzer.upscale}, {len(photos)} FairFace {args.split} photos a size")
    print(pd.DataFrame(rows).round(1).to_string(index=False))


if __name__ == "__main__":
    main()
