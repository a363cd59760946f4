"""Where each image's result goes, for both engines: the output files, the lines printed, the progress bar and
the summary; with --resume, the images an earlier run already wrote (to --parquet or --jsonl) are left out.

An image is one result however it is named: inputs, and the rows already written, are identified by
`image_io.image_key` (the resolved path; for URIs the normalised URI), so `./imgs/a.jpg`, `/abs/imgs/a.jpg`
and a link to it are one image, analysed once and written once. --resume refuses to add one model's results to
another's."""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from face_analysis.errors import ImageError, UsageError
from face_analysis.io import durable
from face_analysis.io import images as image_io
from face_analysis.io import writers as results_io
from face_analysis.results import ImageResult
from face_analysis.runners.people import ImagePeople


@dataclass
class RunSummary:
    images: int = 0
    faces: int = 0
    too_small: int = 0  # faces found but too small to analyse (counted in faces too)
    failed: int = 0
    stopped: bool = False  # the user closed the window with q or Esc
    skipped_rows: str = ""  # --img_list rows skipped (blank, comment, not UTF-8), as lists.describe_skipped says
    duplicates: int = 0  # inputs naming an image already listed, analysed once
    people: int | None = None  # with people: how many people the faces are of


def item_name(item) -> str:
    return item.path if isinstance(item, ImageError) else str(item)


def row_key(name: str, base: str | None = None) -> str:
    """The image_key of a result row's image, its name as escaped_name wrote it (a file that has the written name
    itself is that file)."""
    plain = results_io.unescaped_name(name)
    if plain != name and os.path.lexists(os.path.join(base or "", name)):
        plain = name
    return image_io.image_key(plain, base)


def _models_before(parquet_dir, jsonl_path) -> Iterator[tuple[str, str]]:
    """(option and path, model) for each model named by the results an earlier run wrote."""
    import pyarrow.parquet as pq

    for path in results_io.parquet_files(parquet_dir) if parquet_dir and Path(parquet_dir).is_dir() else []:
        if "model" not in pq.read_schema(path).names:  # written before results named their model
            continue
        for model in set(pq.read_table(path, columns=["model"]).column("model").to_pylist()) - {None}:
            yield f"--parquet {parquet_dir}", model
    if jsonl_path and str(jsonl_path) != "-" and Path(jsonl_path).is_file():
        with open(jsonl_path, "rb") as file:  # "model" follows "image", whose quotes are escaped: the first match
            models = {match.group(1) for match in map(re.compile(rb'"model": "([^"]*)"').search, file) if match}
        yield from ((f"--jsonl {jsonl_path}", model.decode("utf-8", "replace")) for model in models)


def check_resume_model(model: str | None, parquet_dir, jsonl_path) -> None:
    """Refuse --resume onto results of another model: one file would mix two models' predictions."""
    for output, before in _models_before(parquet_dir, jsonl_path) if model else ():
        if before != model:
            raise UsageError(f"{output}: holds results of the {before} model; --resume with the {model} model would "
                             f"mix two models in it: continue with the {before} model, or write elsewhere")


def parquet_done(folder) -> Iterator[tuple[list[dict], str | None]]:
    """The rows of a --parquet folder's files, each file's with the folder its relative names start from."""
    import pyarrow.parquet as pq

    for path in results_io.parquet_files(folder):
        metadata = pq.read_schema(path).metadata or {}
        base = metadata.get(results_io.BASE_KEY)
        yield pq.read_table(path, schema=results_io.parquet_schema()).to_pylist(), base.decode() if base else None


