"""Photos at speed: `run --img FOLDER --json` of this tree against another tree (an earlier commit's checkout),
wall time from start to exit in fresh processes, and the faces each finds; then the cost of each stage.

    git worktree add /tmp/base 5f107e5
    python benchmarks/photo_speed.py --against /tmp/base            # both folders, both trees, 2 rounds
    python benchmarks/photo_speed.py --against /tmp/base --this_options=--detect_size=640   # this tree's run with it
    python benchmarks/photo_speed.py --stages                          # decode / detect / crop+model per photo

The folders, made once under the system's temp folder from FairFace's training photos (../shared/data/FairFace,
not copied anywhere else):
- phone: 4032x3024 JPEGs (12 MP, quality 90) holding 1 to 3 people with faces of 250 to 900 px, a third of
  them stored sideways with EXIF orientation 6 or 8 as phones store portraits;
- groups: 640x480 JPEGs holding 6 people each, faces of about 45 to 100 px.
A face found by both trees is one whose boxes overlap with IoU >= 0.5; "labelled" counts those that both
labelled (not too small), and the label agreement compares their gender and race."""
import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FAIRFACE = ROOT.parent / "shared" / "data" / "FairFace" / "fairface_train_1.tar.gz"


def fairface_photos(count: int, skip: int = 0) -> list[np.ndarray]:
    """`count` FairFace training photos (BGR, 224x224), after the first `skip`."""
    photos = []
    with tarfile.open(FAIRFACE) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".jpg"):
                if skip:
                    skip -= 1
                    continue
                photos.append(cv2.imdecode(np.frombuffer(archive.extractfile(member).read(), np.uint8), 1))
                if len(photos) == count:
                    return photos
    return photos


def background(rng, height: int, width: int) -> np.ndarray:
    """A smooth random backdrop with some texture, as cheap to make as to look at."""
    small = rng.integers(30, 220, (4, 5, 3)).astype(np.uint8)
    frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, (height // 8, width // 8, 3))
    return np.clip(frame + cv2.resize(noise, (width, height)), 0, 255).astype(np.uint8)


def paste(frame, photo, side, x, y):
    frame[y:y + side, x:x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA
                                               if side < photo.shape[0] else cv2.INTER_CUBIC)


def write_with_orientation(path: Path, upright: np.ndarray, orientation: int) -> None:
    """A JPEG whose EXIF orientation tag turns its stored pixels into `upright`, as a phone writes it."""
    from PIL import Image

    stored = {1: upright, 6: np.rot90(upright, 1), 8: np.rot90(upright, -1), 3: np.rot90(upright, 2)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored[..., ::-1])).save(path, quality=90, exif=exif.tobytes())


