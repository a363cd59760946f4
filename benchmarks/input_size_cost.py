"""What a larger input would cost the normal model (issue 23): its architecture at several input sizes, random
weights (speed does not depend on their values), int8 by OpenVINO as `run` executes it, beside the original
project's scratch CNN at 160 px (../shared/bench/speed_vs_seed.py's, Keras) in one process, so the ratios hold
across CPUs. The issue's limit for normal is 0.3.

    python benchmarks/input_size_cost.py [--sizes 64 80 96 128]
"""
import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED_BENCH = ROOT.parent / "shared" / "bench" / "speed_vs_seed.py"


def int8_model(size: int, folder: Path):
    """The normal architecture at `size` px, exported and quantized to int8 (random calibration images)."""
    import nncf
    import openvino

    from face_analysis.models.architectures import build_normal_model
    from face_analysis.models.compiled import CompiledModel, export_tflite

    exported = export_tflite(build_normal_model(size), folder / f"normal{size}.tflite")
    images = np.random.default_rng(0).integers(0, 255, (32, size, size, 3)).astype(np.float32)
    quantized = nncf.quantize(openvino.Core().read_model(str(exported)),
                              nncf.Dataset([image[None] for image in images]), subset_size=len(images))
    path = folder / f"normal{size}.xml"
    openvino.save_model(quantized, str(path), compress_to_fp16=False)
    return CompiledModel(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 80, 96, 128])
    args = parser.parse_args(argv)
    if not SEED_BENCH.is_file():
        sys.exit(f"{SEED_BENCH}: not found (the original's architectures are timed by it)")
    spec = importlib.util.spec_from_file_location("speed_vs_seed", SEED_BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seed_normal, _ = bench.seed_models()
    print(f"CPU cores available: {len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            model = int8_model(size, Path(folder))
            crops = {b: np.random.default_rng(1).integers(0, 255, (b, size, size, 3)).astype(np.float32)
                     for b in (1, 32)}
            for b in (1, 32):
                mine = bench.median_ms(lambda n: model(crops[n]), b)
                seed = bench.median_ms(seed_normal, b)
                print(f"normal at {size:3d} px, batch {b:2d}: {mine:6.2f} ms/face, seed {seed:6.2f} ms/face, "
                      f"ratio {mine / seed:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
