"""`report`: the share of each class of each attribute among a collection's analysed faces (or its people:
reporting.people), counted and corrected, with intervals; as dataclasses, a text table and the JSON of issue 24."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from face_analysis.reporting import quantify
from face_analysis.reporting.attributes import ATTRIBUTES, ReportError
from face_analysis.reporting.calibration import SMALL_FACE, Calibration, small_faces_notes
from face_analysis.reporting.correction import corrected_shares, method_of
from face_analysis.reporting.people import people_totals
from face_analysis.reporting.reading import CHUNK_FACES, LEFT_OUT, read_faces

MAX_FACES = 1_000_000  # faces kept for the estimates (beyond: a uniform sample of this many); counts are exact
# bootstrap replicates: 0 (no interval) or this many at least (fewer give no percentile interval worth the
# name) and at most (the time and memory grow with them)
MIN_BOOTSTRAP, MAX_BOOTSTRAP = 10, 10_000


@dataclass
class ClassShare:
    """One class's share of the faces (0 to 1): the corrected estimate, its interval (None without a
    bootstrap), the counted share."""

    estimate: float
    low: float | None
    high: float | None
    counted: float

    def to_json(self, digits: int = 4) -> dict:
        return {k: None if getattr(self, k) is None else round(getattr(self, k), digits)
                for k in ("estimate", "low", "high", "counted")}

    def interval_text(self, dash: str = "-") -> str:
        """"12.3 - 45.6 %", or "—" without an interval."""
        return "—" if self.low is None else f"{100 * self.low:5.1f} {dash} {100 * self.high:5.1f} %"


@dataclass
class GroupReport:
    """The faces of one class of the `by` attribute: its share and the other attributes' shares within it."""

    share: ClassShare
    counted_faces: int  # faces whose most probable class it is (people; screen_time: frames of people)
    attributes: dict[str, dict[str, ClassShare]]


