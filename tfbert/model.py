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

import math
import types

import keras
import keras_hub
import tensorflow as tf
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


def fast_dropout_call(layer: keras.layers.Dropout, inputs, training=False):
    """`keras.layers.Dropout.call` that draws half as many random numbers.

    Keras draws one Philox float per element; on MiniLM (2 CPU cores, batch
    32 x 64 tokens) its 21 dropout layers cost ~140 ms of a ~790 ms training
    step, nearly all of it the random numbers. Here each 32-bit draw gives two
    16-bit ones, each element is kept when its 16 bits are >= round(rate *
    65536), and kept elements are scaled by 1 / (1 - rate) as in Keras. The drop
    probability is `rate` to within 2^-17 (0.1 -> 0.100006); the mask is a
    different random stream than Keras' (same seeding: one draw of the layer's
    SeedGenerator per call). `noise_shape` falls back to Keras' implementation.
    """
    threshold = round(layer.rate * 65536)
    # rate within 2^-17 of 1 would need a 17-bit threshold: Keras' call handles it (and rate 1, and noise_shape).
    if not training or layer.rate <= 0 or threshold >= 65536 or layer.noise_shape is not None:
        return keras.layers.Dropout.call(layer, inputs, training=training)

    seed = tf.cast(tf.math.floormod(layer.seed_generator.next(), tf.int32.max - 1), tf.int32)  # int32 for stateless ops
    size = tf.size(inputs)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32)
    halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(halves >= tf.constant(threshold, tf.uint16), tf.shape(inputs))
    scale = tf.where(keep, tf.cast(1.0 / (1.0 - layer.rate), inputs.dtype), tf.zeros([], inputs.dtype))
    return inputs * scale


_GELU_C = math.sqrt(2 / math.pi)


# XLA fuses each of these into one loop over the tensor (half precision is
# computed in float32 inside it); TensorFlow's own graph runs tanh GELU as ~8
# separate element-wise ops forward and ~8 backward, each a pass over memory
# (slowest in bf16). reduce_retracing: after the first shape change the trace
# generalizes to any shape (one per dtype); XLA compiles per concrete shape.
def _compute_dtype(x):
    return tf.cast(x, tf.float32) if x.dtype in (tf.bfloat16, tf.float16) else x


@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_tanh_forward(x):
    f = _compute_dtype(x)
    return tf.cast(0.5 * f * (1.0 + tf.tanh(_GELU_C * (f + 0.044715 * f * f * f))), x.dtype)


@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_tanh_backward(x, dy):
    f = _compute_dtype(x)
    t = tf.tanh(_GELU_C * (f + 0.044715 * f * f * f))
    slope = 0.5 * (1.0 + t) + 0.5 * f * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * f * f)
    return tf.cast(tf.cast(dy, f.dtype) * slope, x.dtype)


@tf.custom_gradient
def fused_gelu_tanh(x):
    """BERT's tanh-approximate GELU, one XLA-fused kernel forward and one backward.

    Same function as `keras.activations.gelu(x, approximate=True)`. On [2048,
    1536] bf16 (MiniLM's feed-forward at batch 32 x 64 tokens, 2 CPU cores):
    forward + backward 10.0 ms against 30.8 ms, ~120 ms of a ~680 ms step over
    6 layers.
    """
    return _gelu_tanh_forward(x), lambda dy: _gelu_tanh_backward(x, dy)


def _is_gelu_tanh(activation) -> bool:
    # keras-hub's BERT layers take `keras_hub...keras_utils.gelu_approximate`
    # (matched by name: the module is private and may move).
    return getattr(activation, "__name__", "") == "gelu_approximate"


