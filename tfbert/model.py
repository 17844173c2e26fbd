"""The article's classifier, with the broken pieces replaced.

    token_ids, segment_ids, padding_mask           (batch, seq) int32
      -> keras_hub BertBackbone ["sequence_output"] (batch, seq, hidden)
      -> MaskedMeanPooling (real tokens only)       (batch, hidden)
      -> Dropout -> Dense(128, relu)
      -> Dense(1, sigmoid) for 2 labels, Dense(n, softmax) for more  (float32)

The article averaged with `GlobalAveragePooling1D`, which counts padding;
`MaskedMeanPooling` divides by the number of real tokens, so a text's
prediction does not depend on how much padding it gets. This module reads
no files and knows nothing about datasets.
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from tfbert.config import ModelConfig
from tfbert.preprocessing import FEATURES

HEAD_UNITS = 128  # the article's Dense(128, relu)


@keras.saving.register_keras_serializable(package="tfbert")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of `sequence` over positions where `padding_mask` is 1.

    Call arguments:
        sequence: float tensor (batch, seq, hidden).
        padding_mask: int or bool tensor (batch, seq); 1 marks a real token.
    """

    def call(self, sequence, padding_mask):
        mask = ops.expand_dims(ops.cast(padding_mask, sequence.dtype), -1)  # (batch, seq, 1)
        total = ops.sum(sequence * mask, axis=1)
        # A row with no real token (cannot come from the preprocessor, which
        # always emits [CLS] and [SEP]) would divide by zero; clamp to 1.
        count = ops.maximum(ops.sum(mask, axis=1), ops.cast(1, sequence.dtype))
        return total / count

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[2])


def build_backbone(config: ModelConfig, vocabulary_size: int, max_sequence_length: int) -> keras_hub.models.BertBackbone:
    """A randomly initialised BERT of the given shape."""
    return keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim,
        dropout=config.dropout,
        max_sequence_length=max_sequence_length,
    )


def build_classifier(backbone: keras.Model, num_classes: int, dropout: float = 0.1) -> keras.Model:
    """Put the article's head on `backbone`. Outputs probabilities in float32.

    Args:
        backbone: keras_hub.models.BertBackbone (or any model taking the three
            BERT inputs and returning a dict with "sequence_output").
        num_classes: int >= 2. Two classes give one sigmoid unit (P(label 1)).
        dropout: float. Dropout on the pooled vector and the hidden layer.
    """
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, got {num_classes}.")
    # The backbone's [CLS] pooler is unused by this head; freezing it keeps
    # it out of the optimizer (and out of "no gradient" warnings).
    if any(layer.name == "pooled_dense" for layer in backbone.layers):
        backbone.get_layer("pooled_dense").trainable = False
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in FEATURES}
    sequence = backbone(inputs)["sequence_output"]
    pooled = MaskedMeanPooling(name="masked_mean_pooling")(sequence, inputs["padding_mask"])
    x = keras.layers.Dropout(dropout, name="pooled_dropout")(pooled)
    x = keras.layers.Dense(HEAD_UNITS, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # float32 output even under a mixed-precision policy: probabilities and
    # the loss must not be computed in half precision.
    if num_classes == 2:
        outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name="tfbert_classifier")


def probabilities_per_label(outputs):
    """(batch, 1) sigmoid or (batch, n) softmax -> (batch, n_labels) probabilities."""
    if outputs.shape[-1] == 1:
        return ops.concatenate([1.0 - outputs, outputs], axis=-1)
    return outputs
