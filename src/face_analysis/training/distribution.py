"""`train --distribute`: tf.distribute strategies, which worker writes, and how batch and learning rate scale.

none: TensorFlow's default strategy (one device). mirrored: MirroredStrategy over every local GPU, or the
devices named (`--devices CPU:0 CPU:1` splits the CPU into logical devices, for trying it without GPUs).
multi_worker: MultiWorkerMirroredStrategy over the cluster of the TF_CONFIG variable. Only the chief writes
the model, the statistics and the caches; every worker keeps its own checkpoint for --resume."""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)
STRATEGIES = ("none", "mirrored", "multi_worker")
REFERENCE_BATCH = 64  # the global batch the learning rates of training.recipes were tuned at


@dataclass
class Distribution:
    """The strategy of a training run and this process's place in it."""

    strategy: object  # a tf.distribute.Strategy
    kind: str = "none"
    worker_index: int = 0
    num_workers: int = 1

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the model, statistics and caches (worker 0 when TF_CONFIG names no chief)."""
        return self.worker_index == 0

    def global_batch(self, per_replica: int) -> int:
        return per_replica * self.replicas

    def learning_rate(self, base: float, global_batch: int) -> float:
        """The square-root scaling rule for Adam: the rate grows with the square root of the global batch
        over REFERENCE_BATCH (README: Training on several GPUs or machines)."""
        return base * math.sqrt(global_batch / REFERENCE_BATCH)


    def trainable_copies(self, *models) -> tuple:
        """The models themselves without a strategy; with one, copies made in its scope (so that their
        variables are mirrored) holding the same weights."""
        if self.kind == "none":
            return models
        import keras

        copies = []
        with self.strategy.scope():
            for model in models:
                copy = keras.models.clone_model(model)
                copy.set_weights(model.get_weights())
                copies.append(copy)
        return tuple(copies)

    def sharded_dataset(self, make, global_batch: int):
        """A training input for model.fit: make(num_shards, shard_index, batch) builds one worker's tf.data
        pipeline (its own shard of the samples, batched per replica), so each worker reads and augments only
        its part. Without a strategy: make(1, 0, global_batch). With one, the pipeline repeats: fit then takes
        the same number of steps on every worker (steps_per_epoch)."""
        if self.kind == "none":
            return make(1, 0, global_batch)

        def per_worker(context):
            return make(context.num_input_pipelines, context.input_pipeline_id,
                        context.get_per_replica_batch_size(global_batch)).repeat()

        return self.strategy.distribute_datasets_from_function(per_worker)

    def steps_per_epoch(self, samples: int, global_batch: int) -> int | None:
        """fit's steps an epoch: None (the data's end) without a strategy, else whole global batches' worth."""
        return None if self.kind == "none" else max(1, math.ceil(samples / global_batch))


def _worker_place() -> tuple[int, int]:
    """(index, number of workers) of this process in TF_CONFIG's cluster; the chief, if named, comes first."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if task.get("type") == "chief":
        return 0, chiefs + workers
    return chiefs + int(task.get("index", 0)), chiefs + workers


def _multi_worker_strategy():
    """tf.distribute.MultiWorkerMirroredStrategy, mended for Keras 3.15's fit, which asks it to reduce a whole
    nested batch (only to learn its shapes when building the model) and scalar logs along axis 0, both of which
    it refuses: a nest gets this worker's own values, a scalar is reduced as a scalar."""
    import tensorflow as tf

    class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis=None):
            if tf.nest.is_nested(value):
                return tf.nest.map_structure(lambda part: self.experimental_local_results(part)[0], value)
            local = self.experimental_local_results(value)[0]
            return super().reduce(reduce_op, value, None if local.shape.rank == 0 else axis)

    return MultiWorkerStrategy()


def _logical_cpus(count: int) -> None:
    """Split the CPU into `count` logical devices (before TensorFlow starts using it)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_distribution(kind: str = "none", devices: list[str] | None = None) -> Distribution:
    """The strategy for `--distribute kind` (devices: mirrored's device names, e.g. GPU:0 GPU:1 or CPU:0 CPU:1).
    Call it before TensorFlow runs anything: multi_worker and logical CPUs must be set up first."""
    import tensorflow as tf

    from face_analysis.errors import UsageError

    if kind == "none":
        return Distribution(tf.distribute.get_strategy())
    if kind == "mirrored":
        if devices:
            cpus = [d for d in devices if d.upper().lstrip("/").startswith(("CPU", "DEVICE:CPU"))]
            if len(cpus) > 1:
                _logical_cpus(len(cpus))
        strategy = tf.distribute.MirroredStrategy(devices=devices or None)
        log.info("mirrored: %d replicas on %s", strategy.num_replicas_in_sync, ", ".join(strategy.extended.worker_devices))
        return Distribution(strategy, kind)
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UsageError("--distribute multi_worker needs the TF_CONFIG variable describing the cluster "
                             "(README: Training on several GPUs or machines)")
        index, count = _worker_place()
        strategy = _multi_worker_strategy()
        log.info("multi_worker: worker %d of %d, %d replicas in all", index, count, strategy.num_replicas_in_sync)
        return Distribution(strategy, kind, index, count)
    raise UsageError(f"--distribute {kind}: not one of {', '.join(STRATEGIES)}")