def fast_dense_call(layer: keras.layers.Dense, inputs, training=None):
    """`keras.layers.Dense.call`, faster: fused GELU in training, a 2-D MatMul in inference.

    Training: the tanh GELU runs as `fused_gelu_tanh`, otherwise Keras' call.

    Inference on (batch, seq, in): one 2-D MatMul -> BiasAdd -> activation.
    Keras' Dense on a 3-D input is a `tensordot` (a reshape between MatMul and
    the bias add), which hides the pattern TensorFlow's grappler remapper
    fuses into one oneDNN `_FusedMatMul` (MatMul + BiasAdd + GELU/ReLU/...).
    Flattening first exposes it: BERT's feed-forward block ([960, 384] x
    [384, 1536] + bias + tanh GELU, bf16, 2 CPU cores) takes 4.7 ms instead of
    8.6 ms. In training the remapper cannot fuse (the backward pass needs the
    pre-activation) and the flat form measured ~5% slower per MiniLM step.
    """
    if training and _is_gelu_tanh(layer.activation):
        x = ops.matmul(inputs, layer.kernel)  # as keras.layers.Dense.call, with the fused activation
        if layer.bias is not None:
            x = ops.add(x, layer.bias)
        return fused_gelu_tanh(x)
    if training or len(inputs.shape) < 3:
        return keras.layers.Dense.call(layer, inputs, training=training)
    x = tf.matmul(tf.reshape(inputs, [-1, inputs.shape[-1]]), layer.kernel)
    if layer.bias is not None:
        x = tf.nn.bias_add(x, layer.bias)
    if layer.activation is not None:
        x = layer.activation(x)
    return tf.reshape(x, tf.concat([tf.shape(inputs)[:-1], [layer.units]], axis=0))


def _flat_einsum(equation: str) -> int:
    """How many trailing input axes `equation` contracts, when it is a matmul in disguise; 0 when not.

    A matmul in disguise: the input's last k axes are the kernel's first k,
    and the output is the input's other axes followed by the kernel's others
    ("abc,cde->abde": k = 1; "abcd,cde->abe": k = 2), which is what
    MultiHeadAttention's query/key/value and output projections compute.
    """
    inputs, output = equation.replace(" ", "").split("->")
    x, kernel = inputs.split(",")
    contracted = "".join(axis for axis in x if axis in kernel and axis not in output)
    k = len(contracted)
    if k and x.endswith(contracted) and kernel.startswith(contracted) and output == x[:-k] + kernel[k:]:
        return k
    return 0


def fast_einsum_dense_call(layer: keras.layers.EinsumDense, inputs, training=None):
    """`keras.layers.EinsumDense.call` as one 2-D MatMul + BiasAdd, for the equations that are matmuls.

    Keras' TensorFlow backend runs "abc,cde->abde" (the attention's query, key
    and value projections) as `tf.matmul` of the (batch, seq, in) input with a
    kernel broadcast over the batch: a BatchMatMul whose kernel gradient is
    `batch` separate (in x seq) @ (seq x out) products, written out as a
    (batch, in, out) tensor and then summed over the batch ("abcd,cde->abe",
    the output projection, likewise). Flattening the input to (batch * seq,
    in) makes the kernel gradient one GEMM with the tokens as its inner
    dimension, and the bias gradient one BiasAddGrad.

    Keras takes that path only when the sequence length is known when the step
    is traced: fixed-length batches (`--no-bucket-by-length`, static-shape XLA). With
    length buckets `fit` soon retraces with the length unknown, Keras then
    calls `tf.einsum`, which does not have the cost, and this changes nothing
    (MiniLM, bf16, 64 tokens: 336 vs 333 ms per step). Fixed shapes, MiniLM,
    batch 32, AMD EPYC (Zen 5) 2 cores with avx512_bf16: 341 -> 311 ms per
    training step at 64 tokens, 122 -> 109 at 16, 648 -> 633 at 128; float32
    at 64 tokens 481 -> 462 ms. Other equations, a bias over only some output
    axes, LoRA and quantized layers keep Keras' call.
    """
    k = _flat_einsum(layer.equation)
    kernel_shape = tuple(layer.kernel.shape)
    plain = not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode", None)
    if not k or not plain or (layer.bias is not None and tuple(layer.bias.shape) != kernel_shape[k:]):
        return keras.layers.EinsumDense.call(layer, inputs, training=training)
    inner = math.prod(kernel_shape[:k])
    x = tf.matmul(tf.reshape(inputs, [-1, inner]), tf.reshape(layer.kernel, [inner, -1]))
    if layer.bias is not None:
        x = tf.nn.bias_add(x, tf.reshape(layer.bias, [-1]))
    x = tf.reshape(x, tf.concat([tf.shape(inputs)[: len(inputs.shape) - k], kernel_shape[k:]], axis=0))
    if layer.activation is not None:
        x = layer.activation(x)
    return x


