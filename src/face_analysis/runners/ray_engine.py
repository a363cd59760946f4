"""`run --engine ray`: the analysis of `run --img` as Ray Data batch inference, on this machine or a cluster.

Paths become a Ray Dataset; tasks read and decode the images in parallel; a pool of actors, each loading the
model once, finds and analyses the faces; the results stream back in input order to the driver, which writes
them (--json, --csv, --parquet) as `run --engine local` does. With people, each image's faces' embeddings come
back with its result and the driver clusters them all at the end (runners.people). Ray is imported only here."""
from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from face_analysis.analyzer import DEFAULT_MIN_FACE
from face_analysis.detection.detectors import AUTO_UPSCALE, DEFAULT_DETECT_SIZE
from face_analysis.errors import ImageError
from face_analysis.identity.embedding import EMBEDDING_DIM
from face_analysis.io import images as image_io
from face_analysis.labels import DEFAULT_PRECISION
from face_analysis.models.compiled import available_cores, quiet_stderr
from face_analysis.results import ImageResult
from face_analysis.runners import images as run_model

READ_CPUS = 0.25  # Ray's share of a core for a task reading and decoding images
ACTOR_CPUS = 0.75  # and for an analysing actor per inference thread: a node runs one actor a core beside reads
BATCH_IMAGES = run_model.MAX_BATCH_IMAGES
IDLE_WORKER_MS = 60_000  # a local Ray instance keeps an idle worker process this long before ending it


@dataclass
class AnalyzerSettings:
    """What each actor's FaceAnalyzer is built with (threads: its inference threads, default 1)."""

    model_type: str | None = None
    model_path: str | None = None
    detector: str = "yunet"
    detect_size: int | None = DEFAULT_DETECT_SIZE
    min_face: int = DEFAULT_MIN_FACE
    threads: int | None = None
    tta: bool = False
    precision: str = DEFAULT_PRECISION
    upscale: float | str = AUTO_UPSCALE
    people: bool = False


def _read_batch(batch: dict, read_timeout: float | None = None, detect_size: int | None = None) -> dict:
    """Ray task: read and decode a batch of paths for detection (image_io.DecodedImage; a URI giving up after
    read_timeout seconds); a path that fails keeps its reason and no image."""
    images, errors = [], []
    for path, error in zip(batch["path"], batch["error"]):
        image = None
        if not error:
            try:
                image = image_io.load_for_detection(str(path), read_timeout, detect_size)
            except Exception as failure:  # noqa: BLE001 - this image fails alone
                error = run_model.as_image_error(str(path), failure).reason
        images.append(image)
        errors.append(error)
    column = np.empty(len(images), dtype=object)
    column[:] = images
    return {"path": batch["path"], "image": column, "error": np.array(errors, dtype=object)}


class _Analyse:
    """Ray actor: one FaceAnalyzer, loaded once, detecting and analysing the faces of decoded batches."""

    settings: ClassVar[dict] = {}  # set by analyser_class

    def __init__(self):
        from face_analysis.analyzer import FaceAnalyzer

        self.analyzer = FaceAnalyzer(**self.settings)

    def __call__(self, batch: dict) -> dict:
        prepared = []
        for path, image, error in zip(batch["path"], batch["image"], batch["error"]):
            path = str(path)
            if error:
                prepared.append(run_model.PreparedInput(path, error=ImageError(path, str(error))))
            else:
                prepared.append(run_model.prepare_image(self.analyzer, path, image))
        results = list(run_model.in_model_batches(self.analyzer, prepared, run_model.MAX_BATCH_FACES, len(prepared)))
        return {"result": np.array([json.dumps(result.to_json()) for _, result in results], dtype=object),
                "identity": np.array([_text(p.identities) for p, _ in results], dtype=object)}


def _text(identities: np.ndarray | None) -> str:
    """An image's faces' embeddings (FaceAnalyzer.identities) as base64 text, which travels as the results do."""
    return "" if identities is None else base64.b64encode(identities.astype(np.float32).tobytes()).decode()


def analyser_class(settings: dict) -> type:
    """The actor class with its settings inside: Ray ships the class to each node once, and a restarted actor
    needs no constructor arguments from the object store."""
    return type("Analyse", (_Analyse,), {"settings": settings})


def _check_reachable(address: str, seconds: float = 10.0) -> None:
    """Fail at once, in one line, when a cluster address host:port does not answer (ray.init would wait long)."""
    import socket

    from face_analysis.errors import UsageError

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" and the like: Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise UsageError(f"--ray_address {address}: no Ray cluster answers there ({error.strerror or error})") from None


