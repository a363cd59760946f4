"""Shared fixtures: a tiny generated UTKFace-named data set, a real face photo, private caches."""
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


def write_synthetic_face(path: Path, seed: int, size: int = 200) -> None:
    """A face-like drawing (head, eyes, mouth) in random colours, saved as JPEG."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), rng.integers(0, 255, 3), np.uint8)
    skin = tuple(int(v) for v in rng.integers(60, 255, 3))
    cv2.ellipse(image, (size // 2, size // 2), (size // 3, size * 2 // 5), 0, 0, 360, skin, -1)
    for x in (size // 2 - size // 8, size // 2 + size // 8):
        cv2.circle(image, (x, size * 2 // 5), size // 20, (30, 30, 30), -1)
    cv2.ellipse(image, (size // 2, size * 2 // 3), (size // 8, size // 20), 0, 0, 180, (40, 20, 120), -1)
    noise = rng.normal(0, 8, image.shape)
    cv2.imwrite(str(path), np.clip(image + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def tiny_utk(tmp_path_factory) -> Path:
    """60 generated images with UTKFace names covering every age bucket, gender and race."""
    folder = tmp_path_factory.mktemp("utk")
    ages = [1, 5, 15, 25, 35, 45, 55, 65, 80, 100]
    for i in range(60):
        name = f"{ages[i % 10]}_{i % 2}_{i % 5}_2017011617452{i:04d}.jpg.chip.jpg"
        write_synthetic_face(folder / name, seed=i)
    (folder / "notes.txt").write_text("not an image")
    (folder / "no_labels_here.jpg").write_bytes((folder / name).read_bytes())
    return folder


@pytest.fixture(scope="session")
def astronaut_jpg(tmp_path_factory) -> Path:
    """skimage's astronaut photo (public domain, one face) as a JPEG file."""
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def camera_jpg(tmp_path_factory) -> Path:
    """skimage's cameraman photo (public domain, one face, not the astronaut's) as a JPEG file."""
    from skimage import data

    path = tmp_path_factory.mktemp("camera") / "camera.jpg"
    cv2.imwrite(str(path), data.camera())
    return path


def photo_folder(folder: Path, photo: Path, copies: int, *extra: Path) -> Path:
    """A folder of copies of a face photo (p00.jpg...), the extra photos, a broken JPEG and an empty file."""
    folder.mkdir()
    for i in range(copies):
        (folder / f"p{i:02d}.jpg").write_bytes(photo.read_bytes())
    for path in extra:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg \xff\xd9")
    (folder / "empty.png").write_bytes(b"")
    return folder


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Keep the tests' decoded-image, feature and checkpoint caches out of the repository's .cache/,
    in this process and in the command lines the tests start."""
    import os

    from face_analysis import paths

    paths.CACHE_DIR = tmp_path_factory.mktemp("cache")
    os.environ["FACE_ANALYSIS_CACHE"] = str(paths.CACHE_DIR)
    return paths.CACHE_DIR


def run_cli(*args) -> int:
    """Run the command line in this process (TensorFlow is imported once for the whole suite)."""
    from face_analysis import cli as main

    return main.main([str(a) for a in args])


def ctrl_c(process) -> tuple[str, float]:
    """Ctrl-C (SIGINT) sent to a running child: its standard error and the seconds it took to end."""
    import signal
    import time

    sent = time.time()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return err, time.time() - sent


def default_sigint() -> None:
    """preexec_fn of a child that is sent Ctrl-C: SIGINT back to its default (a child inherits an ignored SIGINT,
    as a background job of a shell gets it, and Python then installs no KeyboardInterrupt handler), as in a
    terminal where the user presses Ctrl-C."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def crowd_jpg() -> Path:
    """examples/crowd.jpg: the astronaut's face tiled at 40 sizes, 1600x2400."""
    return Path(__file__).resolve().parent.parent / "examples" / "crowd.jpg"
