"""Every reach into Keras, keras-hub and TensorFlow internals, behind one version check.

tfbert's speed comes from replacing a few stock code paths with faster,
numerically equivalent ones, and two Keras bugs need working around. All of
that touches private attributes, so it lives here and nowhere else, and only
runs on the versions it was written and tested against (`SUPPORTED`). On any
other version `supported()` warns once and every entry point below falls back
to the stock behaviour: plain Keras layers, Keras' own AdamW update, per-read
casts in the serving graph.

Nothing here runs as a side effect of building or exporting a model: the
caller asks for each fast path by name.

- `use_fast_layers(model)`: faster `call` for Dropout, Dense, EinsumDense and
  MultiHeadAttention's masked softmax, per instance (docs/design.md).
- `patch_multi_worker_fit()`: `model.fit` under MultiWorkerMirroredStrategy
  (keras-team/keras#20585, tensorflow/tensorflow#72388).
- `FastAdamW`: AdamW with cross-replica clipping, a fused update and
  layer-wise rates (used by `tfbert.optimization.build_optimizer`).
- `half_precision_copies` / `reading` / `with_constant_weights`: bf16 weights cast once for serving.
- `resume_early_stopping`: EarlyStopping's undocumented state on resume.
- keras-hub naming: the pooler layer, the transformer layer paths.
- `pretokenize`, `wordpiece_learner`: keras-hub's and tf-text's private helpers.

Figures that justify each path are in docs/performance.md, with the bench
that reproduces them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import re
import types

import keras
import keras_hub
import tensorflow as tf
from keras import ops, tree

logger = logging.getLogger(__name__)

# Package -> version prefix every path below was tested on.
SUPPORTED = {"keras": "3.15.", "keras_hub": "0.32."}


def unsupported_versions(versions: dict[str, str]) -> dict[str, str]:
    """The entries of `versions` (package -> version) outside `SUPPORTED`."""
    return {name: version for name, version in versions.items() if not version.startswith(SUPPORTED[name])}


@functools.cache
def supported() -> bool:
    """Whether the installed Keras and keras-hub are the tested ones; warns once when not."""
    outside = unsupported_versions({"keras": keras.__version__, "keras_hub": keras_hub.__version__})
    if outside:
        found = ", ".join(f"{name} {version}" for name, version in outside.items())
        tested = ", ".join(f"{name} {prefix}x" for name, prefix in SUPPORTED.items())
        logger.warning("tfbert's fast paths were tested on %s; found %s, so the stock Keras layers, optimizer "
                       "update and serving casts are used (correct, slower). Install the tested versions "
                       "(pip install -e .) for full speed.", tested, found)
    return not outside


# === keras-hub names ===

POOLER_LAYER = "pooled_dense"  # BertBackbone's [CLS] pooler
_TRANSFORMER_LAYER = re.compile(r"(?:^|/)transformer_layer_(\d+)/")
_EMBEDDING_LAYERS = ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm")


def freeze_pooler(backbone: keras.Model) -> None:
    """Keep BertBackbone's [CLS] pooler out of training: tfbert's heads do not use it, so it gets no gradient."""
    if any(layer.name == POOLER_LAYER for layer in backbone.layers):
        backbone.get_layer(POOLER_LAYER).trainable = False


def has_transformer_layers(paths: list[str]) -> bool:
    return any(_TRANSFORMER_LAYER.search(path) for path in paths)


def layer_depths(paths: list[str]) -> list[int]:
    """How many decay factors each variable's learning rate gets under layer-wise decay.

    With L transformer layers: `transformer_layer_<i>` gets L - i (the top
    layer 1), the embeddings (and their LayerNorm) L + 1, everything else 0
    (the head, the pooler). Paths are Keras variable paths.
    """
    layers = [_TRANSFORMER_LAYER.search(path) for path in paths]
    count = 1 + max((int(m.group(1)) for m in layers if m), default=-1)
    depths = []
    for path, layer in zip(paths, layers):
        if layer:
            depths.append(count - int(layer.group(1)))
        elif any(part in _EMBEDDING_LAYERS for part in path.split("/")):
            depths.append(count + 1)
        else:
            depths.append(0)
    return depths


def _is_gelu_tanh(activation) -> bool:
    # keras-hub's BERT layers take `keras_hub...keras_utils.gelu_approximate`, matched by name (private module).
    return getattr(activation, "__name__", "") == "gelu_approximate"


def pretokenize(text, **kwargs):
    """keras-hub's BertTokenizer pre-tokenization (private; pinned by `SUPPORTED`)."""
    from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize as _pretokenize

    return _pretokenize(text, **kwargs)


