"""The two recipes: the normal CNN trained end to end (optionally distilled from a teacher), and facenet's two
phases on cached feature maps of the frozen stem; and the targets both learn from."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis import paths
from face_analysis.data.prepare import PreparedData, prepare_data
from face_analysis.labels import DEFAULT_DISTILL_WEIGHT, GENDERS, MAX_AGE, RACES
from face_analysis.models import architectures as build_model
from face_analysis.models import compiled as lite_model
from face_analysis.models import store as model_store
from face_analysis.training.config import TrainConfig
from face_analysis.training.distribution import Distribution
from face_analysis.training.loop import (
    EpochCheckpoint,
    cached_array,
    data_key,
    dataset,
    fit,
    load_checkpoint,
    make_augmenter,
    targets,
)
from face_analysis.training.whole_network import fine_tune_whole


def teacher_outputs(teacher_dir: Path, config: TrainConfig, rows: np.ndarray) -> dict[str, np.ndarray]:
    """A saved model's softmax outputs on the given rows of the data (cached per teacher and data), from its
    float32 export run by OpenVINO: the Keras model's outputs, about twice as fast."""
    teacher, info = lite_model.load_lite_model(teacher_dir, precision="float32")
    data = prepare_data(config.data_paths, info["input_size"], config.use_cache, config.crop_widen)
    manifest = (Path(teacher_dir) / model_store.MANIFEST).read_bytes()
    key = data_key(data.frame.iloc[rows], hashlib.sha256(manifest).hexdigest())
    path = paths.CACHE_DIR / f"teacher-{key}.npz"
    if config.use_cache and path.is_file():
        with np.load(path) as stored:
            return dict(stored)
    outputs = {"age": [], "gender": [], "race": []}
    for start in tqdm(range(0, len(rows), 64), desc="teacher predictions", unit="batch"):
        batch = teacher(data.images[rows[start:start + 64]].astype(np.float32))
        for name in outputs:
            outputs[name].append(np.asarray(batch[name], np.float32))
    outputs = {name: np.concatenate(parts) for name, parts in outputs.items()}
    if config.use_cache and paths.CACHE_WRITES:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **outputs)
    return outputs


def soft_targets(frame: pd.DataFrame, teacher: dict[str, np.ndarray] | None = None,
                 weight: float = DEFAULT_DISTILL_WEIGHT) -> dict[str, np.ndarray]:
    """Probability targets: the true labels (a Gaussian around an exact age, uniform over an age group,
    one-hot classes), mixed with a teacher's probabilities at `weight` when a teacher is given."""
    ages = np.arange(MAX_AGE + 1, dtype=np.float32)
    lo, hi = (frame[c].to_numpy("float32")[:, None] for c in ("age_lo", "age_hi"))
    true_age = np.where(hi > lo, ((ages >= lo) & (ages <= hi)).astype(np.float32),  # an age group: uniform in it
                        np.exp(-0.5 * ((ages[None] - lo) / build_model.AGE_SIGMA) ** 2))
    mixed = {"age": true_age / true_age.sum(axis=1, keepdims=True)}
    for name, classes in (("gender", len(GENDERS)), ("race", len(RACES))):
        mixed[name] = np.eye(classes, dtype=np.float32)[frame[name].to_numpy()]
    if teacher is not None:
        mixed = {name: weight * teacher[name] + (1 - weight) * mixed[name] for name in mixed}
    return mixed