def fast_masked_softmax(layer: keras.layers.MultiHeadAttention, scores, attention_mask=None):
    """`MultiHeadAttention._masked_softmax` with the mask added to the scores instead of selected twice.

    Keras' masked softmax is `where(mask, scores, -1e9)`, softmax, then
    `where(mask, probs, 0)`: two passes over the (batch, heads, T, S) scores
    forward and their two `where`s backward (the largest tensors of a BERT
    layer at T >= 40, and bf16 `SelectV2` is an element-by-element Eigen loop
    on CPU). Here the mask becomes a (batch, T or 1, S) bias of 0 / -1e9 that is
    broadcast-added before the softmax, whose gradient is the identity. The
    result is the same: exp(-1e9 - max) is exactly 0, so masked keys already
    get probability 0. Only a query row whose keys are *all* masked differs
    (Keras zeroes it; softmax would spread it evenly): no text from
    TextPreprocessor has one ([CLS] is always a real token), so that case is
    checked on the small mask and the second `where` runs only then.

    Other shapes (a mask of another rank, attention over several axes) take
    Keras' own method.
    """
    if attention_mask is None or len(scores.shape) != 4 or len(attention_mask.shape) != 3 \
            or tuple(layer._attention_axes) != (1,):
        return type(layer)._masked_softmax(layer, scores, attention_mask)
    keep = attention_mask if attention_mask.dtype == tf.bool else attention_mask > tf.cast(0.5, attention_mask.dtype)
    keep = keep[:, None]  # broadcast over the heads axis
    negative = -3e4 if scores.dtype == tf.float16 else -1e9  # keras.layers.Softmax's values
    probs = tf.nn.softmax(scores + tf.where(keep, tf.zeros([], scores.dtype), tf.constant(negative, scores.dtype)))
    every_row_has_a_key = tf.reduce_all(tf.reduce_any(keep, axis=-1))
    return tf.cond(every_row_has_a_key, lambda: probs, lambda: tf.where(keep, probs, tf.zeros([], probs.dtype)))


FAST_CALLS = {
    keras.layers.Dropout: fast_dropout_call,
    keras.layers.Dense: fast_dense_call,
    keras.layers.EinsumDense: fast_einsum_dense_call,
}


def use_fast_layers(model: keras.Layer) -> keras.Layer:
    """Give every plain Dropout / Dense / EinsumDense inside `model` the faster `call` above, and every
    MultiHeadAttention `fast_masked_softmax`, in place; return `model`.

    keras-hub builds these layers itself, so they are switched after the fact,
    per instance: the layers keep their class, config and weights, so saving
    and loading (`.keras` files key weights by class name, presets store
    hyperparameters) see stock Keras layers, and a reloaded model runs Keras'
    own kernels until this is called on it again.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if type(layer) in FAST_CALLS:
            layer.call = types.MethodType(FAST_CALLS[type(layer)], layer)
        elif isinstance(layer, keras.layers.MultiHeadAttention):  # keras-hub's CachedMultiHeadAttention too
            layer._masked_softmax = types.MethodType(fast_masked_softmax, layer)
    return model


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
    return use_fast_layers(keras.Model(inputs, outputs, name="tfbert_classifier"))


def probabilities_per_label(outputs):
    """(batch, 1) sigmoid or (batch, n) softmax -> (batch, n_labels) probabilities."""
    if outputs.shape[-1] == 1:
        return ops.concatenate([1.0 - outputs, outputs], axis=-1)
    return outputs
