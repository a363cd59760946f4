"""`run --img`: analyse images, folders and globs, then print, draw and write the results.

Files are read, decoded, searched for faces and cropped by a pool of threads, a bounded window ahead of
the model, which then takes the faces of several images in one call."""
from __future__ import annotations

import logging
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from face_analysis.analyzer import FaceAnalyzer, PreparedImage
from face_analysis.errors import ImageError, UsageError
from face_analysis.io import guard as output_guard
from face_analysis.io import images as image_io
from face_analysis.io import lists as image_lists
from face_analysis.io import remote
from face_analysis.io import writers as results_io
from face_analysis.io.display import Window, wants_quit, why_no_window
from face_analysis.io.images import one_line
from face_analysis.results import ImageResult
from face_analysis.runners.native_stderr import NativeStderr
from face_analysis.runners.sink import ResultSink, RunSummary, item_name  # noqa: F401 - both engines use them here

log = logging.getLogger(__name__)
MAX_BATCH_FACES, MAX_BATCH_IMAGES = 32, 16  # one model call takes the faces of up to this many images
ANNOTATED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MIN_DETECT_SIZE = 32  # --detect_size below this finds no face at all (0: full size)
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")


@dataclass
class PreparedInput:
    """An input after reading, decoding, detection and cropping, before the model."""

    item: str
    prepared: PreparedImage | None = None
    image: np.ndarray | None = None  # kept only when it is to be drawn
    error: ImageError | None = None
    identities: np.ndarray | None = None  # with people, after the model: its faces' embeddings (analyzer.identities)


