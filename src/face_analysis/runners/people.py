"""`run --people`: every result held back with its faces' identity embeddings until all the images (or all the
video's frames) are done, then the faces (video: the tracks, each by its faces' mean embedding, so that a person
who leaves and comes back is one person) clustered once into people and the results given their person numbers
(identity.clustering; for images continue_people, which numbers them on from the earlier faces of a run that
--resume continues, read from the --embeddings file the earlier run wrote). Nothing is written before: the
numbers are known only at the end.

Embeddings are biometric data: they stay in this process's memory unless the user asks for them with
--embeddings FILE (write_embeddings)."""
from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path

import numpy as np

from face_analysis.errors import UsageError
from face_analysis.identity import clustering
from face_analysis.identity.embedding import EMBEDDING_DIM, IDENTITY_MIN_FACE
from face_analysis.io.durable import output_error
from face_analysis.io.writers import escaped_name
from face_analysis.results import ImageResult


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_embeddings_folder(path) -> None:
    """Fail before any work when the --embeddings file cannot be written where it is to go."""
    temporary = _temporary(Path(path))
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        temporary.unlink()
    except OSError as error:
        raise output_error("--embeddings", path, error) from None


def write_embeddings(path, images: list[str], faces: list[int], vectors: np.ndarray, people: list[int]) -> None:
    """--embeddings FILE: a NumPy .npz of `image` (each face's image, named as the results name it), `face` (its
    index in that image's faces), `embedding` (float32, 512) and `person`; readable by its owner alone, written
    whole (a temporary file renamed)."""
    path = Path(path)
    temporary = _temporary(path)
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            np.savez(file, image=np.array([escaped_name(image) for image in images], dtype=str),
                     face=np.array(faces, np.int64), embedding=np.asarray(vectors, np.float32),
                     person=np.array(people, np.int64))
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise output_error("--embeddings", path, error) from None


def read_embeddings(path) -> dict[tuple[str, int], tuple[str, np.ndarray, int]]:
    """An --embeddings file's rows by (image_key of the image, face): (the image as named, embedding, person)."""
    from face_analysis.runners.sink import row_key

    try:
        with np.load(path, allow_pickle=False) as data:
            rows = zip(data["image"].tolist(), data["face"].tolist(), data["embedding"].astype(np.float32),
                       data["person"].tolist())
            return {(row_key(image), int(face)): (image, vector, int(person)) for image, face, vector, person in rows
                    if vector.shape == (EMBEDDING_DIM,)}
    except FileNotFoundError:
        raise UsageError(f"--embeddings {path}: no such file; --resume --people needs the embeddings the earlier "
                         "run wrote there") from None
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"--embeddings {path}: not embeddings written by `run --people` ({error})") from None


