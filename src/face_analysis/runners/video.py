"""`run --video`: follow every face of a camera or video file, with a box and a smoothed label on each.

A reader thread decodes frames ahead; the main loop detects faces, tracks them and draws; the model runs
on a face when it first appears and again every `refresh` seconds of video, the refreshes in a worker
thread so that a slow model lowers the analysis rate, not the frame rate. With an analyser made with people=True,
each track's faces are also embedded (FaceNet) and the frames are written at the end, every face with its
person (runners.people.TrackPeople)."""
from __future__ import annotations

import os
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from face_analysis.analyzer import FaceAnalyzer
from face_analysis.detection import detectors as face_detection
from face_analysis.errors import UsageError, VideoError
from face_analysis.identity.embedding import IDENTITY_MIN_FACE
from face_analysis.io import guard as output_guard
from face_analysis.io import writers as results_io
from face_analysis.io.display import Window, wants_quit, why_no_window
from face_analysis.results import ImageResult, face_size
from face_analysis.runners.people import TrackPeople
from face_analysis.runners.tracking import FaceTracker

_END = object()
# video frames are searched for faces at this size: 4 times fewer pixels than 640x480, for the frame rate
VIDEO_DETECTION_SIDE = 320
MAX_BAD_FRAMES = 50  # consecutive unreadable frames after which a video is taken to have ended


@dataclass
class VideoSummary:
    frames: int = 0
    model_runs: int = 0
    seconds: float = 0.0
    skipped: int = 0  # unreadable frames read past
    stopped: bool = False  # the user closed the window with q or Esc
    screen_time: dict[int, float] = field(default_factory=dict)  # with people: each person's seconds on screen

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def is_camera(source: str) -> bool:
    return re.fullmatch(r"-?\d+", source.strip()) is not None


def is_stream(source: str) -> bool:
    return "://" in source


