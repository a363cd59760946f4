"""`run --video`: follow every face of a camera or video file, with a box and a smoothed label on each.

A reader thread decodes frames ahead; the main loop detects faces, tracks them and draws; the model runs
on a face when it first appears and again every `refresh` seconds of video, the refreshes in a worker
thread so that a slow model lowers the analysis rate, not the frame rate."""
from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

import face_detection
import results_io
from analyzer import FaceAnalyzer, ImageResult
from face_tracking import FaceTracker
from run_model import show_window

_END = object()
# video frames are searched for faces at this size: 4 times fewer pixels than 640x480, for the frame rate
VIDEO_DETECTION_SIDE = 320


class VideoError(RuntimeError):
    """A camera or video file cannot be opened or written."""


@dataclass
class VideoSummary:
    frames: int = 0
    model_runs: int = 0
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


def _read_frames(capture, frames: queue.Queue, stop: threading.Event, live: bool) -> None:
    """Decode frames into the queue; a live camera drops the oldest frame rather than fall behind."""
    while not stop.is_set():
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        if live and frames.full():
            try:
                frames.get_nowait()
            except queue.Empty:
                pass
        while not stop.is_set():
            try:
                frames.put(frame, timeout=0.1)
                break
            except queue.Full:
                continue
    frames.put(_END)


class _ModelWorker:
    """Runs the model on queued crops in a background thread; results are collected by the main loop."""

    def __init__(self, analyzer: FaceAnalyzer):
        self.analyzer, self.jobs, self.done = analyzer, queue.Queue(), queue.Queue()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self):
        while (job := self.jobs.get()) is not None:
            tracks, crops = job
            self.done.put((tracks, self.analyzer.predict_crops(crops)))

    def stop(self):
        self.jobs.put(None)
        self.thread.join(timeout=10)


def _apply(tracks, outputs) -> None:
    for i, track in enumerate(tracks):
        track.add_outputs(outputs["age"][i], outputs["gender"][i], outputs["race"][i])
        track.pending = False


def run_video(analyzer: FaceAnalyzer, source: str = "0", output: str | None = None, json_path=None,
              csv_path=None, show: bool = True, refresh: float = 0.5, max_frames: int | None = None) -> VideoSummary:
    """Analyse a video; `q` quits the window. Returns how many frames were shown and how fast."""
    capture = open_source(source)
    live = source.isdigit()
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, summary, tracker, worker = None, VideoSummary(), FaceTracker(), _ModelWorker(analyzer)
    detector = face_detection.make_detector(analyzer.detector_name, VIDEO_DETECTION_SIDE)
    writers = results_io.ResultWriters(json_path, csv_path)
    frames, stop = queue.Queue(maxsize=8), threading.Event()
    reader = threading.Thread(target=_read_frames, args=(capture, frames, stop, live), daemon=True)
    reader.start()
    started = time.perf_counter()
    try:
        with tqdm(total=max_frames or total, desc="video", unit="frame", file=sys.stderr) as progress:
            while max_frames is None or summary.frames < max_frames:
                frame = frames.get()
                if frame is _END:
                    break
                now = summary.frames / fps
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                boxes = detector.detect(rgb)
                tracks = tracker.update(boxes)
                while not worker.done.empty():
                    _apply(*worker.done.get())
                new = [t for t in tracks if t.updates == 0 and not t.pending]
                if new:  # a new face is labelled before it is first drawn
                    _apply(new, analyzer.predict_crops(analyzer.crops(rgb, [t.box for t in new])))
                    summary.model_runs += len(new)
                    for track in new:
                        track.analysed_at = now
                due = [t for t in tracks if not t.pending and now - t.analysed_at >= refresh]
                if due:
                    for track in due:
                        track.pending, track.analysed_at = True, now
                    worker.jobs.put((due, analyzer.crops(rgb, [t.box for t in due])))
                    summary.model_runs += len(due)
                faces = [t.prediction() for t in tracks]
                annotated = cv2.cvtColor(results_io.draw_faces(rgb, faces), cv2.COLOR_RGB2BGR)
                result = ImageResult(f"{source}#{summary.frames}", rgb.shape[1], rgb.shape[0], faces)
                writers.write(result, summary.frames)
                if output:
                    if writer is None:
                        writer = _open_writer(output, fps, annotated.shape)
                    writer.write(annotated)
                summary.frames += 1
                summary.seconds = time.perf_counter() - started
                if show:
                    cv2.putText(annotated, f"{summary.fps:.1f} fps", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                                (0, 0, 255), 2)
                    key = show_window("Face Analysis (q quits)", annotated, 1)
                    if key is None:
                        show = False
                        tqdm.write("warning: no display available; the video is analysed without a window",
                                   file=sys.stderr)
                    elif key & 0xFF == ord("q"):
                        break
                progress.update(1)
    finally:
        stop.set()
        worker.stop()
        reader.join(timeout=5)
        capture.release()
        if writer is not None:
            writer.release()
        writers.close()
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

