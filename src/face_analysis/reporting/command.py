"""The `report` command: `face-analysis report RESULTS... [--json FILE] [--html FILE] [--by ATTR]
[--model_path DIR]`. The command line registers it with `add_parser(subparsers)` and runs `run_report(args,
default_model_dir, check_model)` (default_model_dir: model type -> the shipped model's folder; check_model: a
model folder -> None, raising when its files fail the manifest's sha256: this package never imports the store)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from face_analysis.errors import UsageError
from face_analysis.io import guard
from face_analysis.reporting.attributes import ATTRIBUTES
from face_analysis.reporting.people import COUNTS
from face_analysis.reporting.quantify import DEFAULT_METHODS, METHODS
from face_analysis.reporting.report import MAX_BOOTSTRAP, MIN_BOOTSTRAP

DESCRIPTION = ("The share of each race, gender and age group among the faces (or, --count people, the people; "
               "--count screen_time, their time on screen in a video) of "
               "run's results (JSON, JSONL, CSV, Parquet folders), counted and corrected for the model's errors with "
               "a 95 % interval.")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a confidence between 0.5 and 1 (e.g. 0.95)")
    return value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def _replicates(text: str) -> int:
    count = _count(text)
    if 0 < count < MIN_BOOTSTRAP or count > MAX_BOOTSTRAP:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 (no interval) or {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP} "
                                         "replicates (a percentile interval needs several)")
    return count


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Add the `report` command to an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser("report", parents=list(parents), help="audit a collection: each group's share",
                                   description=DESCRIPTION)
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="results of run: --json, --jsonl or --csv files, --parquet folders")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': standard output)")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML page with bar charts")
    parser.add_argument("--count", choices=COUNTS, default="faces",
                        help="faces: every face (default); people: each person of `run --people`'s results once, "
                             "with the mean of their faces' probabilities; screen_time: video results, each person "
                             "weighed by the frames they are in (docs/people.md)")
    parser.add_argument("--by", choices=tuple(ATTRIBUTES),
                        help="also give the other attributes' shares within each class of this one")
    parser.add_argument("--model_path", metavar="DIR",
                        help="the model that made the results, for its calibration (default: the shipped model "
                             "of the type the results name)")
    defaults = ", ".join(f"{method} for {attribute}" for attribute, method in DEFAULT_METHODS.items())
    parser.add_argument("--method", choices=METHODS,
                        help=f"the correction of every attribute (default: {defaults}; cc: counting, no correction)")
    parser.add_argument("--bootstrap", type=_replicates, default=200, help="bootstrap replicates for the "
                        f"intervals: {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP} (default 200), or 0: no interval")
    parser.add_argument("--confidence", type=_fraction, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--seed", type=_count, default=0, help="the bootstrap's random seed (default 0)")
    return parser


def results_model(paths) -> str | None:
    """The model type the results name (their first chunk that names one), or None."""
    from face_analysis.reporting.reading import file_chunks

    for path in paths:
        for chunk in file_chunks(path):
            if chunk.models:
                return next(iter(chunk.models))
            break
    return None


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_outputs(args, model_path) -> None:
    """Refuse, before any work, an output that is an input (a results file, the model's files), lies in an
    input folder, is the other output, is a file this tool did not write, or cannot be written."""
    model = Path(model_path)
    inputs = guard.InputSet([*args.results, *([] if model.is_dir() else [model])], model if model.is_dir() else None)
    folders = guard.InputSet([path for path in args.results if Path(path).is_dir()])
    guard.check_distinct({"--json": args.json, "--html": args.html})
    for option, target, kind in (("--json", args.json, "report"), ("--html", args.html, "report page")):
        if target is None or target == "-":
            continue
        if not target.strip():
            raise UsageError(f"{option}: empty file name")
        guard.check_output_file(option, target, inputs, kind)
        path = Path(target)
        for folder in Path(os.path.abspath(path)).parents:
            same = folders.same_as(folder)
            if same is not None:
                raise UsageError(f"{option} {target}: inside the input folder {same}; write the report elsewhere")
        if not path.parent.is_dir():
            raise UsageError(f"{option} {target}: folder {path.parent} does not exist")
        try:
            os.close(os.open(_temporary(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(_temporary(path))
        except OSError as error:
            raise UsageError(f"{option} {target}: cannot be written there ({error.strerror or error})") from None


def _write(option: str, target: str, text: str) -> None:
    """Write an output whole (a temporary file renamed); '-': standard output."""
    from face_analysis.io.durable import output_error

    if target == "-":
        sys.stdout.write(text)
        return
    temporary = _temporary(Path(target))
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise output_error(option, target, error) from None


def run_report(args, default_model_dir=None, check_model=None) -> int:
    """Run `report`: the table on standard output (unless --json - or --html -), --json and --html files, both
    checked before any work (check_outputs). The model folder is checked with check_model (when given) before
    its calibration is read."""
    from face_analysis.reporting.calibration import load_calibration
    from face_analysis.reporting.html import report_html
    from face_analysis.reporting.report import report

    model_path, named = args.model_path, None
    if model_path is None:
        if default_model_dir is None:
            raise UsageError("give --model_path DIR: the model whose results these are")
        named = results_model(args.results)
        model_path = default_model_dir(named or "facenet")
        if not Path(model_path).exists():
            raise UsageError(f"{model_path}: no shipped {named or 'facenet'} model here; give --model_path DIR, the "
                             "model that made the results")
    elif not Path(model_path).exists():
        raise UsageError(f"--model_path {model_path}: no such folder or file")
    check_outputs(args, model_path)
    if check_model is not None and Path(model_path).is_dir():
        check_model(Path(model_path))
    calibration = load_calibration(model_path)
    result = report(args.results, calibration, by=args.by, method=args.method, confidence=args.confidence,
                    bootstrap=args.bootstrap, seed=args.seed, count=args.count)
    if args.model_path is None and named is None:
        result.notes.append("the results do not name the model that made them: the facenet model's calibration "
                            "corrects them (give --model_path DIR if another model made them)")
    if "-" not in (args.json, args.html):
        sys.stdout.write(result.to_text())
    if args.json:
        _write("--json", args.json, result.json_text())
    if args.html:
        _write("--html", args.html, report_html(result))
    return 0