@dataclass
class Report:
    faces: int
    skipped: dict[str, int]  # too_small, no_face (images without a face; a CSV does not list them), failed
    attributes: dict[str, dict[str, ClassShare]]
    method: str
    model: str | None
    confidence: float = 0.95
    calibration_faces: int = 0
    by: str | None = None
    groups: dict[str, GroupReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    people: int | None = None  # counting people: how many (the shares are then of them, not of the faces)
    count: str = "faces"  # what the shares are of: faces, people, or screen_time (people weighed by frames)

    def to_json(self) -> dict:
        """Issue 24's schema; with `by`, "by": {"attribute": ..., "groups": {class: {"share": {...},
        "attributes": {...}}}} as well."""
        data = {"faces": self.faces, "skipped": dict(self.skipped),
                "attributes": {a: {c: s.to_json() for c, s in shares.items()} for a, shares in self.attributes.items()},
                "method": self.method, "model": self.model, **({} if self.people is None else {"people": self.people}),
                **({} if self.count == "faces" else {"count": self.count})}
        if self.by:
            data["by"] = {"attribute": self.by, "groups": {
                name: {"share": g.share.to_json(), "counted_faces": g.counted_faces,
                       "attributes": {a: {c: s.to_json() for c, s in shares.items()}
                                      for a, shares in g.attributes.items()}}
                for name, g in self.groups.items()}}
        return data

    def to_text(self) -> str:
        """A table per attribute (and per group with `by`): counted share, corrected share, interval."""
        level = f"{self.confidence:.0%}".replace("%", " %")
        counted = "" if self.people is None else (f"{self.people} people counted once each, in " if self.count ==
                                                  "people" else f"{self.people} people weighed by time on screen, in ")
        lines = [f"{counted}{self.faces} faces analysed ({self.skipped['too_small']} too small, left out; "
                 f"{self.skipped['no_face']} images without a face; {self.skipped['failed']} failed), "
                 f"model {self.model or 'not named'}, method {self.method}, calibration set "
                 f"{self.calibration_faces} faces"]
        blocks = [("", self.attributes)] + [(f"{self.by} {name}: ", g.attributes) for name, g in self.groups.items()]
        for prefix, attributes in blocks:
            for attribute, shares in attributes.items():
                lines += ["", f"{prefix}{attribute}",
                          f"  {'class':<10} {'counted':>8} {'corrected':>10}   {level} interval"]
                for name, s in shares.items():
                    lines.append(f"  {name:<10} {100 * s.counted:7.1f} % {100 * s.estimate:8.1f} %   "
                                 f"{s.interval_text()}")
        lines += [""] + [f"note: {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"


class _Sample:
    """A uniform sample of at most `size` faces (random keys, the smallest kept) and exact argmax counts; each
    face may carry a weight (screen_time: a person's frames), which the counts and the sample keep."""

    def __init__(self, attributes: list[str], by: str | None, size: int, seed: int):
        self.attributes, self.by, self.size = attributes, by, size
        self.rng = np.random.default_rng(seed)
        self.parts = {a: [] for a in attributes}
        self.keys: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.faces, self.kept, self.weight, self.weighted = 0, 0, 0.0, False
        self.counts = {a: np.zeros(len(ATTRIBUTES[a])) for a in attributes}
        self.pair_counts = {a: np.zeros((len(ATTRIBUTES[a]), len(ATTRIBUTES[by])))
                            for a in attributes if by and a != by}

    def add(self, probs: dict[str, np.ndarray], weights: np.ndarray | None = None) -> None:
        n = len(probs[self.attributes[0]])
        if not n:
            return
        self.weighted |= weights is not None
        weights = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        self.faces += n
        self.weight += float(weights.sum())
        best = {a: probs[a].argmax(1) for a in self.attributes}
        for a in self.attributes:
            self.counts[a] += np.bincount(best[a], weights, minlength=len(self.counts[a]))
        for a, counts in self.pair_counts.items():
            np.add.at(counts, (best[a], best[self.by]), weights)
        for a in self.attributes:
            self.parts[a].append(probs[a])
        self.weights.append(weights)
        self.keys.append(self.rng.random(n))
        self.kept += n
        if self.kept > 2 * self.size:
            self._compact()

    def _compact(self) -> None:
        keys = np.concatenate(self.keys)
        keep = np.argpartition(keys, self.size)[:self.size] if len(keys) > self.size else np.arange(len(keys))
        self.keys = [keys[keep]]
        self.weights = [np.concatenate(self.weights)[keep]]
        for a in self.attributes:
            self.parts[a] = [np.concatenate(self.parts[a])[keep]]
        self.kept = len(keep)

    def arrays(self) -> dict[str, np.ndarray]:
        self._compact()
        return {a: self.parts[a][0].astype(np.float64) for a in self.attributes}

    def kept_weights(self) -> np.ndarray | None:
        """The weights of the faces `arrays` gives (None: none was given a weight)."""
        self._compact()
        return self.weights[0] if self.weighted else None


def _shares(names, point, replicates, confidence, counted, allowance: float = 0.0, span=None) -> dict[str, ClassShare]:
    """Each class's share; its interval from the bootstrap replicates (widened by `allowance`, spanning `span`:
    correction.corrected_shares), None without them."""
    low, high = (quantify.interval(point, replicates, confidence, allowance, span) if len(replicates)
                 else ([None] * len(point),) * 2)
    return {name: ClassShare(float(point[i]), None if low[i] is None else float(low[i]),
                             None if high[i] is None else float(high[i]), float(counted[i]))
            for i, name in enumerate(names)}


def _fresh(seen: set, keys: np.ndarray) -> np.ndarray:
    """Which faces are not duplicates of one read before (key 0: not known, never a duplicate); adds theirs."""
    fresh = np.ones(len(keys), bool)
    for i, key in enumerate(keys.tolist()):
        if key and key in seen:
            fresh[i] = False
        elif key:
            seen.add(key)
    return fresh


def _reading_notes(duplicates: dict[str, int], frames: dict[str, int], inputs: int) -> list[str]:
    """The notes on faces read twice, faces that cannot be told apart and video frames."""
    notes = []
    if duplicates["unknown"] and inputs > 1:
        notes.append(f"{duplicates['unknown']} faces have no image name or box: were some read twice (one run's "
                     "results in two formats), they would be counted twice")
    if duplicates["faces"] or duplicates["images"]:
        parts = [f"{n} {what}" for what, n in (("faces", duplicates["faces"]),
                                                ("images without a face", duplicates["images"])) if n]
        notes.append(f"left out {' and '.join(parts)} read before (the same image and face box in more than one "
                     "input: one run's results given twice, or in two formats); each is counted once")
    notes += [f"{source}: {n} video frames; a face is counted in every frame it is in, so these are shares of "
              "time on screen, not of people (a person seen in 50 frames counts 50 times)"
              for source, n in frames.items() if n]
    return notes


def report(paths, calibration: Calibration, by: str | None = None, method: str | None = None,
           attributes=None, confidence: float = 0.95, bootstrap: int = 200, seed: int = 0,
           max_faces: int = MAX_FACES, bootstrap_faces: int = 100_000, chunk_faces: int = CHUNK_FACES,
           stratified: bool = True, count: str = "faces") -> Report:
    """The report of one or more results of `run` (JSON, JSONL, CSV files, Parquet folders or files).

    calibration: the model's (calibration.load_calibration); by: an attribute whose classes also get the
    other attributes' shares within them; method: one of quantify.METHODS for every attribute (default: each
    attribute's quantify.DEFAULT_METHODS, also within `by` groups); bootstrap: replicates for the
    intervals (0: none, the intervals are None; else MIN_BOOTSTRAP to MAX_BOOTSTRAP); the same face (image and
    box) read twice is counted once; stratified: see corrected_shares (shares within `by`
    groups are corrected on the joint classes of the two attributes alone); count: "faces", or "people"
    (reporting.people: each person of `run --people` once, with the mean of their faces' probabilities), or
    "screen_time" (video results: each person weighed by the frames they are in)."""
    if method is not None and method not in quantify.METHODS:
        raise ReportError(f"unknown method {method!r}; choose one of {', '.join(quantify.METHODS)}")
    attributes = [a for a in (attributes or ATTRIBUTES) if a in calibration.probs]
    methods = {a: method_of(a, method) for a in attributes}
    if not attributes:
        raise ReportError("the calibration set has none of the attributes asked for")
    if by and by not in attributes:
        raise ReportError(f"--by {by}: not an attribute of this report ({', '.join(attributes)})")
    if 0 < bootstrap < MIN_BOOTSTRAP or bootstrap > MAX_BOOTSTRAP:
        raise ReportError(f"bootstrap {bootstrap}: give 0 (no interval) or {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP} "
                          "replicates")
    sample, totals = _Sample(attributes, by, max_faces, seed), people_totals(count, attributes)
    skipped = dict.fromkeys(LEFT_OUT, 0)
    model, notes, sources, seen, frames = None, [], [], set(), {}
    duplicates, small = {"faces": 0, "images": 0, "unknown": 0}, 0
    for chunk in read_faces(paths, attributes, chunk_faces):
        if chunk.source not in sources:
            sources.append(chunk.source)
        notes += [n for n in chunk.notes if n not in notes]
        frames[chunk.source] = frames.get(chunk.source, 0) + chunk.frames
        if chunk.models:
            model = next(iter(chunk.models))
            if calibration.model_type and model != calibration.model_type:
                raise ReportError(f"{chunk.source}: results of the {model} model; the calibration is the "
                                  f"{calibration.model_type} model's (give that model's --model_path)")
        fresh = _fresh(seen, chunk.keys)
        duplicates["faces"] += int((~fresh).sum())
        small += int((chunk.sizes[fresh] < SMALL_FACE).sum())
        duplicates["unknown"] += int((chunk.keys == 0).sum())
        if totals is None:
            sample.add({a: p[fresh] for a, p in chunk.probs.items()})
        else:
            totals.add({a: p[fresh] for a, p in chunk.probs.items()}, chunk.persons[fresh], chunk.results)
        for kind, keys in chunk.skipped.items():
            fresh = _fresh(seen, keys)
            skipped[kind] += int(fresh.sum())
            duplicates["faces" if kind == "too_small" else "images"] += int((~fresh).sum())
    if count == "screen_time" and not sum(frames.values()):
        raise ReportError(f"{', '.join(sources)}: no video frames (results of `run --img`); --count screen_time "
                          "weighs each person by the frames they are in: give `run --video --people` results, or "
                          "count people")
    if totals is not None:
        sample.add(totals.means(sources), totals.frames() if count == "screen_time" else None)
        notes += totals.notes(count)
    if not sample.faces:
        raise ReportError(f"{', '.join(sources) or 'the results'}: no analysed face in them ({skipped['too_small']} "
                          f"too small, {skipped['no_face']} images without a face, {skipped['failed']} failed)")
    faces = sample.faces if totals is None else totals.faces
    notes += _reading_notes(duplicates, frames if totals is None else {},
                            1 if isinstance(paths, (str, Path)) else len(paths)) + small_faces_notes(small, faces)
    if sample.faces > max_faces:
        notes.append(f"the corrected shares use a uniform sample of {max_faces} of the {sample.faces} faces")
    probs, weights = sample.arrays(), sample.kept_weights()
    notes += [f"{a}: counted, not corrected (no correction beat counting on the validation photos); its interval "
              "is widened by what counting misses there and spans the corrected shares"
              for a in attributes if method is None and methods[a] == "cc"]
    named = method or ", ".join(f"{a} {m}" for a, m in methods.items())
    result = Report(faces, skipped, {}, named,
                    model or calibration.model_type, confidence, len(calibration), by, {}, notes,
                    None if totals is None else sample.faces, count)
    for i, attribute in enumerate(attributes):
        found = corrected_shares(methods[attribute], calibration, probs, attribute, bootstrap, seed + i,
                                 bootstrap_faces, stratified, weights)
        result.attributes[attribute] = _shares(ATTRIBUTES[attribute], found.point, found.replicates, confidence,
                                               sample.counts[attribute] / sample.weight, found.allowance, found.span)
    if by:
        groups = ATTRIBUTES[by]
        within = {g: {} for g in groups}
        for i, attribute in enumerate(a for a in attributes if a != by):
            cal_probs, cal_labels = calibration.arrays([attribute, by])
            found = quantify.estimate(methods[attribute], cal_probs, cal_labels, [probs[attribute], probs[by]],
                                      bootstrap, seed + 100 + i, bootstrap_faces, weights)
            k = len(ATTRIBUTES[attribute])
            point = found.point.reshape(k, len(groups))
            replicates = found.replicates.reshape(-1, k, len(groups))
            counts = sample.pair_counts[attribute]
            for j, group in enumerate(groups):
                share = point[:, j] / max(point[:, j].sum(), 1e-12)
                shares = replicates[:, :, j] / np.maximum(replicates[:, :, j].sum(1, keepdims=True), 1e-12)
                within[group][attribute] = _shares(ATTRIBUTES[attribute], share, shares, confidence,
                                                   counts[:, j] / max(counts[:, j].sum(), 1))
        result.groups = {g: GroupReport(result.attributes[by][g], int(round(sample.counts[by][j])), within[g])
                         for j, g in enumerate(groups)}
    return result