def wordpiece_learner():
    """tensorflow-text's WordPiece learner, the one keras-hub's `compute_word_piece_vocabulary` calls."""
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

    return wordpiece_tokenizer_learner_lib


# === Fast layer calls (see docs/design.md "Fast layers") ===

def fast_dropout_call(layer: keras.layers.Dropout, inputs, training=False):
    """`keras.layers.Dropout.call` drawing one 16-bit random number per element instead of one float.

    The random numbers are most of dropout's cost. An element is kept when
    its 16 bits are >= round(rate * 65536): the drop probability is `rate`
    to within 2^-17. Kept elements are scaled by 1 / (1 - rate) as in Keras;
    `noise_shape` and rates within 2^-17 of 1 use Keras' call.
    """
    threshold = round(layer.rate * 65536)
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


def _compute_dtype(x):
    return tf.cast(x, tf.float32) if x.dtype in (tf.bfloat16, tf.float16) else x


# XLA fuses each into one loop over the tensor, where TensorFlow's graph runs ~8 element-wise ops each way.
# reduce_retracing: one trace per dtype after the first shape change; XLA compiles per concrete shape.
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
    """BERT's tanh-approximate GELU (`keras.activations.gelu(x, approximate=True)`), one fused kernel each way."""
    return _gelu_tanh_forward(x), lambda dy: _gelu_tanh_backward(x, dy)


def bias_add(x, bias):
    """`tf.nn.bias_add` whose bias gradient sums the rows by a matmul with a row of ones (training only).

    TensorFlow's BiasAddGrad sums a bfloat16 gradient in bfloat16: over
    the ~2,000 rows of a training batch its error is tens of bf16 steps,
    where the matmul (oneDNN accumulates in float32, then rounds once) is
    within one, and at a BERT FFN's (1920, 1536) it takes half the time.
    In inference keep `tf.nn.bias_add`: this op's gradient wrapper would
    hide MatMul + BiasAdd + activation from grappler's fusion.
    """
    return _bias_add_by_matmul(x, tf.convert_to_tensor(bias))  # a variable read here, not inside the gradient's op


@tf.custom_gradient
def _bias_add_by_matmul(x, bias):
    def grad(dy):
        rows = tf.reshape(dy, [-1, tf.shape(dy)[-1]])
        return dy, tf.reshape(tf.matmul(tf.ones([1, tf.shape(rows)[0]], dy.dtype), rows), [-1])

    return tf.nn.bias_add(x, bias), grad


def _is_plain(layer) -> bool:
    """No LoRA and no quantization: the layer is its kernel and bias (Keras' call handles the rest)."""
    return not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode", None)


def fast_dense_call(layer: keras.layers.Dense, inputs, training=None):
    """`keras.layers.Dense.call` with `bias_add` and the fused GELU in training, a 2-D MatMul in inference.

    In inference, Keras' Dense on a 3-D input is a `tensordot` whose reshape
    hides MatMul + BiasAdd + activation from grappler's remapper; flattening
    first lets it fuse them into one oneDNN kernel. In training the remapper
    cannot fuse (the backward pass needs the pre-activation).
    """
    if training and _is_plain(layer):
        x = ops.matmul(inputs, layer.kernel)
        if layer.bias is not None:
            x = bias_add(x, layer.bias)
        if _is_gelu_tanh(layer.activation):
            return fused_gelu_tanh(x)
        return x if layer.activation is None else layer.activation(x)
    if training or len(inputs.shape) < 3:
        return keras.layers.Dense.call(layer, inputs, training=training)
    x = tf.matmul(tf.reshape(inputs, [-1, inputs.shape[-1]]), layer.kernel)
    if layer.bias is not None:
        x = tf.nn.bias_add(x, layer.bias)
    if layer.activation is not None:
        x = layer.activation(x)
    return tf.reshape(x, tf.concat([tf.shape(inputs)[:-1], [layer.units]], axis=0))