def make_phone(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == count:
        return folder
    rng, photos = np.random.default_rng(1), fairface_photos(3 * count)
    for i in range(count):
        portrait = i % 3 != 0
        height, width = (4032, 3024) if portrait else (3024, 4032)
        frame = background(rng, height, width)
        people = int(rng.integers(1, 4))
        for p in range(people):
            side = int(rng.integers(500, 1800)) // people  # the photo's face is about half its side
            x = int(rng.integers(p * width // people, max(p * width // people + 1, (p + 1) * width // people - side)))
            y = int(rng.integers(0, height - side))
            paste(frame, photos[3 * i + p], side, x, y)
        write_with_orientation(folder / f"phone_{i:03d}.jpg", frame, (1, 6, 8)[i % 3])
    return folder


def make_groups(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == count:
        return folder
    rng, photos = np.random.default_rng(2), fairface_photos(6 * count, skip=3000)
    for i in range(count):
        frame = background(rng, 480, 640)
        for p in range(6):
            side = int(rng.integers(90, 200))
            x = min(640 - side, (p % 3) * 213 + int(rng.integers(0, 20)))
            y = min(480 - side, (p // 3) * 240 + int(rng.integers(0, 40)))
            paste(frame, photos[6 * i + p], side, x, y)
        cv2.imwrite(str(folder / f"group_{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


def run_tree(tree: Path, folder: Path, out: Path, extra=()) -> float:
    command = [sys.executable, str(tree / "src" / "main.py"), "run", "--img", str(folder), "--json", str(out),
               "--quiet", *extra]
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=tree)
    return time.perf_counter() - started


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / float(aw * ah + bw * bh - inter)


def compare(base_json: Path, new_json: Path) -> dict:
    """Faces of the base run found again by the new one (IoU >= 0.5), labelled again, and their labels' agreement."""
    base = {Path(r["image"]).name: r["faces"] for r in json.loads(base_json.read_text())}
    new = {Path(r["image"]).name: r["faces"] for r in json.loads(new_json.read_text())}
    found = labelled = labelled_base = same_gender = same_race = extra = 0
    ages = []
    total = sum(len(faces) for faces in base.values())
    for name, faces in base.items():
        others = list(new.get(name, []))
        matched = set()
        for face in faces:
            best = max(range(len(others)), key=lambda j: iou(face["box"], others[j]["box"]), default=None)
            if best is None or iou(face["box"], others[best]["box"]) < 0.5:
                continue
            found += 1
            matched.add(best)
            other = others[best]
            if face["gender"] is not None:
                labelled_base += 1
                if other["gender"] is not None:
                    labelled += 1
                    same_gender += face["gender"] == other["gender"]
                    same_race += face["race"] == other["race"]
                    ages.append(abs(face["age"] - other["age"]))
        extra += len(others) - len(matched)
    return {"faces": total, "found": found / max(1, total), "labelled": labelled / max(1, labelled_base),
            "gender": same_gender / max(1, labelled), "race": same_race / max(1, labelled),
            "age": float(np.mean(ages)) if ages else 0.0, "extra": extra}


def against(other: Path, work: Path, rounds: int, phone: int, groups: int, model_type: str, extra=()) -> None:
    folders = {"phone": make_phone(work / "phone", phone), "groups": make_groups(work / "groups", groups)}
    for name, folder in folders.items():
        count = len(list(folder.glob("*.jpg")))
        times = {"base": [], "this": []}
        for _ in range(rounds):  # alternated, so that a busy spell of the machine falls on both
            for label, tree in (("base", other), ("this", ROOT)):
                options = ("--model_type", model_type, *(extra if label == "this" else ()))
                times[label].append(run_tree(tree, folder, work / f"{name}-{label}.json", options))
        base, this = min(times["base"]), min(times["this"])
        agree = compare(work / f"{name}-base.json", work / f"{name}-this.json")
        print(f"{name:6s} {count} photos {model_type} {' '.join(extra)}: base {base:6.1f} s ({count / base:5.1f} photos/s), "
              f"this {this:6.1f} s ({count / this:5.1f} photos/s), ratio {this / base:.3f}; of the base's "
              f"{agree['faces']} faces found again {agree['found']:.1%}, labelled again {agree['labelled']:.1%}, "
              f"same gender {agree['gender']:.1%}, same race {agree['race']:.1%}, ages {agree['age']:.2f} years apart, "
              f"{agree['extra']} faces only this tree finds", flush=True)


def stages(work: Path, phone: int, groups: int, model_type: str) -> None:
    """Per photo and stage, in this process: read, decode (full and as `run` decodes for detection), detect,
    crop + model, on one thread each (the pipeline overlaps them across the cores)."""
    from face_analysis.analyzer import FaceAnalyzer
    from face_analysis.io import images as image_io

    analyzer = FaceAnalyzer(model_type)
    for name, folder in (("phone", make_phone(work / "phone", phone)), ("groups", make_groups(work / "groups", groups))):
        files = sorted(folder.glob("*.jpg"))
        cost = {"read": 0.0, "decode full": 0.0, "decode for detection": 0.0, "detect": 0.0, "crop + model": 0.0}
        faces = 0
        for path in files:
            started = time.perf_counter()
            data = image_io.read_image_bytes(path)
            cost["read"] += time.perf_counter() - started
            started = time.perf_counter()
            image_io.decode_image(data, str(path))
            cost["decode full"] += time.perf_counter() - started
            started = time.perf_counter()
            decoded = image_io.decode_for_detection(data, str(path), analyzer.detect_size)
            cost["decode for detection"] += time.perf_counter() - started
            started = time.perf_counter()
            analyzer.detector.detect(decoded.pixels)
            cost["detect"] += time.perf_counter() - started
            started = time.perf_counter()
            result = analyzer.finish([analyzer.prepare(decoded)])[0]  # detects again: subtracted below
            cost["crop + model"] += time.perf_counter() - started
            faces += len(result)
        cost["crop + model"] -= cost["detect"]
        print(f"stages {name:6s} {len(files)} photos, {faces} faces, {model_type}: " +
              ", ".join(f"{stage} {seconds / len(files) * 1000:.1f} ms" for stage, seconds in cost.items()) +
              " per photo", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", type=Path, help="another checkout of this project (the baseline)")
    parser.add_argument("--stages", action="store_true", help="the cost of each stage, in this process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--phone", type=int, default=30, help="phone photos (default 30)")
    parser.add_argument("--groups", type=int, default=200, help="group photos (default 200)")
    parser.add_argument("--model_type", default="facenet")
    parser.add_argument("--this_options", nargs="+", action="extend", default=[], metavar="OPTION",
                        help="more options of this tree's `run` (e.g. --this_options=--detect_size=640)")
    args = parser.parse_args()
    if not FAIRFACE.is_file():
        raise SystemExit(f"{FAIRFACE}: not found (the photos are made from FairFace's training images)")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {len(os.sched_getaffinity(0))} cores")
    work = Path(tempfile.gettempdir()) / "face_analysis_photo_speed"
    if args.stages:
        stages(work, args.phone, args.groups, args.model_type)
    if args.against:
        against(args.against.resolve(), work, args.rounds, args.phone, args.groups, args.model_type, args.this_options)


if __name__ == "__main__":
    main()