class ResultSink:
    """With resume, the images already in the --parquet folder or the --jsonl file are counted and copied to the
    other outputs first, and `pending` leaves them out; inputs naming one image twice are analysed once. With
    people, the results are held until `finish` gives them their person numbers (runners.people.ImagePeople;
    embeddings_path: --embeddings; recurring: --recurring)."""

    def __init__(self, items: list, json_path=None, csv_path=None, parquet_dir=None, resume: bool = False,
                 quiet: bool = False, parquet_rows: int = 10_000, jsonl_path=None, skipped_rows: str = "",
                 model: str | None = None, people: bool = False, embeddings_path=None, recurring: bool = False):
        if resume:
            check_resume_model(model, parquet_dir, jsonl_path)
        self.summary, self.quiet = RunSummary(skipped_rows=skipped_rows), quiet
        self.people = ImagePeople(embeddings_path, recurring) if people else None
        self.writers = results_io.ResultWriters(json_path, csv_path, parquet_dir, parquet_rows, jsonl_path, resume)
        done: set[str] = set()
        if resume:
            try:
                self._resume(done, parquet_dir, jsonl_path)
                if self.people is not None:
                    self.people.continue_earlier()
            except BaseException:
                self.writers.close()  # each output closed valid, unlocked
                raise
        self.pending, listed = [], set(done)
        for item in items:
            key = image_io.image_key(item_name(item))
            if key in listed:
                self.summary.duplicates += key not in done
                continue
            listed.add(key)
            self.pending.append(item)
        if done:
            print(f"resuming: {len(done)} image(s) done before, {len(self.pending)} to go", file=sys.stderr)
        if self.summary.duplicates:
            print(f"warning: {self.summary.duplicates} input(s) named an image already listed (the same file "
                  "under another name); each image is analysed once", file=sys.stderr)
        self.progress = tqdm(total=len(self.pending), desc="analysing", unit="img", file=sys.stderr,
                             disable=quiet or len(self.pending) < 2)

    def _resume(self, done: set, parquet_dir, jsonl_path) -> None:
        """Count and copy the results an earlier run wrote; each image once, into each output that lacks it."""
        in_jsonl, lines_end = set(), 0
        if jsonl_path and self.writers.jsonl and self.writers.jsonl.file.fd is not None:
            lines_end = self.writers.jsonl.file.end
            in_jsonl = {row_key(row["image"]) for row in durable.read_json_lines(jsonl_path, lines_end)}
        if parquet_dir and Path(parquet_dir).is_dir():
            for rows, base in parquet_done(parquet_dir):
                for row in rows:
                    key = row_key(row["image"], base)
                    if key not in done:
                        done.add(key)
                        self._done_before(row, key, to_parquet=False, to_jsonl=key not in in_jsonl)
        if in_jsonl:
            for row in durable.read_json_lines(jsonl_path, lines_end):
                key = row_key(row["image"])
                if key not in done:
                    done.add(key)
                    self._done_before(row, key, to_parquet=True, to_jsonl=False)

    def _done_before(self, row: dict, key: str, to_parquet: bool, to_jsonl: bool) -> None:
        result = ImageResult.from_json(row)
        self._count(result)
        if self.people is not None:
            self.people.earlier(result, key)
        self.writers.write(result, to_parquet=to_parquet, to_jsonl=to_jsonl)

    def _count(self, result: ImageResult) -> None:
        self.summary.images += 1
        self.summary.faces += len(result.faces)
        self.summary.too_small += sum(face.too_small for face in result.faces)
        self.summary.failed += result.error is not None

    def add(self, result: ImageResult, identities=None) -> None:
        """One image's result: counted, its error printed on stderr, its faces printed and written (with people:
        held, with its faces' embeddings, until `finish`)."""
        self.progress.update(1)
        self._count(result)
        if result.error is not None:
            tqdm.write(f"error: {results_io.printable_name(result.image)}: {result.error}", file=sys.stderr)
        if self.people is not None:
            self.people.add(result, identities)
        else:
            self._write(result)

    def _write(self, result: ImageResult) -> None:
        if result.error is None and not self.writers.to_stdout and not self.quiet:
            tqdm.write(f"{results_io.printable_name(result.image)}: {len(result.faces)} face(s)")
            for face in result.faces:
                tqdm.write("  " + results_io.describe_face(face))
        self.writers.write(result)

    def finish(self) -> None:
        """The run's end, all its images done: with people, the held results numbered, printed and written."""
        if self.people is not None:
            self.progress.close()  # the lines come after the bar
            for result in self.people.numbered():
                self._write(result)
            self.summary.people = self.people.count

    def close(self) -> None:
        self.progress.close()
        self.writers.close()