def writable_folder(folder: Path) -> Path | None:
    """The folder, created if needed, or None (after one error line) when nothing can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return folder
    except OSError as error:
        print(f"error: {folder}: cannot write annotated images there ({error.strerror or error}); "
              "analysing without them", file=sys.stderr)
        return None


def write_image(path: Path, bgr: np.ndarray) -> bool:
    """Write an image file in the format its extension names; False when it cannot be. Encoded here and written
    by Python: cv2.imwrite crashes on a name that is not UTF-8 (an input's, kept in its annotated copy's name)."""
    try:
        ok, data = cv2.imencode(path.suffix, bgr)
        if ok:
            path.write_bytes(data.tobytes())
        return bool(ok)
    except (OSError, cv2.error):
        return False


def output_path(out_dir: Path, image_path: str, used: set) -> Path:
    """An annotated image's path in out_dir: the input's name, or with _1, _2... when two inputs share a name
    or a file of that name is already there (it is never written over)."""
    stem, suffix = Path(image_path).stem, Path(image_path).suffix.lower() or ".jpg"
    if suffix not in ANNOTATED_EXTENSIONS:
        suffix = ".png"
    candidate, n = out_dir / f"{stem}{suffix}", 1
    while candidate in used or candidate.exists():  # never over a file that was there before this run
        candidate, n = out_dir / f"{stem}_{n}{suffix}", n + 1
    used.add(candidate)
    return candidate


def _unsupported(error: ImageError) -> ImageError:
    """"not an image or a damaged one" made "unsupported format" for a file whose header shows a format OpenCV
    does not decode: HEIC/HEIF, a TIFF of 32-bit samples."""
    if error.reason != "not an image or a damaged one" or image_io.is_uri(error.path):
        return error
    from PIL import Image

    try:
        with open(error.path, "rb") as file:
            head = file.read(16)
        if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
            return ImageError(error.path, "unsupported format (HEIC/HEIF: convert it to JPEG)")
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            with Image.open(error.path) as image:
                if image.mode in ("F", "I"):
                    return ImageError(error.path, "unsupported format (a TIFF of 32-bit samples)")
    except Exception:  # noqa: BLE001 - unreadable or unparsed: the decoder's word stands
        pass
    return error


def as_image_error(item, error: BaseException) -> ImageError:
    """Whatever went wrong with one input, as its ImageError (the batch goes on)."""
    if isinstance(error, ImageError):
        return _unsupported(error)
    if isinstance(error, MemoryError):
        return ImageError(item, "not enough memory to analyse it")
    return ImageError(item, f"cannot analyse ({one_line(error)})")  # e.g. an OpenCV assertion on an odd image


def failed_input(item, error: BaseException) -> PreparedInput:
    """An input that failed, carrying its ImageError."""
    return PreparedInput(item, error=as_image_error(item, error))


def prepare_image(analyzer: FaceAnalyzer, item: str, image: np.ndarray | image_io.DecodedImage,
                  keep_image: bool = False) -> PreparedInput:
    """Detect and crop the faces of one decoded image (kept at full size when `keep_image`, to be drawn)."""
    try:
        prepared = analyzer.prepare(image)
        if keep_image and isinstance(image, image_io.DecodedImage):
            image = image.full()
        return PreparedInput(item, prepared, image if keep_image else None)
    except Exception as error:  # noqa: BLE001 - this input fails alone
        return failed_input(item, error)


def _prepare(analyzer: FaceAnalyzer, item, keep_image: bool, read_timeout: float | None) -> PreparedInput:
    """Read, decode, detect and crop one input."""
    if isinstance(item, ImageError):
        return PreparedInput(item.path, error=item)
    try:
        image = image_io.load_for_detection(item, read_timeout, analyzer.detect_size)
    except Exception as error:  # noqa: BLE001 - this input fails alone
        return failed_input(item, error)
    return prepare_image(analyzer, item, image, keep_image)


def _prepare_noted(notes: NativeStderr, analyzer: FaceAnalyzer, item, keep_image: bool,
                   read_timeout: float | None) -> PreparedInput:
    """_prepare, what libjpeg prints meanwhile named after the input (native_stderr)."""
    with notes.reading(item, lambda path: image_io.load_image(path, read_timeout)):
        return _prepare(analyzer, item, keep_image, read_timeout)


def _prepared_in_order(analyzer, items, keep_image: bool, workers: int, read_timeout: float | None,
                       notes: NativeStderr):
    """_prepare_noted over items in worker threads, in input order, never more than a small window ahead. Stopped
    early (a signal, an output error), it does not wait for the reads under way: a network read may block."""
    window, finished = deque(), False
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for item in items:
            window.append(pool.submit(_prepare_noted, notes, analyzer, item, keep_image, read_timeout))
            if len(window) > 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
        finished = True
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)


def in_model_batches(analyzer: FaceAnalyzer, prepared, max_faces: int, max_images: int):
    """Pairs (PreparedInput, ImageResult): the faces of several images go through the model (and FaceNet) at once."""
    group = []

    def flush():
        done = [p for p in group if p.error is None]
        faces = analyzer.finish([p.prepared for p in done])
        for p, rows in zip(done, analyzer.identities([p.prepared for p in done], faces) if analyzer.embedder else ()):
            p.identities = rows
        faces = iter(faces)
        results = []
        for p in group:
            if p.error is not None:
                results.append((p, ImageResult(p.error.path, error=p.error.reason, model=analyzer.model_type)))
            else:
                results.append((p, ImageResult(p.item, p.prepared.width, p.prepared.height, next(faces),
                                               model=analyzer.model_type)))
        group.clear()
        return results

    for item in prepared:
        group.append(item)
        if sum(len(p.prepared.detections) for p in group if p.prepared) >= max_faces or len(group) >= max_images:
            yield from flush()
    if group:
        yield from flush()


def _annotated_target(output, items) -> tuple[Path | None, Path | None]:
    """(folder, single file) for annotated copies: `--output FILE.jpg` with one input image names that file;
    otherwise `--output` is a folder."""
    if output is None:
        return None, None
    output = Path(output)
    single = len(items) == 1 and not isinstance(items[0], ImageError) and not output.is_dir()
    if single and output.suffix.lower() in ANNOTATED_EXTENSIONS:
        return None, output
    if single and image_io.is_image_name(output):
        raise UsageError(f"--output {output}: annotated images are written as {', '.join(ANNOTATED_EXTENSIONS)}; "
                         "name the file with one of these, or give a folder")
    return output, None


def check_detect_size(size: int | None) -> None:
    """Refuse a --detect_size too small for any face to be found (None or 0: full size)."""
    if size and size < MIN_DETECT_SIZE:
        raise UsageError(f"--detect_size {size}: too small to find a face; give at least {MIN_DETECT_SIZE} pixels "
                         "(0: full size)")


def check_run_outputs(inputs: list[str], items: list, json_path, csv_path, output,
                      model_dir: Path | None = None, parquet_dir=None,
                      resume: bool = False, jsonl_path=None, embeddings_path=None) -> tuple[Path | None, Path | None]:
    """Refuse, before any work, outputs that would write over an input (the model's files included) or a file
    this tool did not write; returns where annotated copies go (folder, single file)."""
    sources = output_guard.InputSet([*inputs, *(i for i in items if not isinstance(i, ImageError))], model_dir)
    out_dir, out_file = _annotated_target(output, items)
    output_guard.check_result_outputs(sources, json_path, csv_path, out_file, "image", jsonl_path, embeddings_path)
    output_guard.check_output_folder("--output", out_dir, sources, [i for i in inputs if os.path.isdir(i)])
    output_guard.check_parquet_folder(parquet_dir, sources, resume, jsonl_path is not None)
    return out_dir, out_file


def input_items(inputs: list[str] | None, img_list=None) -> tuple[list, str]:
    """The images to analyse: each input expanded (folders, globs), then the paths of the --img_list file as
    they are; inputs that match nothing come as ImageError. With the --img_list rows skipped, in words."""
    items = list(image_io.expand_inputs(inputs or []))
    if not img_list:
        return items, ""
    listed = image_lists.list_file(img_list)
    return items + listed.items, image_lists.describe_skipped(listed.skipped)


def run_images(analyzer: FaceAnalyzer, inputs: list[str], json_path=None, csv_path=None, output=None,
               show: bool = False, quiet: bool = False, workers: int | None = None, img_list=None,
               parquet_dir=None, resume: bool = False, parquet_rows: int = 10_000, jsonl_path=None, recurring=False,
               read_timeout: float | None = remote.DEFAULT_TIMEOUT, embeddings_path=None) -> RunSummary:
    """Analyse every input; a bad file is reported on stderr and the batch goes on (people: runners.people).

    output: a folder for annotated copies, or with a single input image a file name (.jpg, .png, ...).
    show: each annotated image in a window (any key: next image; q or Esc: stop), when there is a display.
    workers: threads reading, decoding and detecting ahead of the model (default: the analyser's threads, 2 at most).
    img_list: a file listing more image paths (lists.list_file).
    parquet_dir: a folder for results as Parquet files; jsonl_path: a JSON Lines file; resume: skip the images
    already there. read_timeout: seconds a URI read may take. embeddings_path, recurring: runners.people."""
    check_detect_size(analyzer.detect_size)
    items, skipped = input_items(inputs, img_list)
    out_dir, out_file = check_run_outputs(inputs or [], items, json_path, csv_path, output, analyzer.model_dir,
                                          parquet_dir, resume, jsonl_path, embeddings_path)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV's notes on a file name none; ours do
    window = Window() if show else None
    if window is not None and not window.available:
        print(f"warning: --show ignored: {why_no_window()}", file=sys.stderr)
        window = None
    with NativeStderr(results_io.printable_name) as notes:  # first: the progress bar then writes past it
        sink = ResultSink(items, json_path, csv_path, parquet_dir, resume, quiet, parquet_rows, jsonl_path, skipped,
                          analyzer.model_type, analyzer.embedder is not None, embeddings_path, recurring)
        if out_dir is not None:
            out_dir = writable_folder(out_dir)
            sink.summary.failed += out_dir is None
        try:
            keep = out_dir is not None or out_file is not None or window is not None
            prepared = _prepared_in_order(analyzer, sink.pending, keep, workers or min(2, analyzer.threads),
                                          read_timeout, notes)
            _deliver(analyzer, prepared, sink, out_dir, out_file, window)
            sink.finish()
        finally:
            sink.close()
            if window is not None:
                window.close()
    return sink.summary


def _deliver(analyzer: FaceAnalyzer, prepared, sink: ResultSink, out_dir: Path | None, out_file: Path | None,
             window: Window | None) -> None:
    """Each prepared input through the model, its result to the sink, its annotated copy written and shown."""
    used = set()
    for p, result in in_model_batches(analyzer, prepared, MAX_BATCH_FACES, MAX_BATCH_IMAGES):
        sink.add(result, p.identities)
        if p.image is not None:
            annotated = cv2.cvtColor(results_io.draw_faces(p.image, result.faces), cv2.COLOR_RGB2BGR)
            target = out_file or (output_path(out_dir, p.item, used) if out_dir is not None else None)
            if target is not None and not write_image(target, annotated):
                tqdm.write(f"error: {results_io.printable_name(str(target))}: cannot write the annotated image",
                           file=sys.stderr)
                sink.summary.failed += 1
            if window is not None and wants_quit(window.show(annotated)):
                sink.summary.stopped = True
                break
