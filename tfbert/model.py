"""The article's classifier, with the broken pieces replaced.

    token_ids, segment_ids, padding_mask           (batch, seq) int32
      -> keras_hub BertBackbone ["sequence_output"] (batch, seq, hidden)
      -> MaskedMeanPooling (real tokens only)       (batch, hidden)
      -> Dropout -> Dense(128, relu) -> Dropout
      -> Dense(units, activation)                   (batch, units) float32

The article averaged with `GlobalAveragePooling1D`, which counts padding;
`MaskedMeanPooling` divides by the number of real tokens, so a text's
prediction does not depend on how much padding it gets. The task
(`tfbert.tasks`) chooses the last layer's units and activation. This module
reads no files and knows nothing about datasets.
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from tfbert import keras_compat
from tfbert.config import ModelConfig
from tfbert.preprocessor import FEATURES, TextPreprocessor

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
        # A row with no real token (the preprocessor always emits [CLS] and [SEP]) would divide by zero.
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


@keras.saving.register_keras_serializable(package="tfbert")
class TextClassifier(keras.Model):
    """The article's head on a BERT backbone, carrying the preprocessor its inputs come from.

    A functional model over the three BERT inputs, like keras-hub's
    `BertTextClassifier`: `get_config` holds the backbone, the head and the
    preprocessor, so a saved `.keras` file reloads as a model that still
    knows its vocabulary, sequence length, pair setting and truncation.

    Args:
        backbone: keras_hub.models.BertBackbone (or any model taking the three
            BERT inputs and returning a dict with "sequence_output").
        units: int. Outputs of the last layer (the task's `output_units`).
        activation: str. Its activation (the task's: sigmoid, softmax, linear).
        dropout: float. Dropout on the pooled vector and the hidden layer.
        preprocessor: TextPreprocessor or None. Strings -> the model's inputs.
    """

    def __init__(self, backbone: keras.Model, units: int, activation: str, dropout: float = 0.1,
                 preprocessor: TextPreprocessor | None = None, **kwargs):
        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in FEATURES}
        sequence = backbone(inputs)["sequence_output"]
        pooled = MaskedMeanPooling(name="masked_mean_pooling")(sequence, inputs["padding_mask"])
        x = keras.layers.Dropout(dropout, name="pooled_dropout")(pooled)
        x = keras.layers.Dense(HEAD_UNITS, activation="relu", name="head_dense")(x)
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        # float32 even under a mixed-precision policy: probabilities and the loss stay out of half precision.
        outputs = keras.layers.Dense(units, activation=activation, dtype="float32", name="probability")(x)
        kwargs.setdefault("name", "tfbert_classifier")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # === Config ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.units = units
        self.activation = activation
        self.dropout = dropout

    def get_config(self):
        # Not chained to Functional.get_config, whose nested graph the constructor cannot take.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
            "preprocessor": None if self.preprocessor is None else keras.layers.serialize(self.preprocessor),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.layers.deserialize(config["preprocessor"])
        return cls(**config)


def build_classifier(backbone: keras.Model, units: int, activation: str, dropout: float = 0.1,
                     preprocessor: TextPreprocessor | None = None) -> TextClassifier:
    """A `TextClassifier`, with the backbone's unused [CLS] pooler kept out of training.

    Builds stock Keras layers only; ask for the fast ones with
    `tfbert.keras_compat.use_fast_layers(model)`.
    """
    keras_compat.freeze_pooler(backbone)
    return TextClassifier(backbone, units, activation, dropout=dropout, preprocessor=preprocessor)


def load_classifier(path: str) -> TextClassifier:
    """A saved `TextClassifier` (such as `<run dir>/checkpoints/best.keras`) with its preprocessor, for inference.

    In Keras' `safe_mode` (no code from the file runs) and without the training state (`compile=False`: the
    optimizer and loss are not rebuilt).
    """
    return keras.saving.load_model(path, compile=False, safe_mode=True)
