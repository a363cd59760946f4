"""Inputs are never written over: every output path is checked before any work starts.

An output may not be an input (compared by resolved path and by inode, so symlinks, `./a.jpg` against
`a.jpg` and hard links are caught), may not be a folder that holds inputs, and may not replace an existing
file that does not look like what this tool writes there. Two outputs of one run may not be the same file.
Every refusal is a UsageError naming both paths."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from face_analysis.errors import UsageError

# what a results file of this tool starts with (a JSON list or object, a CSV with this tool's header), `report`'s
# outputs (its JSON, its HTML page) and `run --embeddings`' (a NumPy .npz, which is a zip file)
_SIGNATURES = {"json": (b"[", b"{"), "csv": (b"image,",), "jsonl": (b"{",), "report": (b'{\n  "faces"',),
               "report page": (b"<!doctype html",), "embeddings": (b"PK\x03\x04",)}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _resolved(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


class InputSet:
    """The files and folders a command reads, for comparing outputs against them."""

    def __init__(self, paths: Iterable[str | Path], model_dir: Path | None = None):
        model_files = sorted(Path(model_dir).iterdir()) if model_dir else []  # a model's files are inputs too
        self.paths = [Path(p) for p in [*paths, *model_files] if str(p) not in ("", "-")]
        self._resolved = {_resolved(p): p for p in self.paths}
        self._identities = {}
        for path in self.paths:
            identity = _identity(path)
            if identity is not None:
                self._identities[identity] = path

    def same_as(self, output: Path) -> Path | None:
        """The input that `output` is (same resolved path or same inode), if any."""
        match = self._resolved.get(_resolved(output))
        if match is None:
            identity = _identity(output)
            match = self._identities.get(identity) if identity else None
        return match

    def inside(self, folder: Path) -> Path | None:
        """An input that lies in `folder` or below it, if any."""
        root = _resolved(folder)
        for resolved, path in self._resolved.items():
            if resolved == root or root in resolved.parents:
                return path
        return None


def _head(path: Path, size: int = 16) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except OSError:
        return b""


def _is_video(head: bytes) -> bool:
    return head[4:8] == b"ftyp" or head[:4] in (b"RIFF", b"\x1aE\xdf\xa3")


def _is_image(head: bytes) -> bool:
    """JPEG, PNG, BMP, WebP or TIFF: what run's annotated copies are written as."""
    return (head[:2] in (b"\xff\xd8", b"BM") or head[:8] == b"\x89PNG\r\n\x1a\n" or head[8:12] == b"WEBP"
            or head[:4] in (b"II*\x00", b"MM\x00*"))


def _looks_like(kind: str, path: Path) -> bool:
    head = _head(path)
    if not head.strip():
        return True  # an empty file holds nothing to lose
    if kind == "video":
        return _is_video(head)
    if kind == "image":
        return _is_image(head)
    return head.lstrip().startswith(_SIGNATURES[kind])


def check_output_file(option: str, path: str | Path | None, inputs: InputSet, kind: str) -> None:
    """Refuse an output file that is an input, a folder, or an existing file this tool did not write."""
    if path is None or str(path) == "-":
        return
    path = Path(path)
    if not str(path).strip():
        raise UsageError(f"{option}: empty file name")
    same = inputs.same_as(path)
    if same is not None:
        raise UsageError(f"{option} {path}: is the input {same}; writing there would destroy it, choose another file")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, not a file")
    if path.exists() and not path.is_file():
        raise UsageError(f"{option} {path}: not a regular file")
    if path.is_file() and not _looks_like(kind, path):
        raise UsageError(f"{option} {path}: exists and is not a {kind} file written by this tool; "
                         "remove it or choose another name")


def check_result_outputs(inputs: InputSet, json_path, csv_path, output, output_kind: str, jsonl_path=None,
                         embeddings_path=None) -> None:
    """The checks every run makes: --json, --csv, --jsonl, --embeddings and an --output file each against the
    inputs, and apart."""
    check_distinct({"--json": json_path, "--csv": csv_path, "--jsonl": jsonl_path, "--output": output,
                    "--embeddings": embeddings_path})
    check_output_file("--embeddings", embeddings_path, inputs, "embeddings")
    check_output_file("--jsonl", jsonl_path, inputs, "jsonl")
    check_output_file("--json", json_path, inputs, "json")
    check_output_file("--csv", csv_path, inputs, "csv")
    check_output_file("--output", output, inputs, output_kind)


