"""Auditing a collection: the share of each race, gender and age group among the faces of `run`'s results,
counted and corrected for the model's errors, with bootstrap intervals (issue 24).

Modules:
    attributes   the three attributes, their classes, the results' probability fields and column names,
                 `ReportError` (`age_group_probabilities`, the nine FairFace groups from the model's age
                 distribution, is face_analysis.results', where `run` makes them)
    reading      `read_faces`: JSON, JSONL, CSV and Parquet results streamed in chunks of probability arrays,
                 each face keyed by its image and box (the same face read twice is counted once)
    tables       the CSV and Parquet readers (a last CSV row cut short left out with a note)
    json_items   the results of a JSON list or a JSONL file decoded one at a time
    quantify     the quantification methods (cc, pcc, acc, pacc, emq, emq_bcts) and the bootstrap that
                 resamples the collection and the calibration set together; the default methods and why
    calibration  the held-out predictions a model ships with (calibration.npz): build, save, load
    report       `report(paths, calibration, by=...) -> Report` and the Report dataclasses, text and JSON
    people       `report --count people`: each person of `run --people`'s results once, with the mean of
                 their faces' probabilities
    html         the self-contained HTML page (matplotlib bar charts embedded as PNG)
    command      `add_parser(subparsers)` and `run_report(args)`: the `report` command (its outputs checked
                 against the inputs, io.guard, before any work)
    synthetic    a simulated classifier with known errors, for the tests and benchmarks/audit.py

Dependencies: from the package this sub-package imports only face_analysis.labels, errors, results and io
(guard: the outputs' checks; durable: the lock a run holds while it writes);
beyond the standard library only numpy, pandas, pyarrow and matplotlib (no TensorFlow, no scikit-learn,
no scipy). It never imports the model store: `command.run_report` is given the shipped model's folder and
the manifest check by the command line (face_analysis.commands)."""
from face_analysis.reporting.attributes import ATTRIBUTES, ReportError
from face_analysis.results import age_group_probabilities
from face_analysis.reporting.calibration import Calibration, build_calibration, load_calibration, save_calibration
from face_analysis.reporting.quantify import DEFAULT_METHODS, METHODS
from face_analysis.reporting.report import ClassShare, GroupReport, Report, report

__all__ = ["ATTRIBUTES", "Calibration", "ClassShare", "DEFAULT_METHODS", "GroupReport", "METHODS", "Report",
           "ReportError", "age_group_probabilities", "build_calibration", "load_calibration", "report",
           "save_calibration"]
