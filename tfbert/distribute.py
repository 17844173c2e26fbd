"""The one module that knows about tf.distribute strategies, devices and precision.

`auto` picks MirroredStrategy over all visible GPUs when there is at least
one, and the default (no-op) strategy otherwise. Build, load presets and
compile inside `strategy.scope()`: a Keras model captures the strategy
when its variables are created.

The Keras multi-worker compatibility fix lives here and nowhere else
(`patch_keras_for_multi_worker`).
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf
from keras import tree

logger = logging.getLogger(__name__)

# Keras versions the multi-worker fix below was written and tested against.
MULTI_WORKER_FIX_TESTED = ("3.15.",)


def get_strategy(name: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """Resolve a `--strategy` value to a tf.distribute strategy.

    Args:
        name: auto, default, mirrored, multiworker or tpu.
        tpu: TPU address or name for `tpu` (TPUClusterResolver's `tpu` argument).
    """
    if name == "multiworker":
        # Must come before anything else initializes the TF runtime (even
        # listing logical devices): collectives are configured at startup.
        patch_keras_for_multi_worker()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logger.info("Strategy MultiWorkerMirroredStrategy with %d replica(s).", strategy.num_replicas_in_sync)
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        # MirroredStrategy() alone mirrors over GPUs only; without GPUs use all
        # logical CPU devices (how the 2-replica CPU test runs).
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    elif name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    else:
        raise ValueError(f"Unknown --strategy {name!r}; use auto, default, mirrored, multiworker or tpu.")
    logger.info("Strategy %s with %d replica(s).", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def worker_info(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """(number of workers, this worker's index) -- (1, 0) outside multi-worker training."""
    if not is_multi_worker(strategy):
        return 1, 0
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    tasks = [("chief", i) for i in range(len(spec.get("chief", [])))] + [("worker", i) for i in range(len(spec.get("worker", [])))]
    return len(tasks), tasks.index((resolver.task_type, resolver.task_id))


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker (only the chief writes files)."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    task_type, task_id = resolver.task_type, resolver.task_id
    if not task_type or task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and task_id == 0 and not has_chief


# x86 CPU flags for native bfloat16 matmuls, which oneDNN uses. Without one,
# TensorFlow emulates bf16 and --mixed-precision is slower than float32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The x86 CPU feature flags Linux reports, or None where unknown (another OS, or an Arm "Features" line)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def native_bfloat16_cpu() -> bool | None:
    """Whether /proc/cpuinfo lists a native bfloat16 flag (`BF16_CPU_FLAGS`); None where it says nothing (not x86 Linux)."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & BF16_CPU_FLAGS)


def mixed_precision_pays() -> bool:
    """What `--precision auto` (bench/bench.py) picks: True on a GPU or TPU, or a CPU known to have native bf16.

    A CPU whose flags are unknown counts as False: float32 is never the
    3.5x-slower choice, emulated bf16 can be.
    """
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return True
    return native_bfloat16_cpu() is True


def set_precision(mixed_precision: bool) -> str:
    """Set the global Keras dtype policy: mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU, else float32.

    Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer at
    compile time. The model's output layer is float32 either way. On a CPU
    without native bf16 it warns and keeps the choice: fine-tuning m3e-small
    on such a CPU ran at 11 examples/s in mixed_bfloat16 against 39 in
    float32 (2 cores, 2026-11-30), while CPUs with avx512_bf16 gain about
    1.4x (README "Performance").
    """
    policy = "float32"
    if mixed_precision:
        policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    if policy == "mixed_bfloat16" and not tf.config.list_logical_devices("TPU"):
        if native_bfloat16_cpu() is False:
            logger.warning(
                "--mixed-precision: this CPU has no native bfloat16 (neither %s in /proc/cpuinfo), so TensorFlow "
                "emulates it; fine-tuning measured 3.5x slower than float32 on such a CPU. Drop --mixed-precision "
                "here.", " nor ".join(sorted(BF16_CPU_FLAGS)))
    keras.mixed_precision.set_global_policy(policy)
    logger.info("Dtype policy: %s", policy)
    return policy


def patch_keras_for_multi_worker() -> None:
    """Make `model.fit` work under MultiWorkerMirroredStrategy with Keras 3.15 / TF 2.21.

    Two Keras internals fail there (keras-team/keras#20585, tensorflow/tensorflow#72388):

    1. `TensorFlowTrainer._maybe_symbolic_build` reduces the first batch, a
       PerReplica value, with `strategy.reduce("MEAN", ...)` eagerly: "Attempt
       to convert a value (PerReplica...) with an unsupported type". The build
       only needs shapes, so we build from the first local replica's batch.
    2. `reduce_per_replica` reduces the scalar loss/metric values with
       `strategy.reduce("MEAN", v, axis=0)`: "Invalid reduction dimension 0
       for input with 0 dimensions". `axis=None` is the right reduction for
       already-per-replica scalars.

    Applied only when the multiworker strategy is requested; idempotent.
    `tests/test_distribute.py` trains 2 workers and fails when a Keras
    upgrade breaks this.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_tfbert_multi_worker_fix", False):
        return
    if not keras.__version__.startswith(MULTI_WORKER_FIX_TESTED):
        logger.warning("Keras %s: the multi-worker fix was tested on %s only.", keras.__version__, MULTI_WORKER_FIX_TESTED)
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not is_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v,
                batch,
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer._tfbert_multi_worker_fix = True
