"""Following faces from frame to frame, with labels smoothed per track."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from face_analysis.analyzer import too_small_face
from face_analysis.detection.detectors import Detection
from face_analysis.labels import AGE_BUCKETS, GENDERS, RACES
from face_analysis.results import FacePrediction, age_group_matrix, age_mean_std, face_size


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


@dataclass
class Track:
    """One face followed across frames, with its model outputs averaged over time."""

    track_id: int
    box: tuple
    score: float | None = None
    missed: int = 0
    analysed_at: float | None = None  # video time of the last model request
    pending: bool = False
    age: float = 0.0
    age_std: float = 0.0
    gender: np.ndarray = field(default_factory=lambda: np.zeros(len(GENDERS)))
    race: np.ndarray = field(default_factory=lambda: np.zeros(len(RACES)))
    age_groups: np.ndarray = field(default_factory=lambda: np.zeros(len(AGE_BUCKETS)))
    updates: int = 0

    def add_outputs(self, age_distribution, gender, race, smoothing: float = 0.3) -> None:
        """Fold one model output in: a running average of the age, averaged class probabilities."""
        mean, std = age_mean_std(age_distribution)
        weight = 1.0 if self.updates == 0 else smoothing
        self.age += weight * (mean - self.age)
        self.age_std += weight * (std - self.age_std)
        self.gender = self.gender + weight * (np.asarray(gender, float) - self.gender)
        self.race = self.race + weight * (np.asarray(race, float) - self.race)
        self.age_groups = self.age_groups + weight * (age_group_matrix(age_distribution) - self.age_groups)
        self.updates += 1

    def prediction(self) -> FacePrediction:
        """The smoothed labels; a face never analysed (too small so far) has none."""
        if self.updates == 0:
            face = too_small_face(Detection(self.box, self.score))
            face.track_id = self.track_id
            return face
        g, r = int(self.gender.argmax()), int(self.race.argmax())
        box = [int(v) for v in self.box]
        return FacePrediction(
            box=box, age=round(self.age, 1), age_std=round(self.age_std, 1),
            gender=GENDERS[g], gender_probability=round(float(self.gender[g]), 4), race=RACES[r],
            race_probabilities={name: round(float(p), 4) for name, p in zip(RACES, self.race)},
            detection_score=self.score, face_size=face_size(box), track_id=self.track_id,
            age_group_probabilities={name: round(float(p), 4) for name, p in zip(AGE_BUCKETS, self.age_groups)})


class FaceTracker:
    """Matches each frame's detections to the existing tracks by IoU, greedily; unmatched detections start
    new tracks, and tracks unseen for more than `max_missed` frames end."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5):
        self.min_iou, self.max_missed = min_iou, max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: list[Detection]) -> list[Track]:
        """The tracks seen in this frame, their boxes moved to this frame's detections."""
        boxes = [d.box for d in detections]
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        matched_tracks, matched_boxes = set(), set()
        for overlap, ti, bi in pairs:
            if overlap < self.min_iou:
                break
            if ti in matched_tracks or bi in matched_boxes:
                continue
            track = self.tracks[ti]
            track.box, track.score, track.missed = tuple(boxes[bi]), detections[bi].score, 0
            matched_tracks.add(ti)
            matched_boxes.add(bi)
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
        for bi, box in enumerate(boxes):
            if bi not in matched_boxes:
                self.tracks.append(Track(self._next_id, tuple(box), detections[bi].score))
                self._next_id += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return [t for t in self.tracks if t.missed == 0]
