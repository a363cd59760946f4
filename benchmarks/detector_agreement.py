"""This tree's YuNet against another checkout's (a detector change): the boxes of both on FairFace training
photos, how well they agree, and the chip crop (scale, shift) that puts this tree's crop where the other's was.

    git worktree add /tmp/base 5f107e5
    python benchmarks/detector_agreement.py --against /tmp/base --photos 2000

The models learned from crops of the other detector's boxes (detection.detectors.YuNetDetector.chip_crop: a
square of `scale` times the box's longer side, its centre `shift_y` box heights below the box's); the values
printed make this detector's crop the same square, by the median over the faces both find (IoU >= 0.5)."""
import argparse
import importlib.util
import tarfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FAIRFACE = ROOT.parent / "shared" / "data" / "FairFace" / "fairface_train_1.tar.gz"


def detector_module(tree: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, tree / "src" / "face_analysis" / "detection" / "detectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / float(aw * ah + bw * bh - inter)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", type=Path, required=True, help="the other checkout")
    parser.add_argument("--photos", type=int, default=2000)
    args = parser.parse_args()
    this_module, other_module = detector_module(ROOT, "this_detectors"), detector_module(args.against, "other_detectors")
    this, other = this_module.YuNetDetector(max_side=1280), other_module.YuNetDetector(max_side=1280)
    pairs, counts = [], {"this": 0, "other": 0}
    with tarfile.open(FAIRFACE) as archive:
        members = (m for m in archive if m.isfile() and m.name.endswith(".jpg"))
        for _, member in zip(range(args.photos), members):
            bgr = cv2.imdecode(np.frombuffer(archive.extractfile(member).read(), np.uint8), cv2.IMREAD_COLOR)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            found, before = this.detect(rgb), other.detect(rgb)
            counts["this"] += len(found)
            counts["other"] += len(before)
            for face in before:
                best = max(found, key=lambda d: iou(face.box, d.box), default=None)
                if best is not None and iou(face.box, best.box) >= 0.5:
                    pairs.append((*face.box, *best.box, iou(face.box, best.box)))
    boxes = np.array(pairs, float)
    ox, oy, ow, oh, nx, ny, nw, nh, overlap = boxes.T
    crop = other_module.YuNetDetector.chip_crop
    side = crop["scale"] * np.maximum(ow, oh)
    centre_y = oy + oh / 2 + crop["shift_y"] * oh
    print(f"{args.photos} photos: {counts['other']} faces before, {counts['this']} now, {len(boxes)} found by both "
          f"(IoU >= 0.5), mean IoU {overlap.mean():.3f}; width now / before {np.median(nw / ow):.3f}, "
          f"height {np.median(nh / oh):.3f}")
    print(f"chip crop matching the other's (scale {crop['scale']}, shift_y {crop['shift_y']}): "
          f"scale {np.median(side / np.maximum(nw, nh)):.3f}, shift_y {np.median((centre_y - ny - nh / 2) / nh):.3f}; "
          f"this tree's: {this_module.YuNetDetector.chip_crop}")


if __name__ == "__main__":
    main()
