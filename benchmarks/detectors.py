"""Recall and speed of each face detector on the annotated scenes in ../shared/data/scenes.

Recall: share of the 43 annotated faces matched by a detection with IoU >= 0.4 (some small background
faces are not annotated, so extra detections are counted but not scored). Speed: ms per 640x480 frame.

    python benchmarks/detectors.py
"""
import argparse
import json
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import face_detection  # noqa: E402
import paths  # noqa: E402
from face_tracking import iou  # noqa: E402
from image_io import load_image  # noqa: E402

SCENES = ROOT.parent / "shared" / "data" / "scenes"


class OriginalHaar:
    """The original project's call: detectMultiScale(gray, 1.05, 5) on the full-size grey frame."""

    def __init__(self):
        self.cascade = cv2.CascadeClassifier(str(paths.HAAR_XML))

    def detect(self, image):
        return [tuple(map(int, b)) for b in self.cascade.detectMultiScale(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 1.05, 5)]


def evaluate(detector, scenes: dict, repeats: int) -> dict:
    found = total = extra = 0
    for name, truth in scenes.items():
        image = load_image(SCENES / name)
        boxes = detector.detect(image)
        matched = [any(iou(t, b) >= 0.4 for b in boxes) for t in truth]
        found, total = found + sum(matched), total + len(truth)
        extra += sum(not any(iou(t, b) >= 0.4 for t in truth) for b in boxes)
    frames = [cv2.resize(load_image(SCENES / name), (640, 480)) for name in scenes]
    detector.detect(frames[0])
    started = time.perf_counter()
    for _ in range(repeats):
        for frame in frames:
            detector.detect(frame)
    ms = (time.perf_counter() - started) / (repeats * len(frames)) * 1000
    return {"recall": found / total, "found": found, "faces": total, "unmatched_detections": extra, "ms_per_frame": ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not (SCENES / "boxes.json").is_file():
        sys.exit(f"{SCENES}: scenes not found (they live in ../shared, beside the repository)")
    scenes = json.loads((SCENES / "boxes.json").read_text())
    detectors = {"haar (original: 1.05, 5, full frame)": OriginalHaar()}
    for name in face_detection.DETECTORS:
        if name != "none":
            detectors[f"{name} (images: 640 px)"] = face_detection.make_detector(name)
            detectors[f"{name} (video: 320 px)"] = face_detection.make_detector(name, max_side=320)
    print(f"{'detector':45s} {'recall':>8s} {'found':>7s} {'extra':>6s} {'ms/frame':>9s}")
    for name, detector in detectors.items():
        r = evaluate(detector, scenes, args.repeats)
        print(f"{name:45s} {r['recall']:8.1%} {r['found']:3d}/{r['faces']:<3d} {r['unmatched_detections']:6d} "
              f"{r['ms_per_frame']:9.1f}")


if __name__ == "__main__":
    main()
