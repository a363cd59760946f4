"""How far off are a collection's shares, counted and corrected, and do the intervals hold the truth? The
choice of `report`'s default methods (issue 24).

A labelled prediction table (one row a face: true labels and the model's probabilities) is resampled into
skewed collections (80 % of each race group, 90 % women, 90 % men, children only (0-19), elders only (60+), and
the table's own mix), several seeds each; every method is fitted on a separate calibration table. Reported per
method: the total absolute error of the five race shares, the error of the share of women and the total of
the nine age groups' (points), and how often the 95 % intervals hold the true share, and their mean width.
The corrections are report's (reporting.correction.corrected_shares: stratified unless --unstratified).

Table format (reporting.calibration.labelled_arrays; a CSV): columns "race", "gender" (class names or
indices), "age_group" (group name, "more than 70" too) or "age_lo"/"age" (years), and the probabilities as
run's CSV names them ("race_probabilities.white", ..., "gender_probabilities.female", ...,
"age_group_probabilities.0-2", ...); rows with "found" false are left out. FairFace's test part (evaluate's
predictions.csv has these columns) against the calibration the model ships with (`calibrate`: its validation
parts), or a table of other faces (`evaluate --split val`'s predictions.csv):

    python src/main.py evaluate --data_path ../shared/data/FairFace --model_path saved_model/facenet_model
    python benchmarks/audit.py --calibration saved_model/facenet_model \
        --table statistics/model_metrics/facenet_model_stats/fairface/predictions.csv
    python benchmarks/audit.py --synthetic          # the simulated classifier of reporting.synthetic
"""
import argparse
import sys
import time

import numpy as np
import pandas as pd

from face_analysis.reporting import quantify
from face_analysis.reporting.attributes import ATTRIBUTES
from face_analysis.reporting.calibration import Calibration, labelled_arrays, load_calibration
from face_analysis.reporting.correction import corrected_shares, method_of
from face_analysis.reporting.synthetic import simulate

DEFAULT = "default"  # --methods: each attribute's own default method (correction.method_of), as `report` runs


def collections(labels: dict[str, np.ndarray], hard: bool = False) -> dict[str, tuple[np.ndarray, int | None]]:
    """(sampling weights of each row, size or None for --size) of every collection: issue 24's skewed ones, or
    with `hard` issue 37's (one race only, one gender only, children 0-9, elders 60+, one class absent, and
    100, 250 and 1,000 faces at random)."""
    race, gender, age = labels["race"], labels["gender"], labels["age_group"]
    out = {}

    def mix(inside: np.ndarray, share: float) -> np.ndarray:
        return np.where(inside, share / max(inside.sum(), 1), (1 - share) / max((~inside).sum(), 1))

    if hard:
        for i, name in enumerate(ATTRIBUTES["race"]):
            out[f"{name} only"] = ((race == i).astype(float), None)
        for i, name in enumerate(ATTRIBUTES["gender"]):
            out[f"{name} only"] = ((gender == i).astype(float), None)
        out["children (0-9) only"] = ((age <= 1).astype(float), None)
        out["elders (60+) only"] = ((age >= 7).astype(float), None)
        out["no indian"] = ((race != ATTRIBUTES["race"].index("indian")).astype(float), None)
        for size in (100, 250, 1000):
            out[f"{size} at random"] = (np.ones(len(race)), size)
    else:
        for i, name in enumerate(ATTRIBUTES["race"]):
            out[f"80 % {name}"] = (mix(race == i, 0.8), None)
        out["90 % women"] = (mix(gender == ATTRIBUTES["gender"].index("female"), 0.9), None)
        out["90 % men"] = (mix(gender == ATTRIBUTES["gender"].index("male"), 0.9), None)
        out["children (0-19)"] = ((age <= 2).astype(float), None)
        out["elders (60+)"] = ((age >= 7).astype(float), None)
        out["as the table"] = (np.ones(len(race)), None)
    return {name: (w / w.sum(), size) for name, (w, size) in out.items() if w.sum() > 0}  # (a table without elders has none)


def draw(weights: np.ndarray, size: int, rng) -> np.ndarray:
    """size rows drawn by weight: rows of equal weight form a stratum, whose number of rows is drawn first
    (multinomial); each stratum's rows are then taken without repeats when it has enough of them. (One weighted
    draw without replacement would not skew: 1,000 of 1,008 rows are nearly all of them, whatever the weights.)"""
    values = np.unique(weights[weights > 0])
    mass = np.array([weights[weights == value].sum() for value in values])
    counts = rng.multinomial(size, mass / mass.sum())
    picks = []
    for value, count in zip(values, counts):
        rows = np.flatnonzero(weights == value)
        picks.append(rng.choice(rows, count, replace=count > len(rows)))
    return np.concatenate(picks)


