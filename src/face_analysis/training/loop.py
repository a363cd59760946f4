"""The pieces of a Keras training loop: augmentation, tf.data pipelines, cached feature arrays, epoch
checkpoints and resuming."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis import paths

log = logging.getLogger(__name__)


SMALL_FACE_SIDES = (16, 48)  # the crop sides, in pixels, that a small face's crop has in a photo (box 14-41 px)


def make_augmenter(seed: int, small_faces: float = 0.0):
    """A function augmenting a batch of uint8 RGB faces like real photos: flips, small rotations, scale and
    shifts, lighting and contrast, blur from low resolution, and JPEG compression. `small_faces`: the share of
    faces shrunk to a crop of SMALL_FACE_SIDES pixels, JPEG-compressed at that size and enlarged again, as `run`
    crops a small face of a crowd."""
    import keras
    import tensorflow as tf
    from keras import layers

    geometry_and_light = keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
        layers.RandomZoom((-0.12, 0.12), fill_mode="reflect", seed=seed + 2),
        layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed + 3),
        layers.RandomBrightness(0.25, value_range=(0, 255), seed=seed + 4),
        layers.RandomContrast(0.3, seed=seed + 5),
    ])
    generator = tf.random.Generator.from_seed(seed)

    def degrade(image):
        size = tf.shape(image)[0]
        small = generator.uniform((), tf.maximum(size // 4, 16), size, dtype=tf.int32)
        blurred = tf.image.resize(tf.image.resize(image, (small, small)), (size, size))
        image = tf.cast(tf.clip_by_value(tf.where(generator.uniform(()) < 0.3, blurred, image), 0, 255), tf.uint8)
        compressed = tf.image.adjust_jpeg_quality(image, generator.uniform((), 30, 95, dtype=tf.int32))
        return tf.cast(tf.where(generator.uniform(()) < 0.5, compressed, image), tf.float32)

    def shrink(image):
        """The face as a small face of a photo: area-downscaled, JPEG at that size, enlarged bilinearly."""
        size = tf.shape(image)[0]
        low, high = (float(np.log(side)) for side in SMALL_FACE_SIDES)
        side = tf.cast(tf.round(tf.exp(generator.uniform((), low, high))), tf.int32)
        tiny = tf.cast(tf.clip_by_value(tf.image.resize(image, (side, side), antialias=True), 0, 255), tf.uint8)
        tiny = tf.image.adjust_jpeg_quality(tiny, generator.uniform((), 40, 95, dtype=tf.int32))
        return tf.image.resize(tf.cast(tiny, tf.float32), (size, size))

    def degrade_or_shrink(image):
        return tf.cond(generator.uniform(()) < small_faces, lambda: shrink(image), lambda: degrade(image))

    def augment(images):
        images = geometry_and_light(tf.cast(images, tf.float32), training=True)
        return tf.map_fn(degrade_or_shrink if small_faces else degrade, images)

    return augment


def data_key(frame: pd.DataFrame, *extra) -> str:
    digest = hashlib.sha256("".join(frame["sha256"]).encode())
    digest.update(repr(extra).encode())
    return digest.hexdigest()[:16]


def cached_array(path: Path, count: int, shape, compute_batch, batch_size: int, desc: str, use_cache: bool):
    """An (count, *shape) float16 array computed batch by batch, kept in path (.npy) for later runs (only by
    the process that writes caches: see paths.CACHE_WRITES)."""
    if use_cache and path.is_file():
        return np.load(path, mmap_mode="r")
    use_cache = use_cache and paths.CACHE_WRITES
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(count, *shape))
    for start in tqdm(range(0, count, batch_size), desc=desc, unit="batch"):
        out[start:start + batch_size] = compute_batch(start, min(start + batch_size, count))
    out.flush()
    if not use_cache:
        result = np.array(out)
        del out
        tmp.unlink()
        return result
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Training targets: age as an interval [lo, hi] of whole years (lo == hi for an exact age), classes."""
    return {"age": frame[["age_lo", "age_hi"]].to_numpy("float32"), "gender": frame["gender"].to_numpy("int32"),
            "race": frame["race"].to_numpy("int32")}


class EpochCheckpoint:
    """Keras callback saving the training model and its history after every epoch, atomically."""

    def __new__(cls, directory: Path, phase: str, history: list):
        import keras

        class _Checkpoint(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                history.append({"phase": phase, "epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
                directory.mkdir(parents=True, exist_ok=True)
                tmp = directory / f"checkpoint.tmp{os.getpid()}.keras"
                self.model.save(tmp)
                os.replace(tmp, directory / "checkpoint.keras")
                state_tmp = directory / f"state.tmp{os.getpid()}.json"
                state_tmp.write_text(json.dumps({"phase": phase, "epoch": epoch + 1, "history": history}))
                os.replace(state_tmp, directory / "state.json")

        return _Checkpoint()


def load_checkpoint(directory: Path):
    import keras

    state = json.loads((directory / "state.json").read_text())
    model = keras.saving.load_model(directory / "checkpoint.keras")
    log.info("resuming from %s: %s phase, epoch %d done", directory, state["phase"], state["epoch"])
    return model, state


def fit(model, train_data, val_data, epochs, initial_epoch, checkpoint, steps_per_epoch=None):
    model.fit(train_data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
              callbacks=[checkpoint], verbose=1 if os.isatty(1) else 2, steps_per_epoch=steps_per_epoch)


def dataset(inputs, labels, batch_size, shuffle_seed=None, map_fn=None, shards: int = 1, shard: int = 0):
    """A tf.data pipeline over in-memory arrays: shuffled each epoch (when shuffle_seed is given; the same
    order on every worker), this worker's shard of it, batched, then map_fn on each batch of inputs."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if shuffle_seed is not None:
        data = data.shuffle(len(inputs), seed=shuffle_seed, reshuffle_each_iteration=True)
    data = data.shard(shards, shard).batch(batch_size)
    if map_fn is not None:
        data = data.map(lambda x, y: (map_fn(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)
