"""Counting people: how well `run --people`'s person numbers match true identities, and the choices behind them.

The data: the celebrity sample of ElisonSherton/Face-Applications (GitHub, datasets/celebrity_images: 24
people, 22 to 936 photos each, 112x112 aligned crops sampled from Glint360k), fetched once under
/work/data/people/ (never in the repository). Each crop is enlarged twice and set in a border of its own edge
pixels (352x352), so that the detector finds it and `run`'s crops work as on a photo. The identities are split
in two, six women and six men each: `--part validation` (choose the crop, method, threshold and minimum face
size) and `--part test` (measured once with the choices). Each identity keeps a random number of its photos
(uniformly 1 to 150, seed 0), so that some people appear once and some a hundred times, as in an archive.

    python benchmarks/people.py --part validation     # the sweep: crops x methods x thresholds, face sizes
    python benchmarks/people.py --part test           # BCubed, people counted, share of women per person

BCubed precision/recall (Amigo et al., 2009): per face, the share of the faces in its predicted person that are
truly its identity / of its identity's faces that are in its predicted person; averaged over faces."""
import argparse
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.identity import clustering, embedding

DATA = Path("/work/data/people/datasets/celebrity_images")
WOMEN = {"Drew Barrymore", "Gwyneth Paltrow", "Halle Berry", "Jennifer Aniston", "Jennifer Lopez", "Jessica Alba",
         "Kate Winslet", "Keira Knightley", "Lindsay Lohan", "Miley Cyrus", "Tina Fey", "Victoria Beckham"}
PARTS = {
    "validation": ["Drew Barrymore", "Halle Berry", "Jennifer Lopez", "Kate Winslet", "Lindsay Lohan", "Tina Fey",
                   "Barack Obama", "Hugh Jackman", "James Spader", "Leonardo DiCaprio", "Robert Downey Jr",
                   "Tom Hanks"],
    "test": ["Gwyneth Paltrow", "Jennifer Aniston", "Jessica Alba", "Keira Knightley", "Miley Cyrus",
             "Victoria Beckham", "Daniel Radcliffe", "Hugh Laurie", "Keanu Reeves", "Mark Ruffalo", "Simon Cowell",
             "Will Smith"],
}
MAX_PHOTOS = 150
THRESHOLDS = (1.0, 1.05, 1.08, 1.1, 1.12, 1.15, 1.2)  # the sweep on the embeddings run computes


def sample(part: str, seed: int = 0) -> list[tuple[Path, str]]:
    """(photo, identity) pairs of one part: each identity 1..150 of its photos, shuffled."""
    rng, pairs = np.random.default_rng(seed), []
    for name in PARTS[part]:
        photos = sorted((DATA / name).iterdir())
        count = min(len(photos), int(rng.integers(1, MAX_PHOTOS + 1)))
        pairs += [(photos[i], name) for i in rng.choice(len(photos), count, replace=False)]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def as_photo(path: Path, face: int | None = None) -> np.ndarray:
    """The RGB 112x112 crop enlarged twice in a border of its own edges; face: shrunk so the face is ~N px."""
    chip = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    photo = cv2.copyMakeBorder(cv2.resize(chip, (224, 224), interpolation=cv2.INTER_LINEAR),
                               64, 64, 64, 64, cv2.BORDER_REPLICATE)
    if face:  # the detected box of an enlarged chip is about 150 px high
        side = max(24, int(round(352 * face / 150)))
        photo = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return photo


def bcubed(truth, predicted) -> tuple[float, float]:
    """BCubed precision and recall of predicted labels against true ones (faces with a prediction only)."""
    pairs = defaultdict(int)
    for t, p in zip(truth, predicted):
        pairs[t, p] += 1
    per_true, per_pred = defaultdict(int), defaultdict(int)
    for (t, p), n in pairs.items():
        per_true[t] += n
        per_pred[p] += n
    count = len(truth)
    precision = sum(n * n / per_pred[p] for (t, p), n in pairs.items()) / count
    recall = sum(n * n / per_true[t] for (t, p), n in pairs.items()) / count
    return precision, recall


def faces_of(analyzer: FaceAnalyzer, pairs, widens, face: int | None = None):
    """Per photo whose face is found (largest face): identity, female probability, the embedding `run` computes,
    and identity crops per widen (for the full network's sweep)."""
    rows = []
    for path, name in pairs:
        photo = as_photo(path, face)
        prepared = analyzer.prepare(photo)
        if not prepared.detections:
            continue
        predictions = analyzer.finish([prepared])[0]
        best = max(range(len(predictions)), key=lambda i: predictions[i].face_size)
        p = predictions[best]
        female = (p.gender_probability if p.gender == "female" else 1 - p.gender_probability) if p.gender else None
        embedded = analyzer.identities([prepared], [predictions])[0][best]  # as run computes it
        rows.append({"name": name, "female": female, "size": p.face_size, "embedding": embedded, "crops": {
            w: embedding.identity_crops(photo, [prepared.detections[best].box], analyzer.detector.chip_crop, w)[0]
            for w in widens}})
    return rows


