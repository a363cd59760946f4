"""Counting people on real photos, through `run --people` itself: how well its person numbers match true identities.

The data: 50 celebrities' web photos with identity labels, from three public snapshots (GitHub; fetched once
under /work/data/people2/, never in the repository; not LFW): gkbrasselle/DS4002CS3 (Google image thumbnails,
25 people, some photos with other people in them), mrlynn/MacFaceSwap `images/` (Kaggle's "Celebrity Faces
Dataset", 17 people, loose crops and whole photos) and rifqifarhansyah/EigenFace-Recognition (10 classes of
Kaggle's "Pins Face Recognition", Pinterest crops); up to 40 photos each (exact duplicates skipped), a person in
two sources merged by name: 25 women, 25 men. The identities are split in two at random (seed 0), women and
men apart: `--part validation` chooses the threshold, `--part test` is measured once with the defaults. Each
identity keeps a random number of its photos (1 to all, seed 0), so that some people appear once and some
many times, as in an archive.

Each part's photos are linked into a folder under names that say nothing of the person, and `run --img FOLDER
--people --json --embeddings` runs on it as a user would (every face clustered, faces of one photo kept apart).
Each photo's labelled face is its largest; the other faces (bystanders) are clustered but not scored.

`--strangers N` adds N people seen once each, as in an archive where most people appear in one photo: FairFace
training photos (20,001-40,000, fetched from sumanvithaeadala/EthnicityDetection; FairFace's images are of
different people), the validation part's drawn from the first half of them and the test part's from the
second, with their labelled gender. Their count is given apart: how many people `run` makes of them.

    python benchmarks/people_photos.py --part validation   # the threshold sweep on the run's own embeddings
    python benchmarks/people_photos.py --part test         # BCubed, people counted, women per person
    python benchmarks/people_photos.py --part test --strangers 400   # and 400 people seen once
    python benchmarks/people_photos.py --part test --recurring       # run --people --recurring"""
import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from people import THRESHOLDS, bcubed  # benchmarks/people.py

from face_analysis.identity import clustering

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/work/data/people2")
STRANGERS = Path("/work/data/extra/FairFace")  # fairface_label_train.csv and train/
SOURCES = ("DS4002CS3", "EigenFace-Recognition", "MacFaceSwap")
WOMEN = {"adriana lima", "alexandra daddario", "alycia dabnem carey", "amanda crew", "amber heard",
         "america ferrera", "angelina jolie", "anne hathaway", "ayo edebiri", "elizabeth olsen", "jennifer lawrence",
         "kate winslet", "lucy liu", "margot robbie", "mariah carey", "maya rudolph", "megan fox", "natalie portman",
         "nicole kidman", "olivia rodrigo", "priyanka chopra", "salma hayek", "sandra bullock", "scarlett johansson",
         "sza"}


def identities() -> dict[str, list[Path]]:
    """Each person's photos, merged across the sources by name (lower case, without 'pins_' and dashes)."""
    people = defaultdict(list)
    for source in SOURCES:
        for folder in sorted((DATA / source).iterdir()):
            name = re.sub(r"\s+", " ", folder.name.removeprefix("pins_").replace("-", " ")).strip().lower()
            people[name] += sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return dict(people)