def flat_einsum(equation: str) -> int:
    """How many trailing input axes `equation` contracts when it is a matmul in disguise; 0 when not.

    A matmul in disguise: the input's last k axes are the kernel's first k,
    and the output is the input's other axes followed by the kernel's others
    ("abc,cde->abde": k = 1; "abcd,cde->abe": k = 2), as in
    MultiHeadAttention's query/key/value and output projections.
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

    With a static sequence length Keras runs the projections as a
    BatchMatMul against a kernel broadcast over the batch, whose kernel
    gradient is `batch` separate products summed afterwards. Flattening the
    input makes it one GEMM. Other equations, partial biases, LoRA and
    quantized layers keep Keras' call.
    """
    k = flat_einsum(layer.equation)
    kernel_shape = tuple(layer.kernel.shape)
    if not k or not _is_plain(layer) or (layer.bias is not None and tuple(layer.bias.shape) != kernel_shape[k:]):
        return keras.layers.EinsumDense.call(layer, inputs, training=training)
    inner = math.prod(kernel_shape[:k])
    x = tf.matmul(tf.reshape(inputs, [-1, inner]), tf.reshape(layer.kernel, [inner, -1]))
    if layer.bias is not None:
        x = (bias_add if training else tf.nn.bias_add)(x, tf.reshape(layer.bias, [-1]))
    x = tf.reshape(x, tf.concat([tf.shape(inputs)[: len(inputs.shape) - k], kernel_shape[k:]], axis=0))
    if layer.activation is not None:
        x = layer.activation(x)
    return x


def fast_masked_softmax(layer: keras.layers.MultiHeadAttention, scores, attention_mask=None):
    """`MultiHeadAttention._masked_softmax` with the mask added to the scores instead of selected twice.

    Keras selects with `where` before and after the softmax: two passes over
    the (batch, heads, T, S) scores each way. Here the mask is a 0 / -1e9
    bias broadcast-added before the softmax; exp(-1e9 - max) is exactly 0,
    so the result is the same. Only a query row whose keys are all masked
    differs (Keras zeroes it), so that case is checked on the small mask and
    the second `where` runs only then; when nothing is masked (a single text
    in serving) the bias is skipped too, ~0.1 ms per layer for one text.
    Other mask shapes use Keras' method.
    """
    if attention_mask is None or len(scores.shape) != 4 or len(attention_mask.shape) != 3 \
            or tuple(layer._attention_axes) != (1,):
        return type(layer)._masked_softmax(layer, scores, attention_mask)
    keep = attention_mask if attention_mask.dtype == tf.bool else attention_mask > tf.cast(0.5, attention_mask.dtype)
    keep = keep[:, None]  # broadcast over the heads axis

    def masked():
        negative = -3e4 if scores.dtype == tf.float16 else -1e9  # keras.layers.Softmax's values
        probs = tf.nn.softmax(scores + tf.where(keep, tf.zeros([], scores.dtype), tf.constant(negative, scores.dtype)))
        every_row_has_a_key = tf.reduce_all(tf.reduce_any(keep, axis=-1))
        return tf.cond(every_row_has_a_key, lambda: probs, lambda: tf.where(keep, probs, tf.zeros([], probs.dtype)))

    # Nothing masked (one text, or a chunk of equal lengths): no bias to add.
    return tf.cond(tf.reduce_all(keep), lambda: tf.nn.softmax(scores), masked)


_SAME_WIDTH_INT = {tf.bfloat16: tf.int16, tf.float16: tf.int16}


