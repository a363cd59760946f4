"""`report --count people`: each person of `run --people`'s results counted once, their attributes the mean of
their faces' probabilities (from every face of theirs, so more accurate than one face); the correction and the
intervals then run on the people as they run on faces. `--count screen_time` (video results): each person
weighed by the frames they are in, the bootstrap drawing people with their weights.

A person is a number within one input given to `report` (one run's results): the same number in two inputs is
two people, since person numbers mean nothing outside the run that gave them."""
from __future__ import annotations

import numpy as np

from face_analysis.reporting.attributes import ATTRIBUTES, ReportError

COUNTS = ("faces", "people", "screen_time")  # what `report --count` counts (default faces)


class PeopleTotals:
    """Per person (the input it is in, its number): the sum of its faces' probabilities and how many faces."""

    def __init__(self, attributes):
        self.attributes = list(attributes)
        self.rows: dict[tuple[int, int], int] = {}  # (input, person) -> row
        self.sums = {a: np.zeros((0, len(ATTRIBUTES[a]))) for a in self.attributes}
        self.counts = np.zeros(0, np.int64)
        self.faces = self.unnumbered = 0  # analysed faces read; those of them without a person
        self.inputs: set[int] = set()  # the inputs that hold people

    def add(self, probs: dict[str, np.ndarray], persons: np.ndarray, results: int) -> None:
        """Some faces of one input: their probabilities and persons (-1: none)."""
        known = persons >= 0
        self.faces += len(persons)
        self.unnumbered += int((~known).sum())
        if not known.any():
            return
        self.inputs.add(results)
        rows = np.array([self.rows.setdefault((results, int(p)), len(self.rows)) for p in persons[known]])
        if len(self.rows) > len(self.counts):  # room for the new people, doubling
            size = max(len(self.rows), 2 * len(self.counts))
            self.counts = np.concatenate([self.counts, np.zeros(size - len(self.counts), np.int64)])
            self.sums = {a: np.concatenate([s, np.zeros((size - len(s), s.shape[1]))]) for a, s in self.sums.items()}
        np.add.at(self.counts, rows, 1)
        for a in self.attributes:
            np.add.at(self.sums[a], rows, probs[a][known])

    def means(self, sources: list[str]) -> dict[str, np.ndarray]:
        """Each person's attributes: the mean of their faces' probabilities. Faces read, none with a person: an
        error (the results were made without --people)."""
        if self.faces and not self.rows:
            raise ReportError(f"{', '.join(sources)}: no face has a person (results of `run` without --people); "
                              "rerun `run` with --people to count people")
        count = len(self.rows)
        return {a: s[:count] / self.counts[:count, None] for a, s in self.sums.items()}

    def frames(self) -> np.ndarray:
        """Each person's faces in the results: in a video's, the frames they are in (their time on screen)."""
        return self.counts[:len(self.rows)].astype(np.float64)

    def notes(self, count: str = "people") -> list[str]:
        notes = [f"people counted once each ({len(self.rows)} people in {self.faces} faces), each with the mean of "
                 "their faces' probabilities" if count == "people" else
                 f"each of {len(self.rows)} people weighed by their time on screen (the frames they are in, "
                 f"{self.faces} faces in all), each with the mean of their faces' probabilities"]
        notes.append("people who appear once each are often joined to others (FaceNet puts many strangers as close as "
                     "photos of one person), so where many appear once there are more people than counted "
                     "(docs/people.md)")
        if self.unnumbered:
            notes.append(f"{self.unnumbered} analysed faces have no person (too small to tell apart) and are left out")
        if len(self.inputs) > 1:
            notes.append(f"{len(self.inputs)} inputs hold people: person numbers hold within one run's results, so "
                         "a person in two of them is counted twice")
        return notes


def people_totals(count: str, attributes) -> PeopleTotals | None:
    """The totals that `count` "people" or "screen_time" gathers; None for "faces"."""
    if count not in COUNTS:
        raise ReportError(f"count {count!r}: {', '.join(COUNTS[:-1])} or {COUNTS[-1]}")
    return None if count == "faces" else PeopleTotals(attributes)
