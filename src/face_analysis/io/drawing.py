"""Drawing results on images: a box on every face and a label sized to it, where it covers no other face."""
from __future__ import annotations

import cv2
import numpy as np

from face_analysis.results import FacePrediction

BOX_COLOUR, SMALL_COLOUR, TEXT_COLOUR = (0, 255, 0), (255, 200, 0), (0, 0, 0)  # RGB
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE, MAX_FONT_SCALE = 0.3, 3.0  # 0.3: about 7 px high, the smallest readable Hershey text


def face_label(face: FacePrediction, short: bool = False) -> str:
    """"32y male white", or "32 M W" for small faces; "" for a face too small to analyse."""
    if face.too_small:
        return ""
    if short:
        return f"{face.age:.0f} {face.gender[0].upper()} {face.race[0].upper()}"
    return f"{face.age:.0f}y {face.gender} {face.race}"


def describe_face(face: FacePrediction) -> str:
    """A readable line: box (and person, with `run --people`), age with its spread, gender and race with their
    probabilities."""
    x, y, w, h = face.box
    where = f"face at ({x},{y}) {w}x{h}" + ("" if face.person is None else f", person {face.person}")
    if face.too_small:
        return f"{where}: too small to analyse ({face.face_size} px)"
    return (f"{where}: age {face.age:.0f} (±{face.age_std:.0f}), "
            f"{face.gender} ({face.gender_probability:.0%}), {face.race} ({face.race_probabilities[face.race]:.0%})")


def _overlaps(a, b) -> bool:
    """Whether two (x0, y0, x1, y1) rectangles overlap."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_spot(box, size, image_shape, taken) -> tuple[int, int, int, int]:
    """Where a label of `size` (w, h) goes: above the box, else below it, else inside its top, whichever
    first stays in the image and covers no other face or label; above when none does."""
    x, y, w, h = box
    tw, th = size
    height, width = image_shape[:2]
    left = min(max(0, x), max(0, width - tw))
    candidates = [(left, y - th), (left, y + h), (left, y)]
    for cx, cy in candidates:
        rect = (cx, cy, cx + tw, cy + th)
        if cy >= 0 and cy + th <= height and not any(_overlaps(rect, other) for other in taken):
            return rect
    cy = min(max(0, y - th), max(0, height - th))
    return left, cy, left + tw, cy + th


def _fitted_label(face: FacePrediction) -> tuple[str, float]:
    """The label and the font scale for a face: the scale follows the face's width, and the full label gives
    way to the short one when it would reach far beyond the face, then shrinks (not below a readable size)."""
    w = face.box[2]
    scale = min(max(w / 170, MIN_FONT_SCALE), MAX_FONT_SCALE)
    text = face_label(face)
    if cv2.getTextSize(text, FONT, scale, 1)[0][0] > 1.6 * w:
        text = face_label(face, short=True)
        width = cv2.getTextSize(text, FONT, scale, 1)[0][0]
        scale = max(MIN_FONT_SCALE, min(scale, scale * 1.4 * w / width))
    if face.track_id is not None:
        text += f" #{face.track_id}"
    return text, scale


def draw_faces(image: np.ndarray, faces: list[FacePrediction], alpha: float = 0.65) -> np.ndarray:
    """A copy of an RGB image with a box on every face and a label where it covers no other face.

    Text size and line width follow each face's size, so labels stay readable from 400 px thumbnails to
    4000 px photos and do not spill over the neighbours in a crowd; small faces get a shortened label, faces
    too small to analyse a thin box and none. Labels sit on a semi-opaque background."""
    out = image.copy()
    boxes = [(x, y, x + w, y + h) for x, y, w, h in (f.box for f in faces)]
    taken = list(boxes)
    labels = []
    for face, rect in zip(faces, boxes):
        thickness = max(1, round(face.box[2] / 90))
        if face.too_small:
            cv2.rectangle(out, rect[:2], rect[2:], SMALL_COLOUR, 1)
            continue
        cv2.rectangle(out, rect[:2], rect[2:], BOX_COLOUR, thickness)
        text, scale = _fitted_label(face)
        weight = max(1, round(scale * 1.6))
        (tw, th), base = cv2.getTextSize(text, FONT, scale, weight)
        pad = max(2, round(th / 4))
        spot = _label_spot(face.box, (tw + 2 * pad, th + base + 2 * pad), image.shape, taken)
        taken.append(spot)
        labels.append((spot, text, scale, weight, base, pad))
    if labels:
        overlay = out.copy()
        for spot, *_ in labels:
            cv2.rectangle(overlay, spot[:2], (spot[2] - 1, spot[3] - 1), BOX_COLOUR, -1)
        out = cv2.addWeighted(overlay, alpha, out, 1 - alpha, 0)
        for (x0, y0, _, y1), text, scale, weight, base, pad in labels:
            cv2.putText(out, text, (x0 + pad, y1 - base - pad), FONT, scale, TEXT_COLOUR, weight, cv2.LINE_AA)
    return out