def swap_middle_axes(x):
    """`tf.transpose(x, [0, 2, 1, 3])`: (batch, length, heads, depth) <-> (batch, heads, length, depth).

    A 16-bit tensor moves as int16, the same bits: oneDNN's bf16 transpose
    costs ~50 us on one text's (1, 60, 12, 32), where Eigen's integer copy
    takes ~2 us, and ~30% more than it at a training batch's
    (32, 64, 12, 32). `python bench/profile_step.py --serving` shows the
    transposes' share. Float32 keeps oneDNN's, which is the faster one
    at training sizes. The gradient is the same swap.
    """
    if x.dtype not in _SAME_WIDTH_INT:
        return tf.transpose(x, [0, 2, 1, 3])
    return _swap_as_integers(x)


@tf.custom_gradient
def _swap_as_integers(x):
    def swap(t):
        return tf.bitcast(tf.transpose(tf.bitcast(t, _SAME_WIDTH_INT[t.dtype]), [0, 2, 1, 3]), t.dtype)

    return swap(x), swap


_ATTENTION_SIGNATURE = inspect.signature(keras.layers.MultiHeadAttention._compute_attention)


def fast_compute_attention(layer: keras.layers.MultiHeadAttention, query, key, value, *args, **kwargs):
    """`MultiHeadAttention._compute_attention` as two plain matmuls between explicit head transposes.

    Keras' `einsum`s lower to the same transposes and BatchMatMuls, but
    through oneDNN's transpose (see `swap_middle_axes`). The scaling, mask,
    softmax (`layer._masked_softmax`) and dropout are Keras'. Causal masks,
    flash attention, other attention axes and the dropout-free path (Keras'
    `dot_product_attention`) keep Keras' method. `args` / `kwargs`: the
    rest of Keras' arguments, bound to its own signature.
    """
    options = _ATTENTION_SIGNATURE.bind(layer, query, key, value, *args, **kwargs)
    options.apply_defaults()
    options = options.arguments
    standard = (len(query.shape) == 4 and tuple(layer._attention_axes) == (1,)
                and not options.get("use_causal_mask") and not layer._flash_attention
                and (layer._dropout > 0.0 or options.get("return_attention_scores")))
    if not standard:
        return type(layer)._compute_attention(layer, query, key, value, *args, **kwargs)
    attention_mask, training = options["attention_mask"], options["training"]
    query = swap_middle_axes(query * tf.cast(layer._inverse_sqrt_key_dim, query.dtype))
    scores = tf.matmul(query, swap_middle_axes(key), transpose_b=True)  # (batch, heads, T, S)
    scores = layer._masked_softmax(scores, attention_mask)
    dropped = layer._dropout_layer(scores, training=training) if layer._dropout > 0.0 else scores
    output = swap_middle_axes(tf.matmul(dropped, swap_middle_axes(value)))  # (batch, T, heads, depth)
    return output, scores


FAST_CALLS = {
    keras.layers.Dropout: fast_dropout_call,
    keras.layers.Dense: fast_dense_call,
    keras.layers.EinsumDense: fast_einsum_dense_call,
}


def use_fast_layers(model: keras.Layer) -> keras.Layer:
    """Switch every plain Dropout / Dense / EinsumDense inside `model` to the calls above, in place; return it.

    MultiHeadAttention layers (keras-hub's subclasses too) get
    `fast_masked_softmax` and `fast_compute_attention`. Per instance: the layers keep their class, config
    and weights, so saved files hold stock Keras layers, and a reloaded
    model runs Keras' kernels until this is called on it again. On an
    unsupported Keras (`supported()`), nothing changes.
    """
    if not supported():
        return model
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if type(layer) in FAST_CALLS:
            layer.call = types.MethodType(FAST_CALLS[type(layer)], layer)
        elif isinstance(layer, keras.layers.MultiHeadAttention):
            layer._masked_softmax = types.MethodType(fast_masked_softmax, layer)
            layer._compute_attention = types.MethodType(fast_compute_attention, layer)
    return model


# === Multi-worker fit (keras-team/keras#20585, tensorflow/tensorflow#72388) ===

