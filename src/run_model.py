"""`run --img`: analyse images, folders and globs, then print, draw and write the results."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

import image_io
import results_io
from analyzer import FaceAnalyzer, ImageResult

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    images: int = 0
    faces: int = 0
    failed: int = 0


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


def run_images(analyzer: FaceAnalyzer, inputs: list[str], json_path=None, csv_path=None, out_dir=None,
               show: bool = False, quiet: bool = False) -> RunSummary:
    """Analyse every input; a bad file is reported on stderr and the batch goes on."""
    summary, used = RunSummary(), set()
    if out_dir is not None:
        out_dir = writable_folder(Path(out_dir))
        summary.failed += out_dir is None
    json_writer = results_io.JsonListWriter(json_path) if json_path else None
    csv_writer = results_io.CsvWriter(csv_path) if csv_path else None
    to_stdout = "-" in (str(json_path), str(csv_path))
    display = show
    try:
        items = list(image_io.expand_inputs(inputs))
        for item in tqdm(items, desc="analysing", unit="img", disable=quiet or len(items) < 2, file=sys.stderr):
            try:
                if isinstance(item, image_io.ImageError):
                    raise item
                image = image_io.load_image(item)
                result = analyzer.analyze_image(image, item)
            except image_io.ImageError as error:
                tqdm.write(f"error: {error}", file=sys.stderr)
                result, image = ImageResult(error.path, error=error.reason), None
                summary.failed += 1
            summary.images += 1
            summary.faces += len(result.faces)
            if not to_stdout and not quiet and result.error is None:
                print(f"{result.image}: {len(result.faces)} face(s)")
                for face in result.faces:
                    print("  " + results_io.describe_face(face))
            if json_writer:
                json_writer.write(result.to_json())
            if csv_writer:
                csv_writer.write(result)
            if image is not None and (out_dir is not None or display):
                annotated = cv2.cvtColor(results_io.draw_faces(image, result.faces), cv2.COLOR_RGB2BGR)
                if out_dir is not None:
                    target = output_path(out_dir, item, used)
                    if not cv2.imwrite(str(target), annotated):
                        tqdm.write(f"error: {target}: cannot write the annotated image", file=sys.stderr)
                        summary.failed += 1
                if display and show_window("Face Analysis", annotated) is None:
                    log.warning("no display available: --show ignored")
                    display = False
    finally:
        if json_writer:
            json_writer.close()
        if csv_writer:
            csv_writer.close()
        if display:
            cv2.destroyAllWindows()
    return summary
