"""The library's entry point: find faces and predict age, gender and race, returning plain dataclasses."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face_analysis.detection import crop as face_crop
from face_analysis.detection import detectors as face_detection
from face_analysis.detection.detectors import AUTO_UPSCALE, DEFAULT_DETECT_SIZE, Detection
from face_analysis.identity import clustering as identity_clustering
from face_analysis.identity import embedding as identity
from face_analysis.io import images as image_io
from face_analysis.labels import DEFAULT_PRECISION, GENDERS, RACES
from face_analysis.models import compiled as lite_model
from face_analysis.models import store as model_store
from face_analysis.results import FacePrediction, age_group_probabilities, age_mean_std, face_size

DEFAULT_MIN_FACE = 32  # faces smaller than this (longest box side, px) get no predictions (benchmarks/face_size.py)
# a photo decoded at a reduced size gives the faces their crops when each crop spans at least this share of the
# model's input there (enlarged by 4/3 at most): on 12 MP photos, crops of 120-160 px against the full decode's
# agree on gender and race as often as crops of 160-240 px do (0.7 and 0.4 years apart, race 95 and 94 %)
REDUCED_CROP_SHARE = 0.75


def too_small_face(detection: Detection) -> FacePrediction:
    """A face found but not analysed: box and score only."""
    box = [int(v) for v in detection.box]
    return FacePrediction(box, None, None, None, None, None, None, detection.score, face_size(box), too_small=True)


def predictions_from_outputs(outputs: dict, detections: list[Detection]) -> list[FacePrediction]:
    """Turn the model's softmax outputs for a batch of faces into FacePredictions."""
    age_dist, gender_p, race_p = (np.asarray(outputs[k], np.float64) for k in ("age", "gender", "race"))
    faces = []
    for i, detection in enumerate(detections):
        mean, std = age_mean_std(age_dist[i])
        g, r = int(gender_p[i].argmax()), int(race_p[i].argmax())
        box = [int(v) for v in detection.box]
        faces.append(FacePrediction(
            box=box, age=round(mean, 1), age_std=round(std, 1), gender=GENDERS[g],
            gender_probability=round(float(gender_p[i, g]), 4), race=RACES[r],
            race_probabilities={name: round(float(p), 4) for name, p in zip(RACES, race_p[i])},
            detection_score=detection.score, face_size=face_size(box),
            age_group_probabilities=age_group_probabilities(age_dist[i])))
    return faces


@dataclass
class PreparedImage:
    """An image after detection and cropping, before the model: what `FaceAnalyzer.finish` completes."""

    width: int
    height: int
    detections: list[Detection]
    analysable: list[bool]  # per detection: large enough to analyse
    crops: np.ndarray | None  # model-sized crops of the analysable faces, in order
    identity: np.ndarray | None = None  # with people: their identity crops, when the model's crops are not those
    stem_maps: np.ndarray | None = None  # with people: the facenet model's stem output for them (set by finish)


