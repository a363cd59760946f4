"""Cropping a detected face the way the models saw faces in training (UTKFace's aligned chips)."""
from __future__ import annotations

import cv2
import numpy as np


def chip_square(box, scale: float, shift_y: float) -> tuple[int, int, int]:
    """(left, top, side) of the square of `scale` times the box's longer side, centred `shift_y` box heights
    below the centre of a detected box (x, y, w, h). Each detector knows the values that make it look like
    a UTKFace chip (face_detection, measured by benchmarks/crop_expansion.py)."""
    x, y, w, h = box
    side = max(1, int(round(scale * max(w, h))))
    cx, cy = x + w / 2.0, y + h / 2.0 + shift_y * h
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def crop_face(image: np.ndarray, box, size: int, scale: float, shift_y: float) -> np.ndarray:
    """The size x size RGB crop of a face; parts outside the image are filled by replicating its border."""
    left, top, side = chip_square(box, scale, shift_y)
    height, width = image.shape[:2]
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top = left + pad, top + pad
    face = image[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(face, (size, size), interpolation=interpolation)


def whole_image(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image resized as one face, for collections of crops that are already chips."""
    interpolation = cv2.INTER_AREA if max(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