class ImagePeople:
    """The results of `run --img --people`, each with its faces' embeddings, held until `numbered`; with
    --resume, the earlier results' people (`earlier`, then `continue_earlier`) numbered on."""

    def __init__(self, embeddings_path=None, recurring: bool = False):
        if embeddings_path is not None:
            check_embeddings_folder(embeddings_path)
        self.embeddings_path, self.recurring = embeddings_path, recurring
        self.results: list[ImageResult] = []
        self.vectors: list[np.ndarray] = []
        self.owners: list[tuple[int, int]] = []  # (result, face) of each embedding
        self.count = 0  # people, once numbered
        self.earlier_faces: list[tuple[str, int, int]] = []  # --resume: (image_key, face, person) done before
        self.earlier_unnumbered = 0  # --resume: faces done before large enough for a person but without one
        self.earlier_rows: list[tuple[str, np.ndarray, int, int]] = []  # their (image, embedding, person, face)

    def earlier(self, result: ImageResult, key: str) -> None:
        """A result an earlier run wrote (--resume), its image's image_key."""
        self.earlier_unnumbered += sum(face.person is None and not face.too_small and face.age is not None
                                       and face.face_size >= IDENTITY_MIN_FACE for face in result.faces)
        self.earlier_faces += [(key, index, face.person) for index, face in enumerate(result.faces)
                               if face.person is not None]

    def continue_earlier(self) -> None:
        """The earlier faces' embeddings read from the --embeddings file; refused in one line when the results
        done before are not of a --people run or the file does not hold their faces."""
        if self.earlier_unnumbered:
            raise UsageError(f"--resume --people: {self.earlier_unnumbered} face(s) done before have no person number "
                             "(results of `run` without --people); write the new run elsewhere")
        if not self.earlier_faces:
            return
        if self.embeddings_path is None:
            raise UsageError("--resume --people needs --embeddings FILE, the embeddings the earlier run wrote: the "
                             "faces done before are clustered with the new ones")
        rows = read_embeddings(self.embeddings_path)
        missing = [(key, face) for key, face, _ in self.earlier_faces if (key, face) not in rows]
        if missing:
            raise UsageError(f"--embeddings {self.embeddings_path}: holds no embedding for {len(missing)} of the "
                             f"{len(self.earlier_faces)} faces done before (first: face {missing[0][1]} of "
                             f"{missing[0][0]}): not the file of the run being continued")
        for key, face, person in self.earlier_faces:
            image, vector, written = rows[key, face]
            if written != person:
                raise UsageError(f"--embeddings {self.embeddings_path}: face {face} of {image} is person {written} "
                                 f"there and person {person} in the results: not the file of the run being continued")
            self.earlier_rows.append((image, vector, person, face))

    def add(self, result: ImageResult, identities: np.ndarray | None) -> None:
        """One image's result and its faces' embeddings (FaceAnalyzer.identities: a row of zeros, no person)."""
        if identities is not None:
            known = np.flatnonzero(np.abs(identities).sum(1) > 0)
            self.vectors.append(identities[known])
            self.owners += [(len(self.results), int(face)) for face in known]
        self.results.append(result)

    def numbered(self) -> list[ImageResult]:
        """The results in the order they came, every face given its person (None: too small to tell apart); the
        --embeddings file written."""
        vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, EMBEDDING_DIM), np.float32)
        images, earlier, earlier_people, faces = map(list, zip(*self.earlier_rows)) if self.earlier_rows else \
            ([], [], [], [])
        photos = [f"e{image}" for image in images] + [f"n{result}" for result, _ in self.owners]
        people = clustering.continue_people(np.reshape(earlier, (-1, EMBEDDING_DIM)), earlier_people, vectors, photos,
                                            join_fragments=self.recurring).tolist()  # no earlier faces: numbered anew
        self.count = len(set(people) | set(earlier_people))
        for (result, face), person in zip(self.owners, people):
            self.results[result].faces[face].person = person
        if self.embeddings_path is not None:
            write_embeddings(self.embeddings_path, images + [self.results[r].image for r, _ in self.owners],
                             faces + [face for _, face in self.owners],
                             np.concatenate([np.reshape(earlier, (-1, EMBEDDING_DIM)), vectors]),
                             earlier_people + people)
        return self.results


class TrackPeople:
    """The frames of `run --video --people` held until `numbered`, and each track's embeddings summed."""

    def __init__(self, recurring: bool = False):
        self.recurring = recurring
        self.frames: list[tuple[ImageResult, int]] = []
        self.sums: dict[int, np.ndarray] = {}

    def add_identity(self, track_id: int, vector: np.ndarray) -> None:
        self.sums[track_id] = self.sums.get(track_id, 0) + np.asarray(vector, np.float32)

    def add(self, result: ImageResult, frame: int) -> None:
        self.frames.append((result, frame))

    def numbered(self, fps: float) -> tuple[list[tuple[ImageResult, int]], dict[int, float]]:
        """The frames, every face given its track's person (None: a track never large enough to tell apart; two
        tracks on screen at once are never one person), and each person's time on screen in seconds (the frames
        they are in, over the frame rate)."""
        tracks = sorted(self.sums)
        vectors = np.array([self.sums[track] for track in tracks], np.float32).reshape(-1, EMBEDDING_DIM)
        row = {track: i for i, track in enumerate(tracks)}
        together = {(row[a], row[b]) for result, _ in self.frames for a, b in itertools.combinations(
            sorted({face.track_id for face in result.faces} & row.keys()), 2)}  # on screen at once: two people
        person_of = dict(zip(tracks, clustering.cluster_embeddings(
            vectors, apart=sorted(together), join_fragments=self.recurring).tolist()))
        frames_in = Counter()
        for result, _ in self.frames:
            for face in result.faces:
                face.person = person_of.get(face.track_id)
            frames_in.update({face.person for face in result.faces} - {None})
        return self.frames, {person: round(count / fps, 2) for person, count in sorted(frames_in.items())}