def sample(part: str, seed: int = 0) -> list[tuple[Path, str]]:
    """(photo, identity) pairs of one part, shuffled: half the women and half the men, each 1..all photos."""
    rng, people = np.random.default_rng(seed), identities()
    names = []
    for women in (True, False):
        group = sorted(n for n in people if (n in WOMEN) == women)
        chosen = [group[i] for i in rng.permutation(len(group))]
        names += chosen[:len(chosen) // 2] if part == "validation" else chosen[len(chosen) // 2:]
    pairs = []
    for name in sorted(names):
        photos = people[name]
        count = int(rng.integers(1, len(photos) + 1))
        pairs += [(photos[i], name) for i in rng.choice(len(photos), count, replace=False)]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def strangers(part: str, count: int, folder: Path = STRANGERS) -> list[tuple[Path, str]]:
    """(photo, identity) of `count` FairFace training photos, one person each, the women among them added to WOMEN:
    the validation part's from the first half of the files (sorted), the test part's from the second."""
    with open(folder / "fairface_label_train.csv", newline="") as file:
        labels = {row["file"]: row["gender"] for row in csv.DictReader(file)}
    files = sorted(labels)
    half = files[:len(files) // 2] if part == "validation" else files[len(files) // 2:]
    chosen = [half[i] for i in np.random.default_rng(1).choice(len(half), count, replace=False)]
    WOMEN.update(f"stranger {name}" for name in chosen if labels[name] == "Female")
    return [(folder / name, f"stranger {name}") for name in chosen]


def run_people(pairs, folder: Path, options=()) -> tuple[list[dict], dict]:
    """`run --people` (and options) on links to the photos: (the JSON results, the embeddings file's arrays)."""
    photos = folder / "photos"
    photos.mkdir()
    for i, (path, _) in enumerate(pairs):
        (photos / f"{i:05d}{path.suffix.lower()}").symlink_to(path)
    command = [sys.executable, str(ROOT / "src" / "main.py"), "run", "--img", str(photos), "--people", "--json",
               str(folder / "results.json"), "--embeddings", str(folder / "faces.npz"), "--quiet", *options]
    subprocess.run(command, check=True)
    with np.load(folder / "faces.npz") as arrays:
        embeddings = {key: arrays[key] for key in arrays.files}
    return json.loads((folder / "results.json").read_text()), embeddings


def scored_faces(results: list[dict], pairs) -> list[dict]:
    """Per photo with a face found: its identity, its largest face's index, person and probability of female."""
    rows = []
    for result in results:
        faces = result.get("faces") or []
        if not faces:
            continue
        index = int(Path(result["image"]).stem)
        best = max(range(len(faces)), key=lambda i: faces[i]["box"][2] * faces[i]["box"][3])
        face = faces[best]
        female = None if face.get("gender") is None else (
            face["gender_probability"] if face["gender"] == "female" else 1 - face["gender_probability"])
        rows.append({"image": Path(result["image"]).name, "face": best, "name": pairs[index][1],
                     "person": face.get("person"), "female": female})
    return rows


def measure(rows: list[dict], people: list) -> dict:
    """BCubed of the people against the identities (faces with a person), people counted, women per person."""
    kept = [(r, p) for r, p in zip(rows, people) if p is not None]
    names = [r["name"] for r, _ in kept]
    precision, recall = bcubed(names, [p for _, p in kept])
    female = defaultdict(list)
    for r, p in kept:
        if r["female"] is not None:
            female[p].append(r["female"])
    return {"faces": len(kept), "precision": precision, "recall": recall, "people": len({p for _, p in kept}),
            "true_people": len(set(names)), "women": 100 * np.mean([np.mean(v) >= 0.5 for v in female.values()]),
            "true_women": 100 * np.mean([n in WOMEN for n in set(names)])}


def line(f: dict) -> str:
    return (f"{f['faces']} faces: BCubed precision {f['precision']:.3f} recall {f['recall']:.3f}; people "
            f"{f['people']} of {f['true_people']}; women per person {f['women']:.1f} % (truly {f['true_women']:.1f} %)")


def sweep(rows: list[dict], embeddings: dict) -> None:
    """The thresholds of the average linkage on the run's own embeddings (all faces, kept apart by photo)."""
    where = {(str(Path(image).name), int(face)): i for i, (image, face) in
             enumerate(zip(embeddings["image"], embeddings["face"]))}
    for threshold in THRESHOLDS:
        labels = clustering.cluster_embeddings(embeddings["embedding"], threshold, photos=embeddings["image"])
        people = [labels[where[r["image"], r["face"]]] if (r["image"], r["face"]) in where else None for r in rows]
        print(f"threshold {threshold:.2f}: {line(measure(rows, people))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("validation", "test"), default="validation")
    parser.add_argument("--recurring", action="store_true", help="run with --recurring")
    parser.add_argument("--strangers", type=int, default=0, metavar="N",
                        help="add N people seen once each (FairFace training photos)")
    args = parser.parse_args()
    pairs = sample(args.part)
    if args.strangers:
        pairs += strangers(args.part, args.strangers)
        pairs = [pairs[i] for i in np.random.default_rng(0).permutation(len(pairs))]
    with tempfile.TemporaryDirectory() as folder:
        results, embeddings = run_people(pairs, Path(folder), ["--recurring"] if args.recurring else [])
    rows = scored_faces(results, pairs)
    print(f"{args.part}: {len(pairs)} photos of {len({n for _, n in pairs})} people, {len(rows)} with a face; "
          f"{len(embeddings['embedding'])} faces told apart in all")
    method = f"threshold {clustering.THRESHOLD}" + (", --recurring" if args.recurring else "")
    print(f"as run numbered them ({method}): {line(measure(rows, [r['person'] for r in rows]))}")
    if args.strangers:
        seen_once = [r for r in rows if r["name"].startswith("stranger ") and r["person"] is not None]
        others = {r["person"] for r in rows if not r["name"].startswith("stranger ")}
        print(f"strangers: {len(seen_once)} faces of as many people made {len({r['person'] for r in seen_once})} "
              f"people; {sum(r['person'] in others for r in seen_once)} of them numbered as a repeated person")
    if args.part == "validation":
        sweep(rows, embeddings)


if __name__ == "__main__":
    main()
