"""End-to-end speed of `run` on this machine: video frames/s, batch images/s and cold start-up.

    python benchmarks/throughput.py                 # all three, both models
    python benchmarks/throughput.py --only video

Video: 640x480 files with 1 and 5 faces, written with --output and no window (150 frames each).
Batch: a folder of 640x480 JPEGs with one face each, with --json. Start-up: the wall time of
`python src/main.py run --img one.jpg` in a fresh process (TFLite files already built), best of 3."""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import make_media  # noqa: E402


def video(model_type: str, detector: str, work: Path) -> None:
    from analyzer import FaceAnalyzer
    from video_run import run_video

    analyzer = FaceAnalyzer(model_type, detector=detector)
    for faces in (1, 5):
        source = work / f"faces{faces}.mp4"
        if not source.exists():
            make_media.write_video(source, faces)
        summary = run_video(analyzer, str(source), str(work / "out.mp4"), show=False)
        print(f"video   {model_type:8s} {detector:6s} {faces} face(s): {summary.fps:5.1f} frames/s "
              f"({summary.frames} frames, {summary.model_runs} face analyses)", flush=True)


def batch(model_type: str, detector: str, work: Path, count: int) -> None:
    from analyzer import FaceAnalyzer
    from run_model import run_images

    photos = make_media.write_photos(work / "photos", count)
    analyzer = FaceAnalyzer(model_type, detector=detector)
    started = time.perf_counter()
    summary = run_images(analyzer, [str(photos[0].parent)], json_path=str(work / "out.json"), quiet=True)
    seconds = time.perf_counter() - started
    print(f"batch   {model_type:8s} {detector:6s} {summary.images} images, {summary.faces} faces: "
          f"{summary.images / seconds:5.1f} images/s", flush=True)


def startup(model_type: str, detector: str, work: Path) -> None:
    photo = make_media.write_photos(work / "one", 1)[0]
    command = [sys.executable, str(ROOT / "src" / "main.py"), "run", "--img", str(photo), "--model_type", model_type,
               "--detector", detector, "--quiet"]
    subprocess.run(command, check=True, capture_output=True)  # builds the TFLite file once if needed
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    print(f"startup {model_type:8s} {detector:6s} run --img one.jpg: {min(times):.2f} s wall (best of 3)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("video", "batch", "startup"))
    parser.add_argument("--model_type", nargs="+", default=["normal", "facenet"])
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}")
    work = Path(tempfile.gettempdir()) / "face_analysis_bench"
    work.mkdir(exist_ok=True)
    for model_type in args.model_type:
        if args.only in (None, "startup"):
            startup(model_type, args.detector, work)
        if args.only in (None, "video"):
            video(model_type, args.detector, work)
        if args.only in (None, "batch"):
            batch(model_type, args.detector, work, args.images)


if __name__ == "__main__":
    main()