def run(probs, labels, calibration: Calibration, methods, size, seeds, bootstrap, attributes,
        stratified: bool = True, hard: bool = False) -> pd.DataFrame:
    rows = []
    for name, (weights, own_size) in collections(labels, hard).items():
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            # a collection of one group holds each of its faces once when it has enough of them
            picked = draw(weights, min(own_size or size, int((weights > 0).sum())), rng)
            for attribute in attributes:
                k = len(ATTRIBUTES[attribute])
                known = labels[attribute][picked] >= 0
                truth = np.bincount(labels[attribute][picked][known], minlength=k) / known.sum()
                faces = {a: p[picked].astype(np.float64) for a, p in probs.items()}
                for method in methods:
                    started = time.perf_counter()
                    found = corrected_shares(method_of(attribute, None if method == DEFAULT else method),
                                             calibration, faces, attribute, bootstrap, seed, stratified=stratified)
                    low, high = quantify.interval(found.point, found.replicates, allowance=found.allowance, span=found.span)
                    raw_low, raw_high = quantify.interval(found.point, found.replicates)
                    for i, cls in enumerate(ATTRIBUTES[attribute]):
                        rows.append({"collection": name, "seed": seed, "attribute": attribute, "method": method,
                                     "class": cls, "truth": truth[i], "estimate": found.point[i], "low": low[i],
                                     "high": high[i], "raw_low": raw_low[i], "raw_high": raw_high[i],
                                     "faces": len(picked), "seconds": time.perf_counter() - started})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method: errors (points) over collections and seeds, interval coverage and width."""
    frame = frame.assign(error=(frame["estimate"] - frame["truth"]).abs() * 100,
                         covered=(frame["low"] <= frame["truth"] + 1e-9) & (frame["truth"] <= frame["high"] + 1e-9),
                         width=(frame["high"] - frame["low"]) * 100)
    per_case = frame.groupby(["method", "attribute", "collection", "seed"])["error"].sum().reset_index()
    per_case.loc[per_case["attribute"] == "gender", "error"] /= 2  # the error of the share of women
    out = []
    for method, cases in per_case.groupby("method", sort=False):
        row = {"method": method}
        for attribute, short in (("race", "race"), ("gender", "gender"), ("age_group", "age")):
            errors = cases[cases["attribute"] == attribute]
            if len(errors):
                row[f"{short} mean"] = errors["error"].mean()
                row[f"{short} worst collection"] = errors.groupby("collection")["error"].mean().max()
        mine = frame[frame["method"] == method]
        for attribute, short in (("race", "race"), ("gender", "gender"), ("age_group", "age")):
            part = mine[mine["attribute"] == attribute]
            if len(part):
                row[f"{short} coverage %"] = 100 * part["covered"].mean()
                row[f"{short} width"] = part["width"].mean()
        row["seconds per estimate"] = mine.groupby(["attribute", "collection", "seed"])["seconds"].first().mean()
        out.append(row)
    return pd.DataFrame(out)


def per_collection(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """Counted (cc) and `method`'s race and gender errors per collection (mean over seeds)."""
    frame = frame.assign(error=(frame["estimate"] - frame["truth"]).abs() * 100)
    sums = frame.groupby(["method", "attribute", "collection", "seed"], sort=False)["error"].sum().reset_index()
    sums.loc[sums["attribute"] == "gender", "error"] /= 2
    table = sums[sums["method"].isin(["cc", method])].pivot_table(
        index="collection", columns=["attribute", "method"], values="error", sort=False)
    return table.round(1)


