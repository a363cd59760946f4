"""Generated test media for the speed benchmarks: 640x480 photos and a video with real faces.

The faces are skimage's astronaut portrait (public domain), pasted at several sizes and places."""
from pathlib import Path

import cv2
import numpy as np


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def photo(seed: int) -> np.ndarray:
    """A 640x480 frame holding the astronaut once, at a random size and place."""
    rng = np.random.default_rng(seed)
    frame = np.full((480, 640, 3), rng.integers(40, 200, 3), np.uint8)
    side = int(rng.integers(220, 400))
    face = cv2.resize(astronaut_bgr(), (side, side))
    x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
    frame[y:y + side, x:x + side] = face
    return frame


def write_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:05d}.jpg"
        if not path.exists():
            cv2.imwrite(str(path), photo(i), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def write_video(path: Path, faces: int, frames: int = 150, fps: float = 25.0) -> Path:
    """A 640x480 video with `faces` copies of the portrait drifting slowly across the frame."""
    portrait = astronaut_bgr()
    sizes = [200, 170, 150, 130, 120][:faces]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for t in range(frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        for i, side in enumerate(sizes):
            x = int(10 + (i * 125 + 1.5 * t) % max(1, 640 - side - 10))
            y = int(20 + (i % 2) * 230 + 10 * np.sin(t / 15 + i)) if faces > 1 else 140
            y = min(max(0, y), 480 - side)
            frame[y:y + side, x:x + side] = cv2.resize(portrait, (side, side))
        writer.write(frame)
    writer.release()
    return path
