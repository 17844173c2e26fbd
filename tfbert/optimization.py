"""BERT's fine-tuning optimizer: AdamW, warmup then linear decay, clipping.

- Weight decay 0.01, not applied to LayerNorm parameters or biases. Keras 3
  names those variables `gamma`, `beta` and `bias` (short names); the
  BERT-era patterns "LayerNorm" / "layer_norm" silently match nothing.
- Learning rate rises linearly from 0 over the first `warmup_ratio` of the
  steps, then falls linearly to 0 at the last step.
- Gradients are clipped to a global norm of 1.0, after the cross-replica
  sum, so N replicas train like one device (`tfbert.keras_compat.AdamW`).
- Optional layer-wise learning-rate decay (`layer_lr_decay`, off at 1.0):
  the head keeps the full rate, BERT's top layer gets `decay` times it, each
  layer below one more factor, the embeddings the smallest.
"""

from __future__ import annotations

import logging

import keras
from keras import ops

from tfbert import keras_compat

logger = logging.getLogger(__name__)

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


def build_optimizer(peak_learning_rate: float, total_steps: int, warmup_ratio: float, weight_decay: float,
                    layer_lr_decay: float = 1.0) -> keras.optimizers.AdamW:
    """AdamW with the schedule above, decay exclusions, global-norm clipping and optional layer-wise rates.

    tfbert's AdamW where `keras_compat.supported()`; elsewhere Keras' own
    AdamW with `global_clipnorm` (clipped per replica), which has no
    layer-wise rates.
    """
    schedule = WarmupLinearDecay(peak_learning_rate, total_steps, int(round(total_steps * warmup_ratio)))
    settings = dict(learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-6)
    if keras_compat.supported():
        optimizer = keras_compat.AdamW(clip_global_norm=CLIP_NORM, layer_lr_decay=layer_lr_decay, **settings)
    elif layer_lr_decay != 1.0:
        raise ValueError(f"--layer-lr-decay {layer_lr_decay} needs tfbert's AdamW, which this Keras version does "
                         "not support (see the warning above); leave it at 1.0 or install the tested versions.")
    else:
        optimizer = keras.optimizers.AdamW(global_clipnorm=CLIP_NORM, **settings)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return optimizer
