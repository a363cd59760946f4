"""Recall and speed of each face detector on the annotated scenes in ../shared/data/scenes, and the choice
of `run --detect_size` (the longest side stills are downscaled to before detection) on crowds.

Recall: share of the 43 annotated faces matched by a detection with IoU >= 0.4 (some small background
faces are not annotated, so extra detections are counted but not scored). Speed: ms per 640x480 frame.
Crowds: the scenes tiled into an n x n grid (n = 3: the 9 scenes, 43 faces, 1500x1125 px; n = 6: each
scene 4 times, 172 faces, 3000x2250 px), searched at each --detect_size: recall, unmatched detections and
ms per image.

    python benchmarks/detectors.py [--only frames|crowds]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from face_analysis import paths
from face_analysis.detection import detectors as face_detection
from face_analysis.detection.detectors import AUTO_UPSCALE, DEFAULT_DETECT_SIZE
from face_analysis.io.images import load_image
from face_analysis.runners.tracking import iou

SCENES = ROOT.parent / "shared" / "data" / "scenes"


class OriginalHaar:
    """The original project's call: detectMultiScale(gray, 1.05, 5) on the full-size grey frame."""

    def __init__(self):
        self.cascade = cv2.CascadeClassifier(str(paths.HAAR_XML))

    def detect(self, image):
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return [face_detection.Detection(tuple(map(int, b))) for b in self.cascade.detectMultiScale(gray, 1.05, 5)]


def score(boxes, truth) -> tuple[int, int]:
    """(annotated faces matched, detections matching no annotated face)."""
    matched = sum(any(iou(t, b) >= 0.4 for b in boxes) for t in truth)
    return matched, sum(not any(iou(t, b) >= 0.4 for t in truth) for b in boxes)


def evaluate(detector, scenes: dict, repeats: int) -> dict:
    found = total = extra = 0
    for name, truth in scenes.items():
        matched, unmatched = score([d.box for d in detector.detect(load_image(SCENES / name))], truth)
        found, total, extra = found + matched, total + len(truth), extra + unmatched
    frames = [cv2.resize(load_image(SCENES / name), (640, 480)) for name in scenes]
    detector.detect(frames[0])
    started = time.perf_counter()
    for _ in range(repeats):
        for frame in frames:
            detector.detect(frame)
    ms = (time.perf_counter() - started) / (repeats * len(frames)) * 1000
    return {"recall": found / total, "found": found, "faces": total, "unmatched_detections": extra, "ms_per_frame": ms}


def crowd(scenes: dict, n: int) -> tuple[np.ndarray, list]:
    """The scenes tiled n x n (each resized to 500x375), with their boxes moved and scaled to match."""
    names = list(scenes)
    tile_w, tile_h = 500, 375
    image = np.zeros((n * tile_h, n * tile_w, 3), np.uint8)
    truth = []
    for k in range(n * n):
        name = names[k % len(names)]
        scene = load_image(SCENES / name)
        sx, sy = tile_w / scene.shape[1], tile_h / scene.shape[0]
        top, left = (k // n) * tile_h, (k % n) * tile_w
        image[top:top + tile_h, left:left + tile_w] = cv2.resize(scene, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        truth += [(left + x * sx, top + y * sy, w * sx, h * sy) for x, y, w, h in scenes[name]]
    return image, truth


def crowds(scenes: dict, sizes=(640, 960, 1280, 1600, 2048, None)) -> None:
    """Each size at --upscale 1, then the default size with run's default --upscale (auto: the closer look)."""
    print(f"\n{'crowd':12s} {'--detect_size':>13s} {'--upscale':>9s} {'recall':>8s} {'found':>11s} {'extra':>6s} "
          f"{'ms/image':>9s}")
    for n in (3, 6):
        image, truth = crowd(scenes, n)
        for size, upscale in [(size, 1.0) for size in sizes] + [(DEFAULT_DETECT_SIZE, AUTO_UPSCALE)]:
            detector = face_detection.make_detector("yunet", size, upscale)
            detector.detect(image)
            started = time.perf_counter()
            boxes = [d.box for d in detector.detect(image)]
            ms = (time.perf_counter() - started) * 1000
            found, extra = score(boxes, truth)
            label = f"{image.shape[1]}x{image.shape[0]}"
            print(f"{label:12s} {size or 0:13d} {upscale:>9} {found / len(truth):8.1%} {found:5d}/{len(truth):<5d} "
                  f"{extra:6d} {ms:9.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("frames", "crowds"))
    args = parser.parse_args()
    if not (SCENES / "boxes.json").is_file():
        sys.exit(f"{SCENES}: scenes not found (they live in ../shared, beside the repository)")
    scenes = json.loads((SCENES / "boxes.json").read_text())
    if args.only != "frames":
        crowds(scenes)
    if args.only == "crowds":
        return
    detectors = {"haar (original: 1.05, 5, full frame)": OriginalHaar()}
    for name in face_detection.DETECTORS:
        if name != "none":
            detectors[f"{name} (images: 640 px)"] = face_detection.make_detector(name)
            detectors[f"{name} (video: 320 px)"] = face_detection.make_detector(name, max_side=320)
    detectors["yunet (stills: 1280 px, --upscale auto)"] = face_detection.make_detector(
        "yunet", DEFAULT_DETECT_SIZE, AUTO_UPSCALE)
    print(f"{'detector':45s} {'recall':>8s} {'found':>7s} {'extra':>6s} {'ms/frame':>9s}")
    for name, detector in detectors.items():
        r = evaluate(detector, scenes, args.repeats)
        print(f"{name:45s} {r['recall']:8.1%} {r['found']:3d}/{r['faces']:<3d} {r['unmatched_detections']:6d} "
              f"{r['ms_per_frame']:9.1f}")


if __name__ == "__main__":
    main()