def is_multi_worker(strategy) -> bool:
    """True under a MultiWorkerMirroredStrategy whose cluster has more than one task."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def patch_multi_worker_fit() -> bool:
    """Make `model.fit` work under MultiWorkerMirroredStrategy; returns whether the fix is in place.

    Two Keras internals fail there:
    1. `TensorFlowTrainer._maybe_symbolic_build` reduces the first batch, a
       PerReplica value, eagerly; the build only needs shapes, so it builds
       from the first local replica's batch.
    2. `reduce_per_replica` reduces scalar loss/metric values with axis=0
       ("Invalid reduction dimension 0"); `axis=None` is right for them.
    Idempotent; tests/test_distribute.py trains 2 workers and fails when a
    Keras upgrade breaks this.
    """
    if not supported():
        return False
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_tfbert_multi_worker_fix", False):
        return True
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not is_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            data_batch = tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
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
    return True


# === Serving: half-precision weights cast once ===

def half_precision_copies(model: keras.Model) -> list[tuple[keras.Variable, tf.Variable]]:
    """`(weight, 16-bit copy)` for every weight a mixed-precision layer of `model` casts on each read.

    Under `mixed_bfloat16` Keras keeps float32 weights and casts each one
    every time a layer reads it; in the serving graph those reads sit inside
    the per-chunk loop (`tfbert.export.run_by_length`). The export stores
    each such weight once more, already cast (2 bytes per parameter), and
    the serving functions read the copies (`reading`): the same bits.
    Copied: autocast weights owned by one layer that computes in 16 bits.
    LayerNorm's gamma/beta, float32 layers and shared weights keep the
    per-read path. A float32 model, or an unsupported Keras, gets none.
    """
    if not supported():
        return []
    owners = collections.defaultdict(list)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for weight in [*layer._trainable_variables, *layer._non_trainable_variables]:
            owners[id(weight)].append((layer, weight))
    copies = []
    for (layer, weight), *others in owners.values():
        if (not others and layer.autocast and weight._autocast and keras.backend.is_float_dtype(weight.dtype)
                and keras.backend.is_float_dtype(layer.compute_dtype) and layer.compute_dtype != weight.dtype):
            copy = tf.Variable(tf.cast(weight.value, layer.compute_dtype), trainable=False,
                               name=weight.name + "_" + layer.compute_dtype)
            copies.append((weight, copy))
    return copies


@contextlib.contextmanager
def reading(copies: list[tuple[keras.Variable, tf.Variable]]):
    """Within a traced function: layers read each weight's copy (read once, outside any loop).

    Keras' `StatelessScope` substitutes variable values; its constructor
    would convert them back to float32, so the copies go into its mapping
    directly. A layer's autocast of a value already in its compute dtype is
    a no-op. Inference assigns nothing, so nothing is dropped.
    """
    if not copies:
        yield
        return
    scope = keras.StatelessScope(initialize_variables=False)
    with scope:
        for weight, copy in copies:
            scope.state_mapping[id(weight)] = copy.read_value()
        yield


def with_constant_weights(function):
    """A concrete function's copy with every variable it reads replaced by a constant of its current value."""
    from tensorflow.python.framework import convert_to_constants  # no public equivalent in TF 2

    return convert_to_constants.convert_variables_to_constants_v2(function)


# === Resume: EarlyStopping's state ===

def resume_early_stopping(callback: keras.callbacks.EarlyStopping, best_value: float, best_epoch: int,
                          wait: int, best_weights: list | None) -> None:
    """Seed a fresh EarlyStopping with the state of an interrupted run (undocumented attributes)."""
    callback.best, callback.best_epoch, callback.wait = best_value, best_epoch, wait
    if best_weights is not None:
        callback.best_weights = best_weights


# === Optimizer: AdamW with cross-replica clipping and a fused update ===