class FaceAnalyzer:
    """Loads a saved model (a TFLite file run by OpenVINO: no TensorFlow import) and a detector once; analyses
    images or single frames.

    model_type: "facenet" or "normal"; None reads it from `model_path` (default: facenet).
    detect_size: the longest side, in pixels, that stills are downscaled to before detection (None: full size).
    min_face: faces whose box is smaller than this many pixels are reported without predictions.
    threads: threads for the model and OpenCV (default: the cores this process may use).
    tta: average each face's outputs with those of its mirror image (twice the time; README: what it gains).
    precision: "int8" (the model's quantized file, the default) or "float32".
    upscale: "auto" (the default): a photo where YuNet sees a small face is searched again enlarged twice and
    four times (the closer look: a crowd's faces of 16-32 px are found; other photos cost nothing more); a number:
    how much a photo smaller than detect_size is always enlarged toward it for the detector (1: not at all).
    people: also compute each face's identity embedding (`embeddings`, `embed`; the [people] extra), for
    `cluster_faces`; faces smaller than `identity.IDENTITY_MIN_FACE` px are not told apart.
    parallel: how many threads may run the model at once (serve: one a core): that many copies of it, each
    on threads // parallel cores; 1: one copy on all of them, which the threads take in turn."""

    def __init__(self, model_type: str | None = None, model_path: str | Path | None = None,
                 detector: str = "yunet", detect_size: int | None = DEFAULT_DETECT_SIZE,
                 min_face: int = DEFAULT_MIN_FACE, threads: int | None = None, tta: bool = False,
                 precision: str = DEFAULT_PRECISION, people: bool = False, upscale: float | str = AUTO_UPSCALE,
                 parallel: int = 1):
        directory = self.model_dir = model_store.resolve_model_dir(model_type, model_path)
        self.threads = threads or lite_model.available_cores()
        cv2.setNumThreads(self.threads)
        copies, model_threads = max(1, parallel), max(1, self.threads // max(1, parallel))
        self.model, self.info = lite_model.load_lite_model(directory, model_type, model_threads, precision,
                                                           stem_maps=people)
        self._models = queue.SimpleQueue()  # the copies of the model free to run: a caller takes one, then puts it back
        self._models.put(self.model)
        for _ in range(copies - 1):
            self._models.put(self.model.copy())
        self.model_type = self.info["model_type"]
        self.input_size = int(self.info["input_size"])
        self.detector_name, self.detect_size, self.min_face, self.tta = detector, detect_size, min_face, tta
        self.upscale = upscale
        self._per_thread = threading.local()
        self._per_thread.detector = face_detection.make_detector(detector, detect_size, upscale)
        # the model's own crops serve as identity crops when they are the same (facenet: 160 px, widened 1.25),
        # and then its frozen stem's output too: the embedding runs only the rest of FaceNet
        self._reuse_crops = self.input_size == identity.EMBED_SIZE and (
            detector == "none" or self.info["crop_widen"] == identity.IDENTITY_WIDEN)
        stem = self.model.stem_stage if self._reuse_crops else None
        self.embedder = identity.FaceEmbedder(self.threads, stem) if people else None

    @property
    def detector(self):
        """This thread's detector (OpenCV detectors are not shared between threads)."""
        if not hasattr(self._per_thread, "detector"):
            self._per_thread.detector = face_detection.make_detector(self.detector_name, self.detect_size,
                                                                     self.upscale)
        return self._per_thread.detector

    def prepare(self, image: np.ndarray | image_io.DecodedImage) -> PreparedImage:
        """Detect the faces of an RGB image and crop the ones large enough to analyse (thread-safe). A
        DecodedImage is searched in its reduced pixels; its faces are cropped from them when each crop spans
        REDUCED_CROP_SHARE of the model's input size there, else from the pixels at full size."""
        decoded = image if isinstance(image, image_io.DecodedImage) else None
        pixels, reduction = (decoded.pixels, decoded.reduction) if decoded else (image, 1)
        detections = self.detector.detect(pixels)
        if reduction > 1:
            detections = [Detection(tuple(v * reduction for v in d.box), d.score) for d in detections]
        analysable = [self.detector.boxes_are_chips or face_size(d.box) >= self.min_face for d in detections]
        boxes = [d.box for d, ok in zip(detections, analysable) if ok]
        width, height = (decoded.width, decoded.height) if decoded else (image.shape[1], image.shape[0])
        if boxes and reduction > 1:
            if not self.detector.boxes_are_chips and \
                    min(map(self.crop_side, boxes)) >= reduction * REDUCED_CROP_SHARE * self.input_size:
                boxes = [[v / reduction for v in box] for box in boxes]
            else:
                pixels = decoded.full()
        crops = self.crops(pixels, boxes) if boxes else None
        identity_crops = None
        if boxes and self.embedder is not None and not self._reuse_crops:
            identity_crops = self.identity_crops(pixels, boxes, crops)
        return PreparedImage(int(width), int(height), detections, analysable, crops, identity_crops)

    def crop_side(self, box) -> int:
        """The side, in the image's pixels, of the square that the model's crop of a face takes."""
        if self.detector.boxes_are_chips:
            return max(box[2:])
        crop = self.detector.chip_crop
        return face_crop.chip_square(box, crop["scale"] * self.info["crop_widen"], crop["shift_y"])[2]

    def finish(self, prepared: list[PreparedImage]) -> list[list[FacePrediction]]:
        """The faces of each prepared image, the crops of all of them going through the model together."""
        crops = [p.crops for p in prepared if p.crops is not None]
        sizes = [face_size(d.box) for p in prepared for d, ok in zip(p.detections, p.analysable) if ok]
        outputs = self.predict_crops(np.concatenate(crops), sizes) if crops else None
        start, results = 0, []
        for p in prepared:
            count = sum(p.analysable)
            part = {k: v[start:start + count] for k, v in outputs.items()} if count else None
            start += count
            if part is not None and "stem_maps" in part:
                p.stem_maps = part["stem_maps"]
            analysed = iter(predictions_from_outputs(part, [d for d, ok in zip(p.detections, p.analysable) if ok])
                            if count else [])
            results.append([next(analysed) if ok else too_small_face(d) for d, ok in zip(p.detections, p.analysable)])
        return results

    def crops(self, image: np.ndarray, boxes) -> np.ndarray:
        """The model-sized crops of the given boxes, as a (N, S, S, 3) uint8 array."""
        size = self.input_size
        if self.detector.boxes_are_chips:
            return np.stack([face_crop.whole_image(image[y:y + h, x:x + w], size) for x, y, w, h in boxes])
        crop, widen = self.detector.chip_crop, self.info["crop_widen"]  # the model's crop
        return np.stack([face_crop.crop_face(image, box, size, crop["scale"] * widen, crop["shift_y"])
                         for box in boxes])

    def predict_crops(self, crops: np.ndarray, sizes=None, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Softmax outputs ("age", "gender", "race") for a batch of model-sized RGB crops; sizes: their faces'
        sizes in pixels, for a model with a part for small faces (models.small_faces)."""
        outputs = {"age": [], "gender": [], "race": []}
        if self.embedder is not None and self.embedder.from_stem:
            outputs["stem_maps"] = []  # the crops' own, not their mirror images'
        for start in range(0, len(crops), batch_size):
            batch = np.asarray(crops[start:start + batch_size], np.float32)
            count = len(batch)
            batch_sizes = None if sizes is None else np.asarray(sizes[start:start + batch_size])
            if self.tta:
                batch = np.concatenate([batch, batch[:, :, ::-1]])
                batch_sizes = None if batch_sizes is None else np.concatenate([batch_sizes, batch_sizes])
            model = self._models.get()  # waits while every copy is running
            try:
                result = model(batch, batch_sizes)
            finally:
                self._models.put(model)
            for key in outputs:
                values = np.asarray(result[key])
                mirrored = self.tta and key != "stem_maps"
                outputs[key].append((values[:count] + values[count:]) / 2 if mirrored else values[:count])
        return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outputs.items()}

    def embeddings(self, prepared: list[PreparedImage]) -> list[np.ndarray]:
        """Per prepared image, the (analysable faces, 512) identity embeddings of its analysable faces (the
        analyser needs people=True), a row of zeros for a face under identity.IDENTITY_MIN_FACE px (too small to
        tell apart: not embedded); one network call for all, from the model's stem maps that `finish` kept where
        the embedder can start from them, else from the crops."""
        if self.embedder is None:
            raise ValueError("this FaceAnalyzer was made without people=True: it computes no embeddings")
        large = [np.array([face_size(d.box) >= identity.IDENTITY_MIN_FACE
                           for d, ok in zip(p.detections, p.analysable) if ok], bool) for p in prepared]
        told_apart = [(p, told) for p, told in zip(prepared, large) if told.any()]
        if not told_apart:
            vectors = np.zeros((0, identity.EMBEDDING_DIM), np.float32)
        elif self.embedder.from_stem and all(p.stem_maps is not None for p, _ in told_apart):
            vectors = self.embedder.embed_stem(np.concatenate([p.stem_maps[told] for p, told in told_apart]))
        else:
            vectors = self.embedder.embed(np.concatenate([(p.identity if p.identity is not None else p.crops)[told]
                                                          for p, told in told_apart]))
        rows = [np.zeros((len(told), identity.EMBEDDING_DIM), np.float32) for told in large]
        for out, told, part in zip(rows, large, np.split(vectors, np.cumsum([t.sum() for t in large])[:-1])):
            out[told] = part
        return rows

    def identities(self, prepared: list[PreparedImage], faces: list[list[FacePrediction]]) -> list[np.ndarray]:
        """Per image, a (faces, 512) array of its faces' (as `finish` gave them) identity embeddings: unit vectors,
        a row of zeros for a face too small to tell apart (not analysed, or under identity.IDENTITY_MIN_FACE px)."""
        rows = []
        for p, image_faces, vectors in zip(prepared, faces, self.embeddings(prepared)):
            out = np.zeros((len(image_faces), identity.EMBEDDING_DIM), np.float32)
            out[np.flatnonzero(p.analysable)] = vectors
            rows.append(out)
        return rows

    def identity_crops(self, image: np.ndarray, boxes, crops: np.ndarray) -> np.ndarray:
        """The identity crops of these boxes of an image: the model's own `crops` of them where those are the same."""
        return crops if self._reuse_crops else identity.identity_crops(image, boxes, self.detector.chip_crop)

    def embed(self, image, bgr: bool = False) -> tuple[list[FacePrediction], np.ndarray]:
        """Every face of an image (as `analyze`) and an (N, 512) array: each face's identity embedding, a unit
        vector (a row of zeros for a face too small to tell apart). Biometric data: keep it only as long as needed."""
        prepared = self.prepare(image_io.as_rgb(image, bgr))
        faces = self.finish([prepared])[0]
        return faces, self.identities([prepared], [faces])[0]

    @staticmethod
    def cluster_faces(embeddings, photos=None, recurring: bool = False) -> list[int | None]:
        """A person number (1, 2, ...) for each embedding (rows of zeros: None), the same number for the same
        person; the threshold and method of `run --people` (identity.clustering). photos: each embedding's photo
        (any labels), whose faces are never one person. recurring: everyone recurs in the collection, so that
        people of a few faces are joined to the nearest larger one (`run --people --recurring`)."""
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, identity.EMBEDDING_DIM)
        known = np.flatnonzero(np.abs(embeddings).sum(axis=1) > 0)
        people: list[int | None] = [None] * len(embeddings)
        photos = None if photos is None else np.asarray(photos)[known]
        for index, person in zip(known, identity_clustering.cluster_embeddings(embeddings[known], photos=photos,
                                                                               join_fragments=recurring)):
            people[index] = int(person)
        return people

    def analyze(self, image, bgr: bool = False) -> list[FacePrediction]:
        """Every face of an image with its predictions (an empty list when there is none).

        image: a file path, a PIL image, or a NumPy array of RGB pixels (H, W, 3) uint8; `bgr=True` for
        OpenCV's BGR order. Grayscale, alpha and 16-bit arrays are converted."""
        return self.finish([self.prepare(image_io.as_rgb(image, bgr))])[0]