def _connect(address: str | None) -> bool:
    """Join the cluster at address (or RAY_ADDRESS), else start a local Ray instance on the cores this process
    may use; returns whether this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ core: warnings to its log files only
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
    with quiet_stderr():  # the C++ core's start-up note
        if address:
            ray.init(address=address, **quiet)
        else:
            # idle workers live a minute, not Ray's default second: the read tasks come in bursts, and each
            # new worker process costs a second or two of CPU importing Ray (7 of them in 2,000 photos, +10 %)
            ray.init(num_cpus=available_cores(), include_dashboard=False,
                     _system_config={"idle_worker_killing_time_threshold_ms": IDLE_WORKER_MS}, **quiet)
    return True


@contextlib.contextmanager
def _our_signal_handlers():
    """Keep the process's handlers of SIGTERM, SIGHUP and SIGINT through what is inside (ray.init replaces them
    with its own, which exit with the wrong status or leave Ctrl-C to Ray)."""
    stops = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    saved = {signum: signal.getsignal(signum) for signum in stops} if main else {}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


def analysis_dataset(paths: list, errors: list[str], settings: AnalyzerSettings, read_timeout: float | None = None):
    """The Ray Dataset of results (one JSON string a row, in input order) for the given paths; errors[i]
    non-empty marks a path that already failed (it is carried through as an error row)."""
    import ray

    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # results come out in input order, like --engine local
    context.enable_progress_bars = False  # the driver shows one bar: images done out of total
    context.print_on_execution_start = False
    threads = settings.threads or 1
    actors = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    # a block a batch (up to 128 an actor): the first results come sooner and no actor idles long at the end
    blocks = max(1, min(len(paths) // BATCH_IMAGES, 128 * actors))
    items = ray.data.from_items([{"path": str(p), "error": e} for p, e in zip(paths, errors)],
                                override_num_blocks=blocks)
    decoded = items.map_batches(_read_batch, batch_size=BATCH_IMAGES, batch_format="numpy", num_cpus=READ_CPUS,
                                fn_kwargs={"read_timeout": read_timeout, "detect_size": settings.detect_size})
    return decoded.map_batches(analyser_class({**asdict(settings), "threads": threads}), batch_size=BATCH_IMAGES,
                               batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                               num_cpus=ACTOR_CPUS * threads)


def run_images_ray(settings: AnalyzerSettings, inputs: list[str] | None, json_path=None, csv_path=None,
                   quiet: bool = False, img_list=None, parquet_dir=None, resume: bool = False,
                   parquet_rows: int = 10_000, address: str | None = None, jsonl_path=None,
                   read_timeout: float | None = None, embeddings_path=None,
                   recurring: bool = False) -> run_model.RunSummary:
    """Analyse every input with Ray (address: a cluster to join; default RAY_ADDRESS, else a local instance).

    Takes run_model.run_images's inputs and outputs (recurring: the driver's clustering of people), except
    annotated images and the window."""
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # Ray Data's notes on execution (before it is imported)
    import ray

    from face_analysis.models import compiled as lite_model
    from face_analysis.models import store as model_store

    run_model.check_detect_size(settings.detect_size)
    items, skipped = run_model.input_items(inputs, img_list)
    model_dir = model_store.resolve_model_dir(settings.model_type, settings.model_path)
    _, info = lite_model.load_lite_model(model_dir, settings.model_type, 1, settings.precision)  # its errors here
    settings = AnalyzerSettings(**{**asdict(settings), "model_path": str(Path(model_dir).resolve())})  # any node
    run_model.check_run_outputs(inputs or [], items, json_path, csv_path, None, model_dir, parquet_dir, resume,
                                jsonl_path, embeddings_path)
    sink = run_model.ResultSink(items, json_path, csv_path, parquet_dir, resume, quiet, parquet_rows, jsonl_path,
                                skipped, info["model_type"], settings.people, embeddings_path, recurring)
    started = False
    try:
        if sink.pending:
            with _our_signal_handlers():  # ray.init installs its own; SIGTERM/SIGHUP/Ctrl-C must stop the run
                started = _connect(address)
            paths = [run_model.item_name(item) for item in sink.pending]
            errors = [item.reason if isinstance(item, ImageError) else "" for item in sink.pending]
            for batch in analysis_dataset(paths, errors, settings, read_timeout).iter_batches(batch_format="numpy",
                                                                                               batch_size=None):
                for text, identity in zip(batch["result"], batch["identity"]):
                    rows = np.frombuffer(base64.b64decode(identity), np.float32).reshape(-1, EMBEDDING_DIM) \
                        if settings.people else None
                    sink.add(ImageResult.from_json(json.loads(text)), rows)
        sink.finish()
    finally:
        sink.close()
        if started:
            ray.shutdown()
    return sink.summary
