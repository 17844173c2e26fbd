"""BERT's fine-tuning optimizer: AdamW, warmup then linear decay, clipping.

- Weight decay 0.01, not applied to LayerNorm parameters or biases. Keras 3
  names those variables `gamma`, `beta` and `bias` (short names); the
  BERT-era patterns "LayerNorm" / "layer_norm" silently match nothing.
- Learning rate rises linearly from 0 over the first `warmup_ratio` of the
  steps, then falls linearly to 0 at the last step.
- Gradients are clipped to a global norm of 1.0, after the cross-replica
  sum (see `AdamW`), so N replicas train like one device.
"""

from __future__ import annotations

import keras
from keras import ops

NO_DECAY_NAMES = ("gamma", "beta", "bias")
CLIP_NORM = 1.0


@keras.saving.register_keras_serializable(package="tfbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`peak * step / warmup_steps` during warmup, then linear to 0 at `total_steps`.

    Args:
        peak_learning_rate: float. Rate reached at the end of warmup.
        total_steps: int. Steps of the whole run; the rate is 0 from here on.
        warmup_steps: int. Steps of linear warmup (0 for none).
    """

    def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int = 0):
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_learning_rate, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        decay_span = ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
        warm = peak * step / warmup
        decayed = peak * ops.maximum(0.0, (self.total_steps - step) / decay_span)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="tfbert")
class AdamW(keras.optimizers.AdamW):
    """AdamW whose global-norm clipping sees the all-reduced gradient.

    Keras 3.15 clips `global_clipnorm` inside each replica, before the
    cross-replica sum: with 2 replicas each half-gradient is clipped to the
    norm on its own, so the update differs from single-device training (up to
    2x the norm, and a different direction). Here the gradients are summed
    across replicas first, then clipped once. On one device this is exactly
    Keras' `global_clipnorm`.

    Args:
        clip_global_norm: float or None. Clip the summed gradient to this global norm.
        **kwargs: passed to keras.optimizers.AdamW (without clipnorm/global_clipnorm).
    """

    def __init__(self, clip_global_norm: float | None = CLIP_NORM, **kwargs):
        super().__init__(**kwargs)
        self.clip_global_norm = clip_global_norm

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.clip_global_norm is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import tensorflow as tf

        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        reduced = self._all_reduce_sum_gradients(list(zip(grads, variables)))  # no-op on one device
        clipped, _ = tf.clip_by_global_norm([g for g, _ in reduced], self.clip_global_norm)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy, list(zip(clipped, variables)), learning_rate
        )

    def get_config(self):
        return {**super().get_config(), "clip_global_norm": self.clip_global_norm}


def build_optimizer(peak_learning_rate: float, total_steps: int, warmup_ratio: float, weight_decay: float) -> keras.optimizers.AdamW:
    """AdamW with the schedule above, decay exclusions and global-norm clipping."""
    schedule = WarmupLinearDecay(peak_learning_rate, total_steps, int(round(total_steps * warmup_ratio)))
    optimizer = AdamW(learning_rate=schedule, weight_decay=weight_decay, clip_global_norm=CLIP_NORM, epsilon=1e-6)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