def open_source(source: str) -> cv2.VideoCapture:
    """A capture for a camera index ("0"), a stream URL (rtsp://, http://...) or a video file path."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our own error says what failed
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own lines on damaged frames: we count them
    if is_camera(source):
        if int(source) < 0:
            raise VideoError(f"{source}: not a camera index (cameras are numbered 0, 1, 2, ...)")
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise VideoError(f"{source}: cannot open the camera (is one connected, and free?)")
        return capture
    if is_stream(source):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise VideoError(f"{source}: cannot open the stream (check the address and that it is reachable)")
        return capture
    if not Path(source).is_file():
        raise VideoError(f"{source}: no such video file")
    _check_utf8(source)
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise VideoError(f"{source}: cannot open the video file (not a video, or a damaged one)")
    return capture


def _read_frames(capture, frames: queue.Queue, stop: threading.Event, live: bool, summary: VideoSummary) -> None:
    """Decode frames into the queue, reading past unreadable frames (counted in summary.skipped) until
    MAX_BAD_FRAMES fail in a row; a live camera drops the oldest frame rather than fall behind."""
    bad_run = 0
    while not stop.is_set():
        ok, frame = capture.read()
        if not ok or frame is None:
            bad_run += 1
            if bad_run > MAX_BAD_FRAMES:
                break
            continue
        summary.skipped += bad_run  # failures followed by a good frame were damaged frames, not the end
        bad_run = 0
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
    while True:  # the end marker, without blocking for ever when the main loop has stopped reading
        try:
            frames.put(_END, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return


class _ModelWorker:
    """Runs the model on queued crops in a background thread; results are collected by the main loop."""

    def __init__(self, analyzer: FaceAnalyzer):
        self.analyzer, self.jobs, self.done = analyzer, queue.Queue(), queue.Queue()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self):
        while (job := self.jobs.get()) is not None:
            tracks, crops, identity = job
            outputs = self.analyzer.predict_crops(crops, [face_size(t.box) for t in tracks])
            self.done.put((tracks, outputs, _embedded(self.analyzer, identity, outputs)))

    def stop(self):
        self.jobs.put(None)
        self.thread.join(timeout=10)


def _apply(people: TrackPeople | None, tracks, outputs, identities=None) -> None:
    for i, track in enumerate(tracks):
        track.add_outputs(outputs["age"][i], outputs["gender"][i], outputs["race"][i])
        track.pending = False
    for track_id, vector in zip(*identities) if identities is not None else ():
        people.add_identity(track_id, vector)


def _identity_job(analyzer: FaceAnalyzer, rgb, tracks, crops):
    """With people: the ids, rows (in crops) and identity crops of the tracks large enough to tell apart; else None."""
    big = [i for i, track in enumerate(tracks) if face_size(track.box) >= IDENTITY_MIN_FACE]
    if analyzer.embedder is None or not big:
        return None
    return ([tracks[i].track_id for i in big], big,
            analyzer.identity_crops(rgb, [tracks[i].box for i in big], crops[big]))


def _embedded(analyzer: FaceAnalyzer, identity, outputs: dict):
    """An identity job's track ids and embeddings, or None: from the model's stem maps in its outputs for the
    crops where it gave them (the facenet model), else from the identity crops."""
    if identity is None:
        return None
    track_ids, rows, crops = identity
    if "stem_maps" in outputs:
        return track_ids, analyzer.embedder.embed_stem(outputs["stem_maps"][rows])
    return track_ids, analyzer.embedder.embed(crops)


def check_video_outputs(source: str, output, json_path, csv_path, model_dir: Path | None = None) -> None:
    """Refuse, before any work, outputs that would write over the source video, the model's files or a file
    this tool did not write."""
    sources = output_guard.InputSet([] if is_camera(source) or is_stream(source) else [source], model_dir)
    output_guard.check_result_outputs(sources, json_path, csv_path, output, "video")


def run_video(analyzer: FaceAnalyzer, source: str = "0", output: str | None = None, json_path=None,
              csv_path=None, show: bool = True, refresh: float = 0.5, max_frames: int | None = None,
              quiet: bool = False, recurring: bool = False) -> VideoSummary:
    """Analyse a video; `q` or Esc closes the window and ends the run. Returns how many frames were analysed,
    how fast, how many unreadable frames were skipped and (people) each person's time on screen (recurring:
    people of a few tracks joined to larger ones, identity.clustering.join_small)."""
    live = is_camera(source) or is_stream(source)
    if live and analyzer.embedder is not None:
        raise UsageError(f"--people counts the people of a video file, not of a camera or stream ({source}): "
                         "they are counted once the video has ended")
    check_video_outputs(source, output, json_path, csv_path, analyzer.model_dir)
    capture = open_source(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, summary, tracker, worker = None, VideoSummary(), FaceTracker(), _ModelWorker(analyzer)
    detector = face_detection.make_detector(analyzer.detector_name, VIDEO_DETECTION_SIDE)
    window = Window(window_title(source)) if show else None
    if window is not None and not window.available:
        print(f"warning: no window: {why_no_window()}; the video is analysed without one", file=sys.stderr)
        window = None
    writers = results_io.ResultWriters(json_path, csv_path)
    people = TrackPeople(recurring) if analyzer.embedder is not None else None
    frames, stop = queue.Queue(maxsize=8), threading.Event()
    reader = threading.Thread(target=_read_frames, args=(capture, frames, stop, live, summary), daemon=True)
    reader.start()
    started = time.perf_counter()
    try:
        with tqdm(total=max_frames or total, desc="video", unit="frame", file=sys.stderr, disable=quiet) as progress:
            while max_frames is None or summary.frames < max_frames:
                frame = frames.get()
                if frame is _END:
                    break
                now = summary.frames / fps
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                tracks = tracker.update(detector.detect(rgb))
                while not worker.done.empty():
                    _apply(people, *worker.done.get())
                analysable = [t for t in tracks if detector.boxes_are_chips or face_size(t.box) >= analyzer.min_face]
                new = [t for t in analysable if t.updates == 0 and not t.pending]
                if new:  # a new face is labelled before it is first drawn
                    crops = analyzer.crops(rgb, [t.box for t in new])
                    outputs = analyzer.predict_crops(crops, [face_size(t.box) for t in new])
                    _apply(people, new, outputs, _embedded(analyzer, _identity_job(analyzer, rgb, new, crops), outputs))
                    summary.model_runs += len(new)
                    for track in new:
                        track.analysed_at = now
                due = [t for t in analysable if not t.pending and now - t.analysed_at >= refresh]
                if due:
                    for track in due:
                        track.pending, track.analysed_at = True, now
                    crops = analyzer.crops(rgb, [t.box for t in due])
                    worker.jobs.put((due, crops, _identity_job(analyzer, rgb, due, crops)))
                    summary.model_runs += len(due)
                faces = [t.prediction() for t in tracks]
                annotated = cv2.cvtColor(results_io.draw_faces(rgb, faces), cv2.COLOR_RGB2BGR)
                result = ImageResult(f"{source}#{summary.frames}", rgb.shape[1], rgb.shape[0], faces,
                                     model=analyzer.model_type)
                if people is not None:
                    people.add(result, summary.frames)
                else:
                    writers.write(result, summary.frames)
                if output:
                    if writer is None:
                        writer = _open_writer(output, fps, annotated.shape)
                    writer.write(annotated)
                summary.frames += 1
                summary.seconds = time.perf_counter() - started
                progress.update(1)
                if window is not None:
                    cv2.putText(annotated, f"{summary.fps:.1f} fps", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                                (0, 0, 255), 2)
                    key = window.show(annotated, 1)
                    if wants_quit(key):
                        summary.stopped = True
                        break
        if people is not None:
            frames_done, summary.screen_time = people.numbered(fps)
            for result, frame in frames_done:
                writers.write(result, frame)
    finally:
        stop.set()
        worker.stop()
        reader.join(timeout=10)
        if not reader.is_alive():  # a read still blocked on a stream keeps its capture
            capture.release()
        if writer is not None:
            writer.release()
        writers.close()
        if window is not None:
            window.close()
    if summary.frames == 0:
        raise VideoError(f"{source}: no frame could be read")
    return summary


def window_title(source: str) -> str:
    """The window title: the tool's name, the source, and how to quit."""
    return f"Face Analysis - {source} (q or Esc quits)"


def _check_utf8(path: str) -> None:
    """OpenCV's video files crash on a name whose bytes are not UTF-8 (an old disk's): refuse it in one line."""
    try:
        path.encode()
    except UnicodeEncodeError:
        shown = path.encode(errors="surrogateescape").decode(errors="backslashreplace")
        raise VideoError(f"{shown}: a file name that is not UTF-8, which OpenCV's video files cannot take; "
                         "rename it") from None


def _open_writer(output: str, fps: float, shape) -> cv2.VideoWriter:
    _check_utf8(str(output))
    path = Path(output)
    if not path.parent.is_dir():
        raise VideoError(f"{output}: folder {path.parent} does not exist")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise VideoError(f"{output}: cannot write a video there")
    return writer
