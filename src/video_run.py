"""`run --video`: analyse a camera or a video file frame by frame, drawing every face."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

import results_io
from analyzer import FaceAnalyzer, ImageResult
from run_model import show_window


class VideoError(RuntimeError):
    """A camera or video file cannot be opened or written."""


@dataclass
class VideoSummary:
    frames: int = 0
    analysed_frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def open_source(source: str) -> cv2.VideoCapture:
    """A capture for a camera index ("0") or a video file path."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our own error says what failed
    is_camera = source.isdigit()
    if not is_camera and not Path(source).is_file():
        raise VideoError(f"{source}: no such video file")
    capture = cv2.VideoCapture(int(source) if is_camera else source)
    if not capture.isOpened():
        kind = "camera" if is_camera else "video file"
        raise VideoError(f"{source}: cannot open the {kind}")
    return capture


def run_video(analyzer: FaceAnalyzer, source: str = "0", output: str | None = None, json_path=None,
              csv_path=None, show: bool = True, analyze_every: int = 1, max_frames: int | None = None) -> VideoSummary:
    """Analyse every `analyze_every`-th frame and draw the latest faces on every frame; `q` quits the window."""
    capture = open_source(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, summary, faces = None, VideoSummary(), []
    json_writer = results_io.JsonListWriter(json_path) if json_path else None
    csv_writer = results_io.CsvWriter(csv_path) if csv_path else None
    started = time.perf_counter()
    try:
        with tqdm(total=max_frames or total, desc="video", unit="frame", file=sys.stderr) as progress:
            while max_frames is None or summary.frames < max_frames:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if summary.frames % analyze_every == 0:
                    faces = analyzer.analyze(rgb)
                    summary.analysed_frames += 1
                    result = ImageResult(f"{source}#{summary.frames}", rgb.shape[1], rgb.shape[0], faces)
                    if json_writer:
                        json_writer.write({"frame": summary.frames, **result.to_json()})
                    if csv_writer:
                        csv_writer.write(result, summary.frames)
                annotated = cv2.cvtColor(results_io.draw_faces(rgb, faces), cv2.COLOR_RGB2BGR)
                summary.frames += 1
                summary.seconds = time.perf_counter() - started
                if output:
                    if writer is None:
                        writer = _open_writer(output, fps, annotated.shape)
                    writer.write(annotated)
                if show:
                    cv2.putText(annotated, f"{summary.fps:.1f} fps", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                                (0, 0, 255), 2)
                    key = show_window("Face Analysis (q quits)", annotated, 1)
                    if key is None:
                        show = False
                        print("warning: no display available; the video is analysed without a window",
                              file=sys.stderr)
                    elif key & 0xFF == ord("q"):
                        break
                progress.update(1)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if json_writer:
            json_writer.close()
        if csv_writer:
            csv_writer.close()
        if show:
            cv2.destroyAllWindows()
    if summary.frames == 0:
        raise VideoError(f"{source}: no frame could be read")
    return summary


def _open_writer(output: str, fps: float, shape) -> cv2.VideoWriter:
    path = Path(output)
    if not path.parent.is_dir():
        raise VideoError(f"{output}: folder {path.parent} does not exist")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise VideoError(f"{output}: cannot write a video there")
    return writer