def cached_faces(analyzer, pairs, widens, name: str):
    """faces_of, kept in /work/data/people/cache (crops of the identity photos: outside the repository)."""
    import pickle

    path = DATA.parent.parent / "cache" / f"{name}-{analyzer.model_type}-{analyzer.embedder.from_stem}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    rows = faces_of(analyzer, pairs, widens)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(rows))
    return rows


def embed(embedder, rows, widen, mirror=False) -> np.ndarray:
    return embedder.embed(np.stack([r["crops"][widen] for r in rows]), mirror=mirror)


def measure(rows, labels) -> dict:
    """BCubed, the number of people, and the share of women per person (mean probability over faces)."""
    names = [r["name"] for r in rows]
    precision, recall = bcubed(names, labels)
    people = defaultdict(list)
    for r, label in zip(rows, labels):
        if r["female"] is not None:
            people[label].append(r["female"])
    women = np.mean([np.mean(v) >= 0.5 for v in people.values()])
    true_women = np.mean([n in WOMEN for n in set(names)])
    return {"precision": precision, "recall": recall, "people": len(set(labels)), "true_people": len(set(names)),
            "women": 100 * women, "true_women": 100 * true_women}


def line(figures: dict) -> str:
    return (f"BCubed precision {figures['precision']:.3f} recall {figures['recall']:.3f}; people "
            f"{figures['people']} of {figures['true_people']}; women per person {figures['women']:.1f} % "
            f"(truly {figures['true_women']:.1f} %)")


def validation(analyzer, embedder) -> None:
    pairs = sample("validation")
    widens = (1.0, 1.25, 1.5)
    rows = cached_faces(analyzer, pairs, widens, "validation")
    print(f"validation: {len(pairs)} photos of {len(PARTS['validation'])} people, {len(rows)} faces found")
    for widen in widens:
        vectors = embed(embedder, rows, widen)
        for method in ("average", "components"):
            for threshold in ((0.85, 0.9, 0.95) if method == "components" else (0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25)):
                figures = measure(rows, clustering.cluster_embeddings(vectors, threshold, method=method))
                print(f"widen {widen:4.2f} {method:10s} threshold {threshold:.2f}: {line(figures)}")
    vectors = np.stack([r["embedding"] for r in rows])
    for threshold in THRESHOLDS:
        figures = measure(rows, clustering.cluster_embeddings(vectors, threshold))
        print(f"as run computes it (from the model's stem: {analyzer.embedder.from_stem}), widen "
              f"{embedding.IDENTITY_WIDEN} {clustering.METHOD} threshold {threshold:.2f}: {line(figures)}")
    embedding.IDENTITY_MIN_FACE = 0  # the sweep that chooses that floor: every face embedded
    for face in (20, 24, 32, 40, 48, 64):
        small = faces_of(analyzer, pairs, (embedding.IDENTITY_WIDEN,), face)
        figures = measure(small, clustering.cluster_embeddings(np.stack([r["embedding"] for r in small])))
        print(f"faces of ~{face} px ({len(small)} found, median box {np.median([r['size'] for r in small]):.0f} px): "
              f"{line(figures)}")


def test(analyzer) -> None:
    pairs = sample("test")
    rows = faces_of(analyzer, pairs, (embedding.IDENTITY_WIDEN,))
    print(f"test: {len(pairs)} photos of {len(PARTS['test'])} people, {len(rows)} faces found")
    labels = clustering.cluster_embeddings(np.stack([r["embedding"] for r in rows]))
    print(f"as run computes it (from the model's stem: {analyzer.embedder.from_stem}), widen "
          f"{embedding.IDENTITY_WIDEN} {clustering.METHOD} threshold {clustering.THRESHOLD}: "
          f"{line(measure(rows, labels))}")
    joined = clustering.cluster_embeddings(np.stack([r["embedding"] for r in rows]), join_fragments=True)
    print(f"with --recurring: {line(measure(rows, joined))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("validation", "test"), default="validation")
    parser.add_argument("--model_type", default="facenet")
    args = parser.parse_args()
    started = time.perf_counter()
    analyzer = FaceAnalyzer(args.model_type, people=True)
    if args.part == "validation":
        validation(analyzer, embedding.FaceEmbedder())
    else:
        test(analyzer)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