def coverage_table(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per collection, for `method`: faces, errors (race and age groups: total of the shares; gender: the share
    of women; points, mean over seeds), the share of classes whose interval holds the truth (race, gender and
    age groups together) and the intervals of zero width."""
    mine = frame[frame["method"] == method].assign(
        error=lambda f: (f["estimate"] - f["truth"]).abs() * 100,
        covered=lambda f: (f["low"] <= f["truth"] + 1e-9) & (f["truth"] <= f["high"] + 1e-9),
        zero=lambda f: f["high"] - f["low"] < 1e-6)
    rows = []
    for name, part in mine.groupby("collection", sort=False):
        errors = part.groupby(["attribute", "seed"])["error"].sum().groupby("attribute").mean()
        rows.append({"collection": name, "faces": int(part["faces"].mean()),
                     "race error": errors.get("race", np.nan), "gender error": errors.get("gender", np.nan) / 2,
                     "age group error": errors.get("age_group", np.nan),
                     "held %": 100 * part["covered"].mean(), "zero width": int(part["zero"].sum())})
    table = pd.DataFrame(rows)
    total = {"collection": "all", "faces": np.nan, "held %": 100 * mine["covered"].mean(),
             "zero width": int(mine["zero"].sum())}
    return pd.concat([table, pd.DataFrame([total])]).round(1)


def allowances(frame: pd.DataFrame, method: str, coverage: float = 0.95, narrowing: float = 1.0) -> dict[str, float]:
    """Per attribute, the smallest widening of `method`'s intervals (without ALLOWANCES) on each side that makes
    them hold the truth for `coverage` of the (collection, seed, class) rows (quantify.ALLOWANCES), the intervals
    first narrowed around the estimate by `narrowing` (a calibration set twice as large: 1 / sqrt(2))."""
    mine = frame[frame["method"] == method]
    low = mine["estimate"] - (mine["estimate"] - mine["raw_low"]) * narrowing
    high = mine["estimate"] + (mine["raw_high"] - mine["estimate"]) * narrowing
    miss = np.maximum(np.maximum(low - mine["truth"], mine["truth"] - high), 0)
    return {a: float(np.quantile(miss[mine["attribute"] == a], coverage)) for a in mine["attribute"].unique()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="the labelled prediction table to resample (CSV)")
    source.add_argument("--synthetic", action="store_true", help="simulated faces (reporting.synthetic)")
    source.add_argument("--halves", type=int, metavar="SEED", help="the calibration set itself, split at random "
                        "(this seed) in two halves, each the calibration of the other: how report's choices were "
                        "made, on validation photos only")
    parser.add_argument("--calibration", help="with --table: a model folder (its calibration.npz), a calibration "
                        ".npz file, or a labelled prediction table of other faces (CSV)")
    parser.add_argument("--calibration_faces", type=int, default=2000, help="--synthetic: calibration size")
    parser.add_argument("--size", type=int, default=1000, help="faces a collection (default 1000)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=[*quantify.METHODS, DEFAULT],
                        choices=[*quantify.METHODS, DEFAULT],
                        help=f"the methods to compare ({DEFAULT}: each attribute's, as report's default)")
    parser.add_argument("--attributes", nargs="+", default=list(ATTRIBUTES), choices=list(ATTRIBUTES))
    parser.add_argument("--unstratified", action="store_true", help="correct each attribute on its own classes "
                        "(report's default stratifies race by life stage)")
    parser.add_argument("--hard", action="store_true", help="issue 37's collections (one race, one gender, "
                        "children 0-9 or elders only, a class absent, 100 / 250 / 1,000 faces at random) instead "
                        "of issue 24's skewed ones")
    parser.add_argument("--calibration_for", type=int, metavar="N", help="size the last line's widening for "
                        "intervals as narrow as a calibration set of N faces makes them (the validation halves' sets "
                        "are half the shipped one's: give its size)")
    parser.add_argument("--out", help="also write every estimate as CSV here")
    args = parser.parse_args(argv)
    if args.synthetic:
        table, calibration = simulate(20_000, seed=1), simulate(args.calibration_faces, seed=2)
    elif not args.calibration:
        parser.error("--table and --halves need --calibration (for --table, a table of other faces)")
    if args.synthetic or args.calibration.lower().endswith(".csv"):
        calibration = calibration if args.synthetic else pd.read_csv(args.calibration)
        cal_probs, cal_labels = labelled_arrays(calibration)
    else:  # the calibration a model ships with
        calibration = load_calibration(args.calibration)
        cal_probs, cal_labels = calibration.probs, calibration.labels
    if args.halves is None:
        pairs = [(labelled_arrays(table if args.synthetic else pd.read_csv(args.table)), (cal_probs, cal_labels))]
    else:
        order = np.random.default_rng(args.halves).permutation(len(calibration))
        halves = [({a: p[rows] for a, p in cal_probs.items()}, {a: y[rows] for a, y in cal_labels.items()})
                  for rows in (order[:len(order) // 2], order[len(order) // 2:])]
        pairs = [(halves[0], halves[1]), (halves[1], halves[0])]
    if any(a not in pairs[0][0][1] for a in ("race", "gender", "age_group")):
        parser.error("the table needs race, gender and age labels with their probabilities")
    frame = pd.concat([run(probs, labels, Calibration(None, *cal), args.methods, args.size, args.seeds, args.bootstrap,
                           [a for a in args.attributes if a in probs and a in cal[0]], not args.unstratified, args.hard)
                       .assign(seed=lambda f, i=i: f["seed"] + 1000 * i)  # the second half's draws apart
                       for i, ((probs, labels), cal) in enumerate(pairs)], ignore_index=True)
    labels, cal_size = pairs[0][0][1], len(calibration) // len(pairs)
    if args.out:
        frame.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    print(f"{len(collections(labels, args.hard))} collections of {args.size} faces, {args.seeds} seeds, calibration "
          f"{cal_size} faces{'' if args.halves is None else ' (halves)'}, {args.bootstrap} bootstrap replicates; errors in points\n")
    print(summary(frame).round(2).to_string(index=False))
    best = DEFAULT if DEFAULT in args.methods else args.methods[-1]
    if "cc" in args.methods:
        print(f"\nper collection, counted (cc) and {best}:\n")
        print(per_collection(frame, best).to_string())
    print(f"\nper collection, {best}: errors (points), intervals holding the truth, intervals of zero width:\n")
    print(coverage_table(frame, best).to_string(index=False))
    print(f"\nwidening that makes {best}'s intervals hold 95 % of the classes (quantify.ALLOWANCES): " +
          ", ".join(f"{a} {v:.4f}" for a, v in allowances(
              frame, best, narrowing=np.sqrt(cal_size / args.calibration_for) if args.calibration_for else 1.0).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
