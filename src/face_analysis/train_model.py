"""Training: data preparation, augmentation, the two-phase facenet recipe, checkpoints and resuming."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from face_analysis import build_model, lite_model, model_store, output_guard, paths, utk_data
from face_analysis.distribution import Distribution, make_distribution
from face_analysis.labels import DEFAULT_EPOCHS, GENDERS, INPUT_SIZES, MAX_AGE, RACES

log = logging.getLogger(__name__)
DISTILL_WEIGHT = 0.5  # share of the teacher's probabilities in distilled targets
DEFAULT_FINE_TUNE_FROM = "mixed_7a"  # chosen on validation; about an hour on 2 cores with UTKFace and FairFace (README)
DEFAULT_CROP_WIDEN = 1.25  # chosen by benchmarks/crop_choice.py on FairFace's validation part (README)


@dataclass
class TrainConfig:
    model_type: str = "facenet"
    data_paths: list[Path] = field(default_factory=lambda: list(paths.DEFAULT_DATA_PATHS))
    epochs: int | None = None  # facenet: fine-tuning epochs after the head warm-up
    batch_size: int = 64
    model_dir: Path | None = None
    resume: bool = False
    seed: int = 0
    head_epochs: int = 1
    augmented_copies: int = 1  # facenet: augmented versions of each training image whose features are cached
    stats_dir: Path | None = None
    use_cache: bool = True
    distill_from: Path | None = None  # normal: a saved model whose predictions are mixed into the targets
    fine_tune_from: str = DEFAULT_FINE_TUNE_FROM  # facenet: where the frozen stem ends (build_model.FACENET_SPLITS)
    crop_widen: float = DEFAULT_CROP_WIDEN  # photos: the detector's chip crop widened by this factor
    distribute: str = "none"  # none, mirrored or multi_worker (distribution.make_distribution)
    devices: list[str] | None = None  # mirrored: the devices (default: every local GPU)

    def __post_init__(self):
        self.data_paths = [Path(p) for p in self.data_paths]
        self.model_dir = Path(self.model_dir) if self.model_dir else model_store.default_model_dir(self.model_type)
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS[self.model_type]


@dataclass
class PreparedData:
    """De-duplicated, split data: frame rows line up with images."""

    images: np.ndarray
    frame: pd.DataFrame

    def part(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.frame["split"].to_numpy() == split)


def load_sources(data_paths, image_size: int, use_cache: bool = True,
                 crop_widen: float = 1.0) -> utk_data.UtkDataset:
    """Every labelled image of the data paths, at image_size: UTKFace chips from UTK-named folders and
    archives, and from each labelled photo set (a CSV such as FairFace's) the faces `run` would find and crop
    (the detector's chip crop widened by crop_widen)."""
    from face_analysis import labelled_sets

    chips, photo_sets = labelled_sets.split_sources(data_paths)
    parts = [utk_data.load_utkface(chips, image_size, use_cache=use_cache)] if chips else []
    parts += [labelled_sets.load_photo_crops(p, image_size, use_cache=use_cache, widen=crop_widen)
              for p in photo_sets]
    if len(parts) == 1:
        return parts[0]
    return utk_data.UtkDataset(np.concatenate([p.images for p in parts]),
                               pd.concat([p.frame for p in parts], ignore_index=True))


def prepare_data(data_paths, image_size: int, use_cache: bool = True, crop_widen: float = 1.0) -> PreparedData:
    """Load every source, drop duplicates, and split by content hash (before any rebalancing or augmentation).

    The split of an image depends on its content alone, so each source is split 70/10/20 on its own."""
    dataset = load_sources(data_paths, INPUT_SIZES["facenet"], use_cache=use_cache, crop_widen=crop_widen)
    frame = utk_data.assign_splits(utk_data.dedupe(dataset.frame))
    images = dataset.images[frame.index.to_numpy()]
    if image_size != images.shape[1]:
        import cv2

        images = np.stack([cv2.resize(im, (image_size, image_size), interpolation=cv2.INTER_AREA) for im in images])
    counts = frame.groupby(["source", "split"]).size().to_dict()
    log.info("split: %s", "; ".join(f"{source} {split} {n}" for (source, split), n in sorted(counts.items())))
    return PreparedData(images, frame.reset_index(drop=True))


def targets(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Training targets: age as an interval [lo, hi] of whole years (lo == hi for an exact age), classes."""
    return {"age": frame[["age_lo", "age_hi"]].to_numpy("float32"), "gender": frame["gender"].to_numpy("int32"),
            "race": frame["race"].to_numpy("int32")}


def make_augmenter(seed: int):
    """A function augmenting a batch of uint8 RGB faces like real photos: flips, small rotations, scale and
    shifts, lighting and contrast, blur from low resolution, and JPEG compression."""
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

    def augment(images):
        images = geometry_and_light(tf.cast(images, tf.float32), training=True)
        return tf.map_fn(degrade, images)

    return augment


def _data_key(frame: pd.DataFrame, *extra) -> str:
    digest = hashlib.sha256("".join(frame["sha256"]).encode())
    digest.update(repr(extra).encode())
    return digest.hexdigest()[:16]


def _cached_array(path: Path, count: int, shape, compute_batch, batch_size: int, desc: str, use_cache: bool):
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


def _load_checkpoint(directory: Path):
    import keras

    state = json.loads((directory / "state.json").read_text())
    model = keras.saving.load_model(directory / "checkpoint.keras")
    log.info("resuming from %s: %s phase, epoch %d done", directory, state["phase"], state["epoch"])
    return model, state


def _fit(model, train_data, val_data, epochs, initial_epoch, checkpoint, steps_per_epoch=None):
    model.fit(train_data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
              callbacks=[checkpoint], verbose=1 if os.isatty(1) else 2, steps_per_epoch=steps_per_epoch)


def _dataset(inputs, labels, batch_size, shuffle_seed=None, map_fn=None, shards: int = 1, shard: int = 0):
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


def _teacher_outputs(teacher_dir: Path, config: TrainConfig, rows: np.ndarray) -> dict[str, np.ndarray]:
    """A saved model's softmax outputs on the given rows of the data (cached per teacher and data), from its
    float32 export run by OpenVINO: the Keras model's outputs, about twice as fast."""
    teacher, info = lite_model.load_lite_model(teacher_dir, precision="float32")
    data = prepare_data(config.data_paths, info["input_size"], config.use_cache, config.crop_widen)
    manifest = (Path(teacher_dir) / model_store.MANIFEST).read_bytes()
    key = _data_key(data.frame.iloc[rows], hashlib.sha256(manifest).hexdigest())
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
                 weight: float = DISTILL_WEIGHT) -> dict[str, np.ndarray]:
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


def _checkpoint_dir(base: Path, distribution: Distribution) -> Path:
    """Where this process keeps its checkpoints: the chief in base, other workers in their own folder inside."""
    return base if distribution.is_chief else base / f"worker-{distribution.worker_index}"


def _train_normal(config: TrainConfig, data: PreparedData, train_rows: np.ndarray, checkpoint_dir: Path,
                  distribution: Distribution):
    import keras

    history: list = []
    val_rows = data.part("val")
    train_targets = targets(data.frame.iloc[train_rows])
    val_targets = targets(data.frame.iloc[val_rows])
    soft = config.distill_from is not None
    if soft:
        unique = np.unique(train_rows)
        teacher = _teacher_outputs(config.distill_from, config, unique)
        where = np.searchsorted(unique, train_rows)
        train_targets = soft_targets(data.frame.iloc[train_rows], {k: v[where] for k, v in teacher.items()})
        val_targets = soft_targets(data.frame.iloc[val_rows])
    batch = distribution.global_batch(config.batch_size)
    steps = config.epochs * int(np.ceil(len(train_rows) / batch))
    initial_epoch = 0
    with distribution.strategy.scope():
        if config.resume and (checkpoint_dir / "state.json").is_file():
            model, state = _load_checkpoint(checkpoint_dir)
            initial_epoch, history = state["epoch"], state["history"]
        else:
            model = build_model.build_normal_model()
            rate = distribution.learning_rate(1e-3, batch)
            build_model.compile_model(model, keras.optimizers.schedules.CosineDecay(rate, steps), soft_targets=soft)
    augment = make_augmenter(config.seed)
    images = data.images[train_rows]
    train = distribution.sharded_dataset(
        lambda shards, shard, size: _dataset(images, train_targets, size, config.seed, augment, shards, shard), batch)
    val = _dataset(data.images[val_rows], val_targets, batch)
    if initial_epoch < config.epochs:
        _fit(model, train, val, config.epochs, initial_epoch, EpochCheckpoint(checkpoint_dir, "train", history),
             distribution.steps_per_epoch(len(train_rows), batch))
    return model, history


def _view_dataset(views, view_rows, labels: dict, batch_size: int, seed: int, shards: int = 1, shard: int = 0):
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


def _train_facenet(config: TrainConfig, data: PreparedData, train_rows: np.ndarray, checkpoint_dir: Path,
                   distribution: Distribution):
    """Two phases on cached feature maps of the frozen stem (one plain and `augmented_copies` augmented views
    of each training image): the heads on the frozen tail, then tail and heads together at a low,
    decaying learning rate."""
    import keras

    stem, tail, heads = build_model.build_facenet_parts(fine_tune_from=config.fine_tune_from)
    scale = lambda x: (np.asarray(x, np.float32) - 127.5) / 128.0  # noqa: E731 - FaceNet's input scaling
    map_shape = tuple(stem.output.shape[1:])
    # the split node is part of the key: stages of FaceNet that differ can have maps of the same shape
    key = _data_key(data.frame, build_model.FACENET_SPLITS[config.fine_tune_from], map_shape, config.crop_widen)
    originals = _cached_array(
        paths.CACHE_DIR / f"facenet-maps-{key}.npy", len(data.frame), map_shape,
        lambda a, b: stem.predict_on_batch(scale(data.images[a:b])), 32, "caching FaceNet features", config.use_cache)
    unique_train = data.part("train")

    def augmented_copy(c: int):
        """The maps of augmented copy c; its own seed, so a copy is the same whichever copies are cached."""
        seed = config.seed + 100 + c
        augment = make_augmenter(seed)
        return _cached_array(
            paths.CACHE_DIR / f"facenet-maps-aug-{key}-seed{seed}.npy", len(unique_train), map_shape,
            lambda a, b: stem.predict_on_batch(scale(augment(data.images[unique_train[a:b]]))), 32,
            f"caching augmented features ({c + 1}/{config.augmented_copies})", config.use_cache)

    copies = [augmented_copy(c) for c in range(config.augmented_copies)]
    # train_rows index data.frame (with repeats from rebalancing); the copies index the unique training rows
    position_in_train = np.full(len(data.frame), -1)
    position_in_train[unique_train] = np.arange(len(unique_train))
    train_positions = position_in_train[train_rows]
    batch = distribution.global_batch(config.batch_size)
    train_labels = targets(data.frame.iloc[train_rows])
    train = distribution.sharded_dataset(lambda shards, shard, size: _view_dataset(
        [originals, *copies], [train_rows] + [train_positions] * len(copies), train_labels, size, config.seed,
        shards, shard), batch)
    steps_per_epoch = int(np.ceil(len(train_rows) / batch))
    fit_steps = distribution.steps_per_epoch(len(train_rows), batch)  # None without a strategy: the data's end
    val_rows = data.part("val")
    val = _dataset(np.asarray(originals[val_rows], np.float32), targets(data.frame.iloc[val_rows]), 128)

    history: list = []
    top, state = None, {"phase": "heads", "epoch": 0}
    with distribution.strategy.scope():
        if config.resume and (checkpoint_dir / "state.json").is_file():
            top, state = _load_checkpoint(checkpoint_dir)
            history = state["history"]
        if top is None:
            top = build_model.facenet_from_features(*distribution.trainable_copies(tail, heads))
            top.get_layer(build_model.TAIL_NAME).trainable = False
            build_model.compile_model(top, distribution.learning_rate(1e-3, batch))
    if state["phase"] == "heads" and state["epoch"] < config.head_epochs:
        _fit(top, train, val, config.head_epochs, state["epoch"], EpochCheckpoint(checkpoint_dir, "heads", history),
             fit_steps)
    if state["phase"] == "heads":
        with distribution.strategy.scope():
            top.get_layer(build_model.TAIL_NAME).trainable = True
            steps = max(1, config.epochs * steps_per_epoch)
            build_model.compile_model(top, keras.optimizers.schedules.CosineDecay(
                distribution.learning_rate(1e-4, batch), steps))
        state = {"phase": "tail", "epoch": 0}
    if state["epoch"] < config.epochs:
        _fit(top, train, val, config.epochs, state["epoch"], EpochCheckpoint(checkpoint_dir, "tail", history),
             fit_steps)
    parts = (stem, top.get_layer(build_model.TAIL_NAME), top.get_layer(build_model.HEADS_NAME))
    return build_model.build_facenet_model(parts=parts), history


def quantization_images(images: np.ndarray, train_rows: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, agreement): two disjoint fixed random samples of the training part, for int8
    quantization (lite_model.int8_files)."""
    picks = np.random.default_rng(seed).permutation(np.unique(train_rows))
    calibration = picks[:lite_model.CALIBRATION_IMAGES]
    agreement = picks[lite_model.CALIBRATION_IMAGES:lite_model.CALIBRATION_IMAGES + lite_model.AGREEMENT_IMAGES]
    return images[np.sort(calibration)], images[np.sort(agreement if len(agreement) else calibration)]


def quantize(model_dir: Path, data_paths, use_cache: bool = True) -> Path:
    """Add the int8 files to a saved model that lacks them (or replace them), quantized with images of the
    model's own training part found among data_paths."""
    from face_analysis import evaluate_model

    model, info = model_store.load_model(model_dir)
    split_table = pd.read_csv(Path(model_dir) / "split.csv", dtype={"sha256": str})
    data = prepare_data(data_paths, info["input_size"], use_cache, info["crop_widen"])
    rows = evaluate_model.select_rows(data.frame, split_table, "train")
    if len(rows) == 0 or not data.frame["sha256"].isin(split_table["sha256"]).any():
        raise utk_data.DataError(f"none of the images given is in the training part of {model_dir}")
    with lite_model.float_export(model) as exported:
        int8 = lite_model.int8_files(exported, *quantization_images(data.images, rows))
        model_store.add_files(model_dir, int8)
        lite_model.write_tflite(model, model_dir, exported)  # the manifest changed: so did its name
    log.info("added %s (%.1f MB) to %s", ", ".join(int8), sum(map(len, int8.values())) / 1e6, model_dir)
    return Path(model_dir) / lite_model.INT8_FILE


def check_train_outputs(config: TrainConfig) -> None:
    """Refuse, before any work, a model or statistics folder that would replace the data or files this tool
    did not write."""
    sources = output_guard.InputSet(config.data_paths)
    output_guard.check_model_folder("--model_path", config.model_dir, sources, model_store.is_saved_model)
    if config.stats_dir is not None:
        output_guard.check_stats_folder("--stats_dir", config.stats_dir, sources, paths.STATS_ENTRIES)


def _undistributed(model, config: TrainConfig):
    """A copy of a model trained under a strategy, with plain variables (for saving and export)."""
    plain = build_model.build_model(config.model_type, config.fine_tune_from)
    plain.set_weights(model.get_weights())
    return plain


def train(config: TrainConfig) -> Path | None:
    """Train a model on UTKFace and save it (with its split and history) to config.model_dir.

    With config.distribute, every worker of the cluster runs this; only the chief saves (the others return
    None)."""
    import keras

    from face_analysis import plots

    distribution = make_distribution(config.distribute, config.devices)  # before TensorFlow runs anything
    check_train_outputs(config)
    paths.CACHE_WRITES = distribution.is_chief
    keras.utils.set_random_seed(config.seed)
    started = time.time()
    if distribution.kind != "none":
        batch = distribution.global_batch(config.batch_size)
        log.info("%s: global batch %d (%d per replica x %d replicas), learning rates x%.2f", distribution.kind,
                 batch, config.batch_size, distribution.replicas, distribution.learning_rate(1.0, batch))
    data = prepare_data(config.data_paths, INPUT_SIZES[config.model_type], config.use_cache, config.crop_widen)
    train_part = data.frame.iloc[data.part("train")]
    if len(train_part) == 0 or len(data.part("val")) == 0:
        raise utk_data.DataError("too few images to make a training and a validation part")
    train_rows = data.part("train")[utk_data.rebalance_ages(train_part, seed=config.seed)]
    if config.stats_dir is not None and distribution.is_chief:
        data_stats = Path(config.stats_dir) / "data_stats"
        plots.plot_distributions(data.frame, data_stats / "raw_data_stats", "all de-duplicated images")
        plots.plot_distributions(data.frame.iloc[train_rows], data_stats / "adjusted_data_stats",
                                 "training part after rebalancing")
    run_key = _data_key(data.frame, config.model_type)
    checkpoint_dir = _checkpoint_dir(paths.CACHE_DIR / "checkpoints" / f"{config.model_dir.name}-{run_key}",
                                     distribution)
    trainer = _train_facenet if config.model_type == "facenet" else _train_normal
    model, history = trainer(config, data, train_rows, checkpoint_dir, distribution)
    if not distribution.is_chief:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return None
    if distribution.kind != "none":
        model = _undistributed(model, config)
    info = {"model_type": config.model_type, "input_size": INPUT_SIZES[config.model_type],
            "trained_on": {s: int(len(data.part(s))) for s, _ in utk_data.SPLIT_FRACTIONS},
            "sources": {source: {s: int(n) for s, n in group["split"].value_counts().items()}
                        for source, group in data.frame.groupby("source")},
            "training_images_after_rebalancing": int(len(train_rows)), "epochs": config.epochs,
            "distilled_from": str(config.distill_from) if config.distill_from else None,
            "crop_widen": config.crop_widen,
            **({"fine_tune_from": config.fine_tune_from} if config.model_type == "facenet" else {}),
            **({"distribute": config.distribute, "replicas": distribution.replicas}
               if distribution.kind != "none" else {}),
            "training_seconds": round(time.time() - started)}
    split = data.frame[["sha256", "split"]]  # content hashes only: no UTKFace names or labels are stored
    log.info("quantizing to int8 (lite_model.int8_files) ...")
    with lite_model.float_export(model) as exported:
        int8 = lite_model.int8_files(exported, *quantization_images(data.images, data.part("train"), config.seed))
        model_store.save_model(model, config.model_dir, info, {
            "split.csv": model_store.csv_bytes(split), "history.csv": model_store.csv_bytes(pd.DataFrame(history)),
            **int8})
        lite_model.write_tflite(model, config.model_dir, exported)  # what `run --precision float32` executes
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("saved %s model to %s after %.0f s", config.model_type, config.model_dir, time.time() - started)
    return config.model_dir
