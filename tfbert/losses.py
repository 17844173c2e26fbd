"""Weighted losses for skewed labels (`--class-weight balanced`).

Registered Keras losses, so checkpoints that carry them reload. Unweighted
runs use Keras' own losses unchanged.
"""

from __future__ import annotations

import keras
from keras import ops

EPSILON = 1e-7  # as Keras' cross-entropies clip


@keras.saving.register_keras_serializable(package="tfbert")
class WeightedClassCrossentropy(keras.losses.Loss):
    """Cross-entropy with a weight per true class: one sigmoid unit for 2 classes, else a softmax over ids.

    Args:
        class_weights: list of float, one per class (label id order).
    """

    def __init__(self, class_weights, name="weighted_class_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = list(class_weights)

    def call(self, y_true, y_pred):
        weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
        if len(self.class_weights) == 2 and y_pred.shape[-1] == 1:  # one sigmoid unit, float 0/1 targets
            y = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
            p = ops.clip(ops.reshape(y_pred, (-1,)), EPSILON, 1 - EPSILON)
            per_example = -(y * ops.log(p) + (1 - y) * ops.log(1 - p))
            return per_example * (y * weights[1] + (1 - y) * weights[0])
        ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        per_example = keras.losses.sparse_categorical_crossentropy(ids, y_pred)
        return per_example * ops.take(weights, ids)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="tfbert")
class PositiveWeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy per label with the positive term weighted: -(w y log p + (1 - y) log(1 - p)).

    Args:
        positive_weights: list of float, one per label.
    """

    def __init__(self, positive_weights, name="positive_weighted_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.positive_weights = list(positive_weights)

    def call(self, y_true, y_pred):
        weights = ops.convert_to_tensor(self.positive_weights, dtype=y_pred.dtype)
        y = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, EPSILON, 1 - EPSILON)
        return ops.mean(-(weights * y * ops.log(p) + (1 - y) * ops.log(1 - p)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "positive_weights": self.positive_weights}
