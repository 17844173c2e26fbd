"""The one module that knows about tf.distribute strategies, devices and precision.

`auto` picks MirroredStrategy over all visible GPUs when there is at least
one, and the default (no-op) strategy otherwise. Build, load presets and
compile inside `strategy.scope()`: a Keras model captures the strategy
when its variables are created.

Under `multiworker`, `model.fit` needs a fix to two Keras internals, which
`tfbert.keras_compat.patch_multi_worker_fit` applies.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import keras
import tensorflow as tf

from tfbert import keras_compat

logger = logging.getLogger(__name__)


def get_strategy(name: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """Resolve a `--strategy` value to a tf.distribute strategy.

    Args:
        name: auto, default, mirrored, multiworker or tpu.
        tpu: TPU address or name for `tpu` (TPUClusterResolver's `tpu` argument).
    """
    if name == "multiworker":
        # Must come before anything else initializes the TF runtime (even
        # listing logical devices): collectives are configured at startup.
        if not keras_compat.patch_multi_worker_fit():
            logger.warning("Keras %s is not the tested version, so model.fit under MultiWorkerMirroredStrategy "
                           "runs without tfbert's fix and may fail (keras-team/keras#20585).", keras.__version__)
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
    logger.debug("Strategy %s with %d replica(s).", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster: `count` workers, this one is `index`; only the chief writes files."""

    count: int = 1
    index: int = 0
    chief: bool = True

    @property
    def multi_worker(self) -> bool:
        return self.count > 1


def worker_info(strategy: tf.distribute.Strategy) -> WorkerInfo:
    """This process's `WorkerInfo`; one chief worker outside multi-worker training."""
    if not keras_compat.is_multi_worker(strategy):
        return WorkerInfo(chief=is_chief())
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    tasks = [("chief", i) for i in range(len(spec.get("chief", [])))] + [("worker", i) for i in range(len(spec.get("worker", [])))]
    return WorkerInfo(len(tasks), tasks.index((resolver.task_type, resolver.task_id)), is_chief())


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


def describe_devices(strategy: tf.distribute.Strategy, policy: str) -> str:
    """One line: the devices a run computes on, its strategy and replicas, and its precision."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        devices = f"{len(gpus)} GPU(s)"
    else:
        flags = cpu_flags() or set()
        native = "native bf16" if flags & BF16_CPU_FLAGS else ("AVX-512" if "avx512f" in flags else
                                                              "AVX2" if "avx2" in flags else "")
        devices = f"CPU ({os.cpu_count()} cores{', ' + native if native else ''})"
    return (f"Device: {devices}; strategy {type(strategy).__name__.lstrip('_')}, "
            f"{strategy.num_replicas_in_sync} replica(s); precision {policy}.")


def mixed_precision_pays() -> bool:
    """What `--precision auto` (bench/bench.py) picks: True on a GPU or TPU, or a CPU known to have native bf16.

    A CPU whose flags are unknown counts as False: float32 is never the
    much slower choice, emulated bf16 can be (docs/performance.md).
    """
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return True
    return native_bfloat16_cpu() is True


def set_precision(mixed_precision: bool) -> str:
    """Set the global Keras dtype policy: mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU, else float32.

    Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer at
    compile time. The model's output layer is float32 either way. On a CPU
    without native bf16 it warns and keeps the choice: TensorFlow emulates
    bf16 there, several times slower than float32 (docs/performance.md).
    """
    policy = "float32"
    if mixed_precision:
        policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    if policy == "mixed_bfloat16" and not tf.config.list_logical_devices("TPU"):
        if native_bfloat16_cpu() is False:
            logger.warning(
                "--mixed-precision: this CPU has no native bfloat16 (neither %s in /proc/cpuinfo), so TensorFlow "
                "emulates it, several times slower than float32. Drop --mixed-precision here.", " nor ".join(sorted(BF16_CPU_FLAGS)))
    keras.mixed_precision.set_global_policy(policy)
    logger.debug("Dtype policy: %s", policy)
    return policy
