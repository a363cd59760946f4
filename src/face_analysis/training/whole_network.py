"""facenet's last phase: the whole network (every FaceNet stage and the heads) fine-tuned end to end on the
training images, augmented on the fly, in mixed bfloat16 where the hardware computes it natively."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from face_analysis.models import architectures as build_model
from face_analysis.training.config import TrainConfig
from face_analysis.training.distribution import Distribution
from face_analysis.training.loop import EpochCheckpoint, dataset, fit, load_checkpoint, make_augmenter, targets

log = logging.getLogger(__name__)

WHOLE_LEARNING_RATE = 2e-5  # Adam at the reference batch, cosine-decayed to 0 over the phase
CHUNK_STEPS = 400  # the phase checkpoints and validates every CHUNK_STEPS steps (about 10 min on 2 CPU cores)


def bfloat16_native() -> bool:
    """Whether this machine computes bfloat16 natively: a GPU, or a CPU with AVX-512 BF16 or AMX."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def picked_images(images: np.ndarray, rows: np.ndarray, labels: dict, batch_size: int, seed: int, augment,
                  shards: int = 1, shard: int = 0):
    """An endless tf.data pipeline of images[rows] (uint8, picked from the array batch by batch, never copied
    whole), reshuffled every pass, this worker's shard of it, each batch augmented."""
    import tensorflow as tf

    names = sorted(labels)

    def load(picks):
        return (images[rows[picks]], *(labels[name][picks] for name in names))

    signature = [tf.uint8, *(tf.as_dtype(labels[name].dtype) for name in names)]

    def gather(picks):
        batch, *values = tf.numpy_function(load, [picks], signature)
        batch.set_shape((None, *images.shape[1:]))
        for name, value in zip(names, values):
            value.set_shape((None, *labels[name].shape[1:]))
        return augment(batch), dict(zip(names, values))

    order = tf.data.Dataset.range(len(rows)).shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return (order.repeat().shard(shards, shard).batch(batch_size)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def whole_schedule(whole_epochs: float, samples: int, global_batch: int) -> tuple[int, int]:
    """(chunks, steps per chunk) making whole_epochs passes over the samples: chunks of at most CHUNK_STEPS."""
    steps = max(1, round(whole_epochs * math.ceil(samples / global_batch)))
    chunks = math.ceil(steps / CHUNK_STEPS)
    return chunks, math.ceil(steps / chunks)


def fine_tune_whole(model, config: TrainConfig, data, train_rows: np.ndarray, checkpoint_dir: Path,
                    distribution: Distribution, history: list, resume: bool = False):
    """The facenet model fine-tuned end to end for config.whole_epochs passes over train_rows (a fraction is
    allowed), from `model`'s weights or (resume) from the phase's last checkpoint; returned in float32."""
    import keras

    batch = distribution.global_batch(config.batch_size)
    chunks, chunk_steps = whole_schedule(config.whole_epochs, len(train_rows), batch)
    policy = "mixed_bfloat16" if bfloat16_native() else "float32"
    log.info("whole network: %d chunk(s) of %d steps (batch %d), %s", chunks, chunk_steps, batch, policy)
    start = 0
    augment = make_augmenter(config.seed + 7, config.small_faces)  # in float32: before the policy changes
    keras.mixed_precision.set_global_policy(policy)
    try:
        with distribution.strategy.scope():
            if resume:
                whole, state = load_checkpoint(checkpoint_dir)
                start = state["epoch"]
            else:
                whole = build_model.build_model("facenet", config.fine_tune_from)
                whole.set_weights(model.get_weights())
                whole.get_layer(build_model.STEM_NAME).trainable = True
                build_model.compile_model(whole, keras.optimizers.schedules.CosineDecay(
                    distribution.learning_rate(WHOLE_LEARNING_RATE, batch), chunks * chunk_steps))
        train_data = distribution.sharded_dataset(lambda shards, shard, size: picked_images(
            data.images, train_rows, targets(data.frame.iloc[train_rows]), size, config.seed, augment, shards, shard),
            batch)
        val_rows = data.part("val")
        val = dataset(data.images[val_rows], targets(data.frame.iloc[val_rows]), 64)
        if start < chunks:
            fit(whole, train_data, val, chunks, start, EpochCheckpoint(checkpoint_dir, "whole", history), chunk_steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain = build_model.build_model("facenet", config.fine_tune_from)
    plain.set_weights(whole.get_weights())
    return plain
