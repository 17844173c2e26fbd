"""The one module that knows about tf.distribute strategies.

`auto` picks MirroredStrategy over all visible GPUs when there is at least
one, and the default (no-op) strategy otherwise. Build, load presets and
compile inside `strategy.scope()`: a Keras model captures the strategy
when its variables are created.
"""

from __future__ import annotations

import logging

import tensorflow as tf

logger = logging.getLogger(__name__)


def get_strategy(name: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """Resolve a `--strategy` value to a tf.distribute strategy.

    Args:
        name: auto, default, mirrored, multiworker or tpu.
        tpu: TPU address or name for `tpu` (TPUClusterResolver's `tpu` argument).
    """
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if gpus else "default"
    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    else:
        raise ValueError(f"Unknown --strategy {name!r}; use auto, default, mirrored, multiworker or tpu.")
    logger.info("Strategy %s with %d replica(s).", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker (only the chief writes files)."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    task_type, task_id = resolver.task_type, resolver.task_id
    if not task_type:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and task_id == 0 and not has_chief