def train_normal(config: TrainConfig, data: PreparedData, train_rows: np.ndarray, checkpoint_dir: Path,
                  distribution: Distribution):
    import keras

    history: list = []
    val_rows = data.part("val")
    train_targets = targets(data.frame.iloc[train_rows])
    val_targets = targets(data.frame.iloc[val_rows])
    soft = config.distill_from is not None
    if soft:
        unique = np.unique(train_rows)
        teacher = teacher_outputs(config.distill_from, config, unique)
        where = np.searchsorted(unique, train_rows)
        train_targets = soft_targets(data.frame.iloc[train_rows], {k: v[where] for k, v in teacher.items()},
                                     config.distill_weight)
        val_targets = soft_targets(data.frame.iloc[val_rows])
    batch = distribution.global_batch(config.batch_size)
    steps = config.epochs * int(np.ceil(len(train_rows) / batch))
    initial_epoch = 0
    with distribution.strategy.scope():
        if config.resume and (checkpoint_dir / "state.json").is_file():
            model, state = load_checkpoint(checkpoint_dir)
            initial_epoch, history = state["epoch"], state["history"]
        else:
            model = build_model.build_normal_model()
            rate = distribution.learning_rate(1e-3, batch)
            build_model.compile_model(model, keras.optimizers.schedules.CosineDecay(rate, steps), soft_targets=soft)
    augment = make_augmenter(config.seed, config.small_faces)
    images = data.images[train_rows]
    train_data = distribution.sharded_dataset(
        lambda shards, shard, size: dataset(images, train_targets, size, config.seed, augment, shards, shard), batch)
    val = dataset(data.images[val_rows], val_targets, batch)
    if initial_epoch < config.epochs:
        fit(model, train_data, val, config.epochs, initial_epoch, EpochCheckpoint(checkpoint_dir, "train", history),
             distribution.steps_per_epoch(len(train_rows), batch))
    return model, history


