"""train(): data, recipe, save and int8 export, under a tf.distribute strategy; quantize() for older models."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from face_analysis import paths
from face_analysis.data import utk as utk_data
from face_analysis.data.prepare import prepare_data, read_split, select_rows, split_files
from face_analysis.io import guard as output_guard
from face_analysis.labels import INPUT_SIZES
from face_analysis.models import architectures as build_model
from face_analysis.models import compiled as lite_model
from face_analysis.models import store as model_store
from face_analysis.training.config import TrainConfig
from face_analysis.training.distribution import Distribution, make_distribution
from face_analysis.training.loop import data_key
from face_analysis.training.recipes import train_facenet, train_normal

log = logging.getLogger(__name__)


def _checkpoint_dir(base: Path, distribution: Distribution) -> Path:
    """Where this process keeps its checkpoints: the chief in base, other workers in their own folder inside."""
    return base if distribution.is_chief else base / f"worker-{distribution.worker_index}"


def quantization_images(images: np.ndarray, train_rows: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, agreement) images: two disjoint fixed random samples of the training part, for int8
    quantization (models.compiled.int8_files); the same image for both only when there is one."""
    calibration, agreement = lite_model.quantization_samples(train_rows, seed)
    return images[calibration], images[agreement if len(agreement) else calibration]


def quantize(model_dir: Path, data_paths, use_cache: bool = True, force: bool = False) -> Path:
    """Add the int8 files to a saved model that lacks them (or replace them), quantized with images of the
    model's own training part found among data_paths: refused with fewer than models.compiled.QUANTIZE_IMAGES
    of them (calibration and agreement images apart) unless force, and with fewer than two even then."""
    model_store.check_writable(model_dir)
    info = model_store.read_model_info(model_dir)
    split_table = read_split(model_dir)
    data = prepare_data(data_paths, info["input_size"], use_cache, info["crop_widen"])
    rows = select_rows(data.frame, split_table, "train")
    if len(rows) == 0 or not data.frame["sha256"].isin(split_table["sha256"]).any():
        raise utk_data.DataError(f"none of the images given is in the training part of {model_dir}")
    found = len(np.unique(rows))
    if found < lite_model.QUANTIZE_IMAGES and (not force or found < 2):
        raise utk_data.DataError(
            f"{model_dir}: {found} image(s) of its training part found in the data given; quantize needs "
            f"{lite_model.QUANTIZE_IMAGES} ({lite_model.CALIBRATION_IMAGES} to quantize with and "
            f"{lite_model.AGREEMENT_IMAGES} others to check int8 against float32 on)"
            + ("" if found < 2 else ", or --force to quantize with these") + "; its int8 files are left as they are")
    if found < lite_model.QUANTIZE_IMAGES:
        log.warning("warning: --force: quantizing with %d training images instead of %d: the int8 answers may "
                    "differ more from float32's", found, lite_model.QUANTIZE_IMAGES)
    model, info = model_store.load_model(model_dir)
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

    from face_analysis.evaluation import plots

    distribution = make_distribution(config.distribute, config.devices)  # before TensorFlow runs anything
    check_train_outputs(config)
    paths.CACHE_WRITES = distribution.is_chief
    keras.utils.set_random_seed(config.seed)
    started = time.time()
    if distribution.kind != "none":
        batch = distribution.global_batch(config.batch_size)
        log.info("%s: global batch %d (%d per replica x %d replicas), learning rates x%.2f", distribution.kind,
                 batch, config.batch_size, distribution.replicas, distribution.learning_rate(1.0, batch))
    if config.init_from is not None:  # its architecture and crop are kept
        start = model_store.read_model_info(config.init_from, "facenet")
        config.fine_tune_from, config.crop_widen = start["fine_tune_from"], start["crop_widen"]
    data = prepare_data(config.data_paths, INPUT_SIZES[config.model_type], config.use_cache, config.crop_widen)
    train_part = data.frame.iloc[data.part("train")]
    if len(train_part) == 0 or len(data.part("val")) == 0:
        raise utk_data.DataError("too few images to make a training and a validation part")
    positions = utk_data.rebalance_ages(train_part, seed=config.seed)
    if config.balance_groups:
        positions = utk_data.balance_groups(train_part, positions, seed=config.seed)
    train_rows = data.part("train")[positions]
    if config.stats_dir is not None and distribution.is_chief:
        data_stats = Path(config.stats_dir) / "data_stats"
        plots.plot_distributions(data.frame, data_stats / "raw_data_stats", "all de-duplicated images")
        plots.plot_distributions(data.frame.iloc[train_rows], data_stats / "adjusted_data_stats",
                                 "training part after rebalancing")
    run_key = data_key(data.frame, config.model_type)
    checkpoint_dir = _checkpoint_dir(paths.CACHE_DIR / "checkpoints" / f"{config.model_dir.name}-{run_key}",
                                     distribution)
    trainer = train_facenet if config.model_type == "facenet" else train_normal
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
            "training_images_after_rebalancing": int(len(train_rows)), "balance_groups": config.balance_groups, "epochs": config.epochs,
            "distilled_from": str(config.distill_from) if config.distill_from else None,
            **({"distill_weight": config.distill_weight} if config.distill_from else {}),
            "crop_widen": config.crop_widen, "small_faces": config.small_faces,
            **({"fine_tune_from": config.fine_tune_from, "whole_epochs": config.whole_epochs,
                "init_from": str(config.init_from) if config.init_from else None}
               if config.model_type == "facenet" else {}),
            **({"distribute": config.distribute, "replicas": distribution.replicas}
               if distribution.kind != "none" else {}),
            "training_seconds": round(time.time() - started)}
    split = data.frame[["sha256", "split"]]  # content hashes only: no UTKFace names or labels are stored
    log.info("quantizing to int8 (models.compiled.int8_files) ...")
    with lite_model.float_export(model) as exported:
        int8 = lite_model.int8_files(exported, *quantization_images(data.images, data.part("train"), config.seed))
        model_store.save_model(model, config.model_dir, info, {
            **split_files(split), "history.csv": model_store.csv_bytes(pd.DataFrame(history)),
            **int8})
        lite_model.write_tflite(model, config.model_dir, exported)  # what `run --precision float32` executes
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("saved %s model to %s after %.0f s", config.model_type, config.model_dir, time.time() - started)
    return config.model_dir