@keras.saving.register_keras_serializable(package="tfbert")
class AdamW(keras.optimizers.AdamW):
    """AdamW whose global-norm clipping sees the all-reduced gradient, with a fused update.

    Keras clips `global_clipnorm` inside each replica, before the
    cross-replica sum, so N replicas do not train like one device. Here the
    gradients are summed first, then clipped once (on one device: exactly
    Keras' `global_clipnorm`). The update is TensorFlow's fused
    `ResourceApplyAdam` (Keras' formula, one pass instead of nine), with an
    embedding's IndexedSlices gradient made dense first: Keras squares the
    slices one by one, so a token seen twice got g1^2 + g2^2 in its second
    moment instead of (g1 + g2)^2.

    Args:
        clip_global_norm: float or None. Clip the summed gradient to this global norm.
        layer_lr_decay: float in (0, 1]. A variable's rate is multiplied by
            `layer_lr_decay ** depth` (`layer_depths`); 1.0 is one rate for all.
        **kwargs: passed to keras.optimizers.AdamW (without clipnorm/global_clipnorm).
    """

    def __init__(self, clip_global_norm: float | None = 1.0, layer_lr_decay: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < layer_lr_decay <= 1.0:
            raise ValueError(f"layer_lr_decay must be in (0, 1], got {layer_lr_decay}; 1.0 turns it off.")
        if layer_lr_decay != 1.0 and self.amsgrad:
            raise ValueError("layer_lr_decay is not implemented with amsgrad=True; use one or the other.")
        self.clip_global_norm = clip_global_norm
        self.layer_lr_decay = layer_lr_decay
        self._lr_multipliers: list[float] = []

    def build(self, variables):
        super().build(variables)
        # In the order of self._trainable_variables: update_step finds a multiplier by the moments' index.
        paths = [v.path for v in variables]
        if self.layer_lr_decay != 1.0 and not has_transformer_layers(paths):
            raise ValueError(
                f"layer_lr_decay {self.layer_lr_decay} needs keras-hub BERT variables (transformer_layer_<i>/...), "
                "and none of the model's variables is named so; leave --layer-lr-decay at 1.0 for this model."
            )
        self._lr_multipliers = [self.layer_lr_decay ** depth for depth in layer_depths(paths)]
        # Rows of each embedding table that ever had a gradient (`_sparse_adam`); optimizer
        # variables, so backups and checkpoints carry them with the moments.
        self._touched_rows = [
            self.add_variable((v.shape[0],), name=f"{v.name}_touched_rows") if _is_embedding_table(v) else None
            for v in variables
        ]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.clip_global_norm is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        reduced = self._all_reduce_sum_gradients(list(zip(grads, variables)))  # no-op on one device
        clipped, _ = tf.clip_by_global_norm([_rows_summed(g) for g, _ in reduced], self.clip_global_norm)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy, list(zip(clipped, variables)), learning_rate
        )

    def _apply_weight_decay(self, variables):
        # Folded into update_step: one scalar multiply per variable instead of two tensor multiplies.
        if self.amsgrad:
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        """Decoupled weight decay, then the fused Adam update (tests/test_keras_compat.py checks it against Keras')."""
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = tf.as_dtype(variable.dtype)
        index = self._get_variable_index(variable)
        lr = tf.cast(learning_rate, dtype)
        if self.layer_lr_decay != 1.0:
            lr = lr * tf.cast(self._lr_multipliers[index], dtype)
        tf_variable = _tf_variable(variable)
        if self.weight_decay and self._use_weight_decay(variable):
            tf_variable.assign_sub(tf_variable * (lr * tf.cast(self.weight_decay, dtype)))
        adam = _AdamStep(_tf_variable(self._momentums[index]), _tf_variable(self._velocities[index]), lr,
                         tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype), tf.cast(self.epsilon, dtype),
                         tf.cast(self.iterations + 1, dtype))
        touched = self._touched_rows[index]
        if touched is not None:
            touched = _tf_variable(touched)
            if not isinstance(gradient, tf.IndexedSlices):
                touched.assign(tf.ones_like(touched))  # a dense gradient reaches every row
            elif not _in_xla_context():
                return _sparse_adam(tf_variable, touched, tf.cast(gradient, dtype), adam)
            else:
                # Under XLA the touched rows' count is not a compile-time shape: keep the set exact
                # (a later run without XLA relies on it) and update every row.
                _mark_rows(touched, gradient.indices)
        tf.raw_ops.ResourceApplyAdam(
            var=tf_variable.handle, m=adam.m.handle, v=adam.v.handle,
            beta1_power=tf.pow(adam.beta_1, adam.step), beta2_power=tf.pow(adam.beta_2, adam.step),
            lr=lr, beta1=adam.beta_1, beta2=adam.beta_2, epsilon=adam.epsilon,
            grad=tf.convert_to_tensor(tf.cast(gradient, dtype)),  # IndexedSlices -> dense, repeated rows summed
        )

    def get_config(self):
        return {**super().get_config(), "clip_global_norm": self.clip_global_norm, "layer_lr_decay": self.layer_lr_decay}