def view_dataset(views, view_rows, labels: dict, batch_size: int, seed: int, shards: int = 1, shard: int = 0):
    """tf.data pipeline of cached feature maps: each epoch, every sample comes from one of its views (the plain
    image or one of its augmented copies) drawn at random, in a new random order (the same on every worker,
    which takes its shard of it)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed + 1000 * shard)
    names = sorted(labels)

    def load(picks):
        chosen = rng.integers(0, len(views), len(picks))
        maps = np.stack([views[v][view_rows[v][i]] for v, i in zip(chosen, picks)]).astype(np.float32)
        return (maps, *(labels[name][picks] for name in names))

    count = len(view_rows[0])
    signature = [tf.float32, *(tf.as_dtype(labels[name].dtype) for name in names)]

    def gather(picks):
        maps, *values = tf.numpy_function(load, [picks], signature)
        maps.set_shape((None, *views[0].shape[1:]))
        for name, value in zip(names, values):
            value.set_shape((None, *labels[name].shape[1:]))
        return maps, dict(zip(names, values))

    order = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return order.shard(shards, shard).batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)


def train_facenet(config: TrainConfig, data: PreparedData, train_rows: np.ndarray, checkpoint_dir: Path,
                   distribution: Distribution):
    """The phases on cached maps (train_on_maps), or a saved model's weights (config.init_from), then
    config.whole_epochs of the whole network fine-tuned end to end (whole_network.fine_tune_whole)."""
    state = None
    if config.resume and (checkpoint_dir / "state.json").is_file():
        state = json.loads((checkpoint_dir / "state.json").read_text())
    if state is not None and state["phase"] == "whole":
        model, history = None, state["history"]
    elif config.init_from is not None:
        (model, _), history = model_store.load_model(config.init_from, "facenet"), []
    else:
        model, history = train_on_maps(config, data, train_rows, checkpoint_dir, distribution)
    if config.whole_epochs:
        model = fine_tune_whole(model, config, data, train_rows, checkpoint_dir, distribution, history,
                                resume=model is None)
    return model, history


def train_on_maps(config: TrainConfig, data: PreparedData, train_rows: np.ndarray, checkpoint_dir: Path,
                  distribution: Distribution):
    """Two phases on cached feature maps of the frozen stem (one plain and `augmented_copies` augmented views
    of each training image): the heads on the frozen tail, then tail and heads together at a low,
    decaying learning rate."""
    import keras

    stem, tail, heads = build_model.build_facenet_parts(fine_tune_from=config.fine_tune_from)
    scale = lambda x: (np.asarray(x, np.float32) - 127.5) / 128.0  # noqa: E731 - FaceNet's input scaling
    map_shape = tuple(stem.output.shape[1:])
    # the split node is part of the key: stages of FaceNet that differ can have maps of the same shape
    key = data_key(data.frame, build_model.FACENET_SPLITS[config.fine_tune_from], map_shape, config.crop_widen)
    originals = cached_array(
        paths.CACHE_DIR / f"facenet-maps-{key}.npy", len(data.frame), map_shape,
        lambda a, b: stem.predict_on_batch(scale(data.images[a:b])), 32, "caching FaceNet features", config.use_cache)
    unique_train = data.part("train")

    def augmented_copy(c: int):
        """The maps of augmented copy c; its own seed, so a copy is the same whichever copies are cached."""
        seed = config.seed + 100 + c
        augment = make_augmenter(seed, config.small_faces)
        return cached_array(
            paths.CACHE_DIR / f"facenet-maps-aug-{key}-seed{seed}{f'-small{config.small_faces}' if config.small_faces else ''}.npy",
            len(unique_train), map_shape,
            lambda a, b: stem.predict_on_batch(scale(augment(data.images[unique_train[a:b]]))), 32,
            f"caching augmented features ({c + 1}/{config.augmented_copies})", config.use_cache)

    copies = [augmented_copy(c) for c in range(config.augmented_copies)]
    # train_rows index data.frame (with repeats from rebalancing); the copies index the unique training rows
    position_in_train = np.full(len(data.frame), -1)
    position_in_train[unique_train] = np.arange(len(unique_train))
    train_positions = position_in_train[train_rows]
    batch = distribution.global_batch(config.batch_size)
    train_labels = targets(data.frame.iloc[train_rows])
    train_data = distribution.sharded_dataset(lambda shards, shard, size: view_dataset(
        [originals, *copies], [train_rows] + [train_positions] * len(copies), train_labels, size, config.seed,
        shards, shard), batch)
    steps_per_epoch = int(np.ceil(len(train_rows) / batch))
    fit_steps = distribution.steps_per_epoch(len(train_rows), batch)  # None without a strategy: the data's end
    val_rows = data.part("val")
    val = dataset(np.asarray(originals[val_rows], np.float32), targets(data.frame.iloc[val_rows]), 128)

    history: list = []
    top, state = None, {"phase": "heads", "epoch": 0}
    with distribution.strategy.scope():
        if config.resume and (checkpoint_dir / "state.json").is_file():
            top, state = load_checkpoint(checkpoint_dir)
            history = state["history"]
        if top is None:
            top = build_model.facenet_from_features(*distribution.trainable_copies(tail, heads))
            top.get_layer(build_model.TAIL_NAME).trainable = False
            build_model.compile_model(top, distribution.learning_rate(1e-3, batch))
    if state["phase"] == "heads" and state["epoch"] < config.head_epochs:
        fit(top, train_data, val, config.head_epochs, state["epoch"], EpochCheckpoint(checkpoint_dir, "heads", history),
             fit_steps)
    if state["phase"] == "heads":
        with distribution.strategy.scope():
            top.get_layer(build_model.TAIL_NAME).trainable = True
            steps = max(1, config.epochs * steps_per_epoch)
            build_model.compile_model(top, keras.optimizers.schedules.CosineDecay(
                distribution.learning_rate(1e-4, batch), steps))
        state = {"phase": "tail", "epoch": 0}
    if state["epoch"] < config.epochs:
        fit(top, train_data, val, config.epochs, state["epoch"], EpochCheckpoint(checkpoint_dir, "tail", history),
             fit_steps)
    parts = (stem, top.get_layer(build_model.TAIL_NAME), top.get_layer(build_model.HEADS_NAME))
    return build_model.build_facenet_model(parts=parts), history