def check_output_folder(option: str, folder: str | Path | None, inputs: InputSet, scanned: Iterable = ()) -> None:
    """Refuse an output folder that holds an input (annotated copies could replace it), is an input file, or lies
    in a folder whose images are inputs (`scanned`: a later scan of it would take the copies for photos)."""
    if folder is None:
        return
    folder = Path(folder)
    same = inputs.same_as(folder)
    if same is not None and not folder.is_dir():
        raise UsageError(f"{option} {folder}: is the input {same}; choose another folder")
    inside = inputs.inside(folder)
    if inside is not None:
        raise UsageError(f"{option} {folder}: holds the input {inside}; annotated copies could replace it, "
                         "choose a folder outside the inputs")
    for root in scanned:
        if _resolved(Path(root)) in _resolved(folder).parents:
            raise UsageError(f"{option} {folder}: is inside the input folder {root}; scanning it again (--resume) "
                             "would take the annotated copies for photos, choose a folder outside it")


def check_distinct(outputs: dict[str, str | Path | None]) -> None:
    """Refuse two outputs of one run that are the same file."""
    seen: dict[Path | str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        resolved = "-" if str(path) == "-" else _resolved(Path(path))  # two outputs on stdout would interleave
        if resolved in seen:
            raise UsageError(f"{seen[resolved]} and {option} are both {path}; give each output its own file")
        seen[resolved] = option


def check_model_folder(option: str, folder: Path, inputs: InputSet, is_saved_model) -> None:
    """A training run may only replace a folder that holds a model this tool saved, or create a new one."""
    folder = Path(folder)
    for clash in (inputs.same_as(folder), inputs.inside(folder)):
        if clash is not None:
            raise UsageError(f"{option} {folder}: overlaps the data {clash}; save the model elsewhere")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UsageError(f"{option} {folder}: is a file, not a model folder; choose another path")
    if any(folder.iterdir()) and not is_saved_model(folder):
        raise UsageError(f"{option} {folder}: holds files that are not a model saved by this tool; "
                         "choose an empty or new folder")


def check_stats_folder(option: str, folder: Path, inputs: InputSet, owned_names: Iterable[str]) -> None:
    """Plots and reports may only go to a new or empty folder, or one that already holds this tool's reports."""
    folder = Path(folder)
    for clash in (inputs.same_as(folder), inputs.inside(folder)):
        if clash is not None:
            raise UsageError(f"{option} {folder}: overlaps the data {clash}; write the statistics elsewhere")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder}: is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not any((folder / name).exists() for name in owned_names):
        raise UsageError(f"{option} {folder}: holds files this tool did not write; choose an empty or new folder")


def check_parquet_folder(folder: str | Path | None, inputs: InputSet, resume: bool, jsonl: bool = False) -> None:
    """Refuse a --parquet folder that is an input file, holds files this tool did not write or is being written
    by another run; one holding an earlier run's results only with --resume (which continues it)."""
    if folder is None:
        if resume and not jsonl:
            raise UsageError("--resume continues the results of a --parquet folder or a --jsonl file: "
                             "give --parquet DIR or --jsonl FILE")
        return
    folder = Path(folder)
    same = inputs.same_as(folder)
    if same is not None and not folder.is_dir():
        raise UsageError(f"--parquet {folder}: is the input {same}; choose a folder")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--parquet {folder}: is a file, not a folder")
    if not folder.is_dir():
        return
    from face_analysis.io.durable import folder_locked
    from face_analysis.io.writers import PARQUET_PREFIX

    names = [entry.name for entry in folder.iterdir()]
    if folder_locked(folder):
        raise UsageError(f"--parquet {folder}: another run is writing this folder; wait for it or choose another "
                         "folder")
    foreign = [n for n in names if not n.lstrip(".").startswith(PARQUET_PREFIX)]
    if foreign:
        raise UsageError(f"--parquet {folder}: holds files this tool did not write ({foreign[0]}); "
                         "choose an empty or new folder")
    if any(n.startswith(PARQUET_PREFIX) for n in names) and not resume:
        raise UsageError(f"--parquet {folder}: holds the results of an earlier run; add --resume to continue it, "
                         "or choose an empty or new folder")
