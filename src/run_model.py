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

import image_io
import results_io
from analyzer import FaceAnalyzer, ImageResult, predictions_from_outputs

log = logging.getLogger(__name__)
MAX_BATCH_FACES, MAX_BATCH_IMAGES = 32, 16  # one model call takes the faces of up to this many images


@dataclass
class RunSummary:
    images: int = 0
    faces: int = 0
    failed: int = 0


@dataclass
class _Prepared:
    """An input after reading, decoding, detection and cropping, before the model."""

    item: str
    width: int = 0
    height: int = 0
    boxes: list | None = None
    crops: np.ndarray | None = None
    image: np.ndarray | None = None  # kept only when it is to be drawn
    error: image_io.ImageError | None = None


def show_window(title: str, image_bgr, wait_ms: int = 0) -> int | None:
    """Show an image in a window and return the key pressed (-1 for none), or None, without failing,
    when no display is available."""
    try:
        cv2.imshow(title, image_bgr)
        return cv2.waitKey(wait_ms)
    except cv2.error:
        return None


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


def output_path(out_dir: Path, image_path: str, used: set) -> Path:
    """An annotated image's path in out_dir, made unique when two inputs share a name."""
    stem, suffix = Path(image_path).stem, Path(image_path).suffix.lower() or ".jpg"
    if suffix not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        suffix = ".png"
    candidate, n = out_dir / f"{stem}{suffix}", 1
    while candidate in used:
        candidate, n = out_dir / f"{stem}_{n}{suffix}", n + 1
    used.add(candidate)
    return candidate


def _prepare(analyzer: FaceAnalyzer, item, keep_image: bool) -> _Prepared:
    if isinstance(item, image_io.ImageError):
        return _Prepared(item.path, error=item)
    try:
        image = image_io.load_image(item)
    except image_io.ImageError as error:
        return _Prepared(item, error=error)
    boxes, crops = analyzer.detect_and_crop(image)
    return _Prepared(item, image.shape[1], image.shape[0], boxes, crops, image if keep_image else None)


def _prepared_in_order(analyzer, items, keep_image: bool, workers: int):
    """_prepare over items in worker threads, in input order, never more than a small window ahead."""
    window = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item in items:
            window.append(pool.submit(_prepare, analyzer, item, keep_image))
            if len(window) > 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _in_model_batches(analyzer, prepared, max_faces: int, max_images: int):
    """Groups of (_Prepared, ImageResult): the faces of several images go through the model in one call."""
    group = []

    def flush():
        with_faces = [p for p in group if p.boxes]
        outputs = analyzer.predict_crops(np.concatenate([p.crops for p in with_faces])) if with_faces else None
        start, results = 0, []
        for p in group:
            if p.error is not None:
                results.append((p, ImageResult(p.error.path, error=p.error.reason)))
                continue
            faces = []
            if p.boxes:
                part = {k: v[start:start + len(p.boxes)] for k, v in outputs.items()}
                faces, start = predictions_from_outputs(part, p.boxes), start + len(p.boxes)
            results.append((p, ImageResult(p.item, p.width, p.height, faces)))
        group.clear()
        return results

    for item in prepared:
        group.append(item)
        if sum(len(p.boxes or ()) for p in group) >= max_faces or len(group) >= max_images:
            yield from flush()
    if group:
        yield from flush()


def run_images(analyzer: FaceAnalyzer, inputs: list[str], json_path=None, csv_path=None, out_dir=None,
               show: bool = False, quiet: bool = False, workers: int = 2) -> RunSummary:
    """Analyse every input; a bad file is reported on stderr and the batch goes on."""
    summary, used = RunSummary(), set()
    writers = results_io.ResultWriters(json_path, csv_path)
    if out_dir is not None:
        out_dir = writable_folder(Path(out_dir))
        summary.failed += out_dir is None
    display = show
    try:
        items = list(image_io.expand_inputs(inputs))
        prepared = _prepared_in_order(analyzer, items, out_dir is not None or display, workers)
        progress = tqdm(total=len(items), desc="analysing", unit="img", disable=quiet or len(items) < 2,
                        file=sys.stderr)
        for p, result in _in_model_batches(analyzer, prepared, MAX_BATCH_FACES, MAX_BATCH_IMAGES):
            progress.update(1)
            summary.images += 1
            summary.faces += len(result.faces)
            if p.error is not None:
                tqdm.write(f"error: {p.error}", file=sys.stderr)
                summary.failed += 1
            elif not writers.to_stdout and not quiet:
                tqdm.write(f"{result.image}: {len(result.faces)} face(s)")
                for face in result.faces:
                    tqdm.write("  " + results_io.describe_face(face))
            writers.write(result)
            if p.image is not None:
                annotated = cv2.cvtColor(results_io.draw_faces(p.image, result.faces), cv2.COLOR_RGB2BGR)
                if out_dir is not None:
                    target = output_path(out_dir, p.item, used)
                    if not cv2.imwrite(str(target), annotated):
                        tqdm.write(f"error: {target}: cannot write the annotated image", file=sys.stderr)
                        summary.failed += 1
                if display and show_window("Face Analysis", annotated) is None:
                    log.warning("no display available: --show ignored")
                    display = False
        progress.close()
    finally:
        writers.close()
        if show:
            cv2.destroyAllWindows()
    return summary
