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
from face_analysis.reporting.attributes import ATTRIBUTES
from face_analysis.reporting.quantify import DEFAULT_METHODS, METHODS

DESCRIPTION = ("The share of each race, gender and age group among the faces of run's results (JSON, JSONL, CSV, "
               "Parquet folders), counted and corrected for the model's errors with a 95 % interval.")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a confidence between 0.5 and 1 (e.g. 0.95)")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def add_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    """Add the `report` command to an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser("report", parents=list(parents), help="audit a collection: each group's share",
                                   description=DESCRIPTION)
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="results of run: --json, --jsonl or --csv files, --parquet folders")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': standard output)")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML page with bar charts")
    parser.add_argument("--by", choices=tuple(ATTRIBUTES),
                        help="also give the other attributes' shares within each class of this one")
    parser.add_argument("--model_path", metavar="DIR",
                        help="the model that made the results, for its calibration (default: the shipped model "
                             "of the type the results name)")
    defaults = ", ".join(f"{method} for {attribute}" for attribute, method in DEFAULT_METHODS.items())
    parser.add_argument("--method", choices=METHODS,
                        help=f"the correction of every attribute (default: {defaults}; cc: counting, no correction)")
    parser.add_argument("--bootstrap", type=_count, default=200, help="bootstrap replicates for the intervals "
                        "(default 200; 0: no interval)")
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


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        return
    path = Path(target)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a file")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def run_report(args, default_model_dir=None, check_model=None) -> int:
    """Run `report`: the table on standard output (unless --json -), --json and --html files. The model folder
    is checked with check_model (when given) before its calibration is read."""
    from face_analysis.reporting.calibration import load_calibration
    from face_analysis.reporting.html import report_html
    from face_analysis.reporting.report import report

    model_path = args.model_path
    if model_path is None:
        if default_model_dir is None:
            raise UsageError("give --model_path DIR: the model whose results these are")
        model_path = default_model_dir(results_model(args.results) or "facenet")
    if check_model is not None and Path(model_path).is_dir():
        check_model(Path(model_path))
    calibration = load_calibration(model_path)
    result = report(args.results, calibration, by=args.by, method=args.method, confidence=args.confidence,
                    bootstrap=args.bootstrap, seed=args.seed)
    if args.json != "-":
        sys.stdout.write(result.to_text())
    if args.json:
        _write(args.json, result.json_text())
    if args.html:
        _write(args.html, report_html(result))
    return 0
