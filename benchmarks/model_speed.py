"""Milliseconds per face of each shipped model on this CPU, at batch 1 and batch 32, for each precision
with and without --tta, and the time to load it.

    python benchmarks/model_speed.py
"""
import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.labels import PRECISIONS


def ms_per_face(analyzer, batch: int, seconds: float) -> float:
    faces = np.random.default_rng(0).integers(0, 255, (batch, analyzer.input_size, analyzer.input_size, 3), np.uint8)
    analyzer.predict_crops(faces, batch_size=batch)  # warm-up: tracing and allocation
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        analyzer.predict_crops(faces, batch_size=batch)
        runs += 1
    return (time.perf_counter() - started) / (runs * batch) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_type", nargs="+", default=["normal", "facenet"])
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per measurement")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}")
    for model_type in args.model_type:
        for precision in PRECISIONS:
            for tta in (False, True):
                started = time.perf_counter()
                analyzer = FaceAnalyzer(model_type, precision=precision, tta=tta)
                load = time.perf_counter() - started
                figures = [f"{ms_per_face(analyzer, batch, args.seconds):.2f} ms/face at batch {batch}"
                           for batch in (1, 32)]
                print(f"{model_type} {precision}{' --tta' if tta else ''}: load {load:.2f} s; " + "; ".join(figures),
                      flush=True)


if __name__ == "__main__":
    main()