@dataclasses.dataclass(frozen=True)
class _AdamStep:
    """One variable's Adam moments and this step's scalars."""

    m: tf.Variable
    v: tf.Variable
    lr: tf.Tensor
    beta_1: tf.Tensor
    beta_2: tf.Tensor
    epsilon: tf.Tensor
    step: tf.Tensor


def _is_embedding_table(variable) -> bool:
    """Keras' Embedding, and keras-hub's token/position embeddings, name their table `embeddings`."""
    return len(variable.shape) == 2 and variable.path.rsplit("/", 1)[-1] == "embeddings"


def _sparse_adam(variable, touched, gradient, adam: _AdamStep):
    """`ResourceApplyAdam` with `gradient` made dense, computed on the rows it can change only.

    A row that never had a gradient has m = v = 0, and Adam's step on it
    with g = 0 is exactly 0, so only the rows ever touched (kept in
    `touched`) need the update. The arithmetic is the kernel's, op for op:
    the result is bit-identical. Weight decay stays dense (the caller's).
    """
    indices = _mark_rows(touched, gradient.indices)
    rows = tf.reshape(tf.where(touched > 0), [-1])  # sorted
    shape = tf.concat([tf.size(rows, out_type=tf.int64)[None], tf.shape(gradient.values, out_type=tf.int64)[1:]], 0)
    grad = tf.scatter_nd(tf.searchsorted(rows, indices, out_type=tf.int64)[:, None], gradient.values, shape)
    m_rows = tf.gather(adam.m, rows)
    v_rows = tf.gather(adam.v, rows)
    # As tensorflow/core/kernels/training_ops.cc computes ApplyAdam, in the same order.
    m_rows = m_rows + (grad - m_rows) * (1 - adam.beta_1)
    v_rows = v_rows + (tf.square(grad) - v_rows) * (1 - adam.beta_2)
    alpha = adam.lr * tf.sqrt(1 - tf.pow(adam.beta_2, adam.step)) / (1 - tf.pow(adam.beta_1, adam.step))
    var_rows = tf.gather(variable, rows) - (m_rows * alpha) / (tf.sqrt(v_rows) + adam.epsilon)
    adam.m.scatter_update(tf.IndexedSlices(m_rows, rows))
    adam.v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_update(tf.IndexedSlices(var_rows, rows))
    # A sparse op leaves the table in copy-on-read mode: every later dense read (the next forward pass's
    # lookup, the weight decay) would copy all of it first. The next sparse op turns the mode back on
    # and copies only if a dense read still holds the buffer, so turning it off here is safe.
    tf.raw_ops.DisableCopyOnRead(resource=variable.handle)


def _rows_summed(gradient):
    """`gradient` with each row of an IndexedSlices once (repeated rows summed); dense gradients unchanged.

    `tf.clip_by_global_norm` takes the norm of the slices as they are, so a
    token seen twice counted |g1|^2 + |g2|^2 instead of |g1 + g2|^2 and the
    global norm read low. Summing first gives the norm PyTorch's
    `clip_grad_norm_` sees.
    """
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, position = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


def _mark_rows(touched, indices):
    """Add a gradient's rows to the touched set; returns the indices as int64."""
    indices = tf.cast(indices, tf.int64)
    touched.scatter_update(tf.IndexedSlices(tf.ones_like(indices, touched.dtype), indices))
    return indices


def _in_xla_context() -> bool:
    """Whether the graph being traced compiles with XLA (`jit_compile=True`)."""
    from tensorflow.python.ops import control_flow_util  # no public equivalent

    return not tf.executing_eagerly() and control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _tf_variable(variable):
    """The tf.Variable behind a Keras variable (inside `strategy.extended.update`, a mirrored one's local copy)."""
    return variable.value if isinstance(variable, keras.Variable) else variable
