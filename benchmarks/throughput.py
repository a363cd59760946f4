"""End-to-end speed of `run` on this machine: video frames/s, batch images/s, cold start-up, and memory.

    python benchmarks/throughput.py                 # video, batch and start-up, both models
    python benchmarks/throughput.py --only video
    python benchmarks/throughput.py --only memory --images 10000
    python benchmarks/throughput.py --engine local ray --images 2000   # run --engine local vs ray, int8 and float32

Video: 640x480 files with 1 and 5 faces, written with --output and no window (150 frames each).
Batch: a folder of 640x480 JPEGs with one face each, with --json. Start-up: the wall time of
`python src/main.py run --img one.jpg` in a fresh process (TFLite files already built), best of 3.
Memory: the resident size of `run --img FOLDER --json` in a fresh process, sampled every second and set
against the number of results already written (default 300 photos; ask for 10,000 with --images).
Engines (--engine): `run --img FOLDER --json` in a fresh process with each engine and precision on the same
photos, wall time from start to exit (Ray's start-up included) and images/s."""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import make_media


def video(model_type: str, detector: str, work: Path) -> None:
    from face_analysis.analyzer import FaceAnalyzer
    from face_analysis.runners.video import run_video

    analyzer = FaceAnalyzer(model_type, detector=detector)
    for faces in (1, 5):
        source = work / f"faces{faces}.mp4"
        if not source.exists():
            make_media.write_video(source, faces)
        summary = run_video(analyzer, str(source), str(work / "out.mp4"), show=False)
        print(f"video   {model_type:8s} {detector:6s} {faces} face(s): {summary.fps:5.1f} frames/s "
              f"({summary.frames} frames, {summary.model_runs} face analyses)", flush=True)


def batch(model_type: str, detector: str, work: Path, count: int) -> None:
    from face_analysis.analyzer import FaceAnalyzer
    from face_analysis.runners.images import run_images

    photos = make_media.write_photos(work / "photos", count)
    analyzer = FaceAnalyzer(model_type, detector=detector)
    started = time.perf_counter()
    summary = run_images(analyzer, [str(photos[0].parent)], json_path=str(work / "out.json"), quiet=True)
    seconds = time.perf_counter() - started
    print(f"batch   {model_type:8s} {detector:6s} {summary.images} images, {summary.faces} faces: "
          f"{summary.images / seconds:5.1f} images/s", flush=True)


def engines(model_type: str, detector: str, work: Path, count: int, names: list[str], precisions: list[str]) -> None:
    folder = work / f"photos_{count}"
    make_media.write_photos(folder, count)
    seconds = {}
    for precision in precisions:
        for engine in names:
            command = [sys.executable, str(ROOT / "src" / "main.py"), "run", "--img", str(folder), "--model_type",
                       model_type, "--detector", detector, "--engine", engine, "--precision", precision,
                       "--json", str(work / "engine.json"), "--quiet"]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[engine, precision] = time.perf_counter() - started
            against = seconds.get(("local", precision))
            overhead = f", {seconds[engine, precision] / against - 1:+.0%} against local" if engine != "local" and against else ""
            print(f"engine  {model_type:8s} {detector:6s} {engine:5s} {precision:7s} {count} images: "
                  f"{seconds[engine, precision]:6.1f} s, {count / seconds[engine, precision]:5.1f} images/s{overhead}",
                  flush=True)


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


def _resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(model_type: str, detector: str, work: Path, count: int) -> None:
    folder = work / f"photos_{count}"
    make_media.write_photos(folder, count)
    results = work / "memory.json"
    results.unlink(missing_ok=True)
    command = [sys.executable, str(ROOT / "src" / "main.py"), "run", "--img", str(folder), "--model_type", model_type,
               "--detector", detector, "--json", str(results), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []  # (results written, resident MB)
    while process.poll() is None:
        time.sleep(1)
        try:
            resident = _resident_mb(process.pid)
        except OSError:  # it ended between poll() and the read
            break
        samples.append((results.read_bytes().count(b'"image"') if results.exists() else 0, resident))
    if process.returncode != 0:
        raise SystemExit(f"memory benchmark: {' '.join(command)} failed with exit code {process.returncode}")
    marks = [count // 10, count // 2, count]
    at = [max((mb for done, mb in samples if done <= mark), default=0.0) for mark in marks]
    print(f"memory  {model_type:8s} {detector:6s} {count} images: resident "
          + ", ".join(f"{mb:.0f} MB by image {mark}" for mark, mb in zip(marks, at))
          + f" (peak {max(mb for _, mb in samples):.0f} MB)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("video", "batch", "startup", "memory"))
    parser.add_argument("--model_type", nargs="+", default=["normal", "facenet"])
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--engine", nargs="+", choices=("local", "ray"),
                        help="instead of the rest: compare these engines of `run --img` (int8 and float32)")
    parser.add_argument("--precision", nargs="+", default=["int8", "float32"], help="with --engine")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}")
    work = Path(tempfile.gettempdir()) / "face_analysis_bench"
    work.mkdir(exist_ok=True)
    for model_type in args.model_type:
        if args.engine:
            engines(model_type, args.detector, work, args.images, args.engine, args.precision)
            continue
        if args.only in (None, "startup"):
            startup(model_type, args.detector, work)
        if args.only in (None, "video"):
            video(model_type, args.detector, work)
        if args.only in (None, "batch"):
            batch(model_type, args.detector, work, args.images)
        if args.only == "memory":
            memory(model_type, args.detector, work, args.images)


if __name__ == "__main__":
    main()
