import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tfbert import keras_compat
from tfbert.config import ModelConfig
from tfbert.keras_compat import (fast_compute_attention, fast_dense_call, fast_dropout_call, fast_einsum_dense_call,
                                 fast_masked_softmax, flat_einsum, fused_gelu_tanh, swap_middle_axes, use_fast_layers)
from tfbert.model import build_backbone, build_classifier


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("shape", [(64, 12, 33, 33), (1001,)])  # an odd element count: half a 32-bit word unused
def test_fast_dropout_rate_and_scale(rate, shape):
    layer = use_fast_layers(keras.layers.Dropout(rate, seed=1))
    x = np.ones(shape, np.float32)
    y = np.asarray(layer(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)  # survivors scaled as in Keras
    n = x.size
    assert abs((1 - kept.mean()) - rate) < 5 * np.sqrt(rate * (1 - rate) / n)  # drop fraction: binomial, 5 sigma
    again = np.asarray(layer(x, training=True)) != 0
    assert (again != kept).any()  # a fresh mask per call
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_fast_dropout_mask_is_unbiased_per_position():
    """No position is favoured: over many calls each element is dropped at the rate (bit layout check)."""
    layer = use_fast_layers(keras.layers.Dropout(0.25, seed=3))
    x = np.ones((8, 7), np.float32)
    dropped = np.mean([np.asarray(layer(x, training=True)) == 0 for _ in range(400)], axis=0)
    assert np.all(np.abs(dropped - 0.25) < 5 * np.sqrt(0.25 * 0.75 / 400))


def test_fast_dropout_neighbours_are_independent():
    """Two elements cut from one 32-bit word are dropped together at rate^2, not at rate (shared bits)."""
    layer = use_fast_layers(keras.layers.Dropout(0.3, seed=5))
    dropped = np.asarray(layer(np.ones((200_000,), np.float32), training=True)) == 0
    both = np.mean(dropped[0::2] & dropped[1::2])
    assert abs(both - 0.09) < 5 * np.sqrt(0.09 * 0.91 / 100_000)


@pytest.mark.parametrize("rate", [1.0, 1 - 2**-20])
def test_fast_dropout_rate_near_one_drops_everything(rate):
    layer = use_fast_layers(keras.layers.Dropout(rate, seed=0))
    assert np.count_nonzero(np.asarray(layer(np.ones((1000,), np.float32), training=True))) < 5


def test_fast_dropout_bfloat16_gradient_is_the_mask():
    layer = use_fast_layers(keras.layers.Dropout(0.2, seed=0, dtype="mixed_bfloat16"))
    x = tf.ones((4, 50))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(tf.cast(y, tf.float32))
    assert y.dtype == tf.bfloat16
    # d(sum)/dx is the scaled mask, which for x = 1 is the output itself.
    np.testing.assert_allclose(np.asarray(tape.gradient(total, x)), np.asarray(tf.cast(y, tf.float32)), rtol=1e-2)


@pytest.mark.parametrize("activation", ["gelu", "relu", None])
def test_fast_dense_matches_keras_dense(activation):
    from keras_hub.src.utils.keras_utils import gelu_approximate  # BERT's, the one fast_dense_call fuses

    keras.utils.set_random_seed(0)
    stock = keras.layers.Dense(24, activation=gelu_approximate if activation == "gelu" else activation)
    x = np.random.default_rng(0).standard_normal((3, 5, 16)).astype(np.float32) * 3
    expected = np.asarray(stock(x))
    use_fast_layers(stock)
    assert stock.call.__func__ is fast_dense_call
    for training in (False, True):
        np.testing.assert_allclose(np.asarray(stock(x, training=training)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stock(x[:, 0])), expected[:, 0], rtol=1e-5, atol=1e-6)  # rank 2


@pytest.mark.parametrize("layer_type", ["dense", "einsum_dense"])
def test_bf16_bias_gradient_is_summed_in_float32(layer_type):
    """Mixed precision: the bias gradient over 2,000 rows is within one bf16 rounding of the exact sum."""
    keras.utils.set_random_seed(0)
    if layer_type == "dense":
        layer = keras.layers.Dense(48, dtype="mixed_bfloat16")
    else:
        layer = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 48), bias_axes="d", dtype="mixed_bfloat16")
    use_fast_layers(layer)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((40, 50, 16)), tf.float32)
    upstream = tf.cast(tf.constant(rng.standard_normal((40, 50, 48)), tf.bfloat16), tf.float32)  # exact in bf16
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(layer(x, training=True), tf.float32) * upstream)
    gradient = np.asarray(tape.gradient(loss, layer.bias), np.float64)
    exact = np.asarray(upstream, np.float64).sum(axis=(0, 1))
    assert np.all(np.abs(gradient - exact) <= np.abs(exact) * 2.0 ** -8 + 1e-6)


@pytest.mark.parametrize("equation,k", [
    ("abc,cde->abde", 1),  # MultiHeadAttention's query/key/value projections
    ("abcd,cde->abe", 2),  # its output projection
    ("ab,bc->ac", 1),
    ("abc,dce->abde", 0),  # the contracted axis is not the kernel's first
    ("abc,cde->adbe", 0),  # output axes reordered
    ("abcd,aecd->acbe", 0),  # attention scores: no kernel
    ("ab,b->a", 1),
])
def test_flat_einsum_recognises_matmuls_in_disguise(equation, k):
    assert flat_einsum(equation) == k


@pytest.mark.parametrize("equation,output_shape,bias_axes,flat", [
    ("abc,cde->abde", (None, 3, 4), "de", True),
    ("abcd,cde->abe", (None, 6), "e", True),
    ("abc,cde->abde", (None, 3, 4), None, True),
    ("abc,cde->abde", (None, 3, 4), "e", False),  # bias over some output axes only: Keras' call
    ("abc,dce->abde", (None, 3, 4), "de", False),  # not a matmul in disguise: Keras' call
])
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
def test_fast_einsum_dense_matches_keras_and_its_gradients(equation, output_shape, bias_axes, flat, dtype, tolerance):
    keras.utils.set_random_seed(0)
    stock = keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, dtype=dtype,
                                     bias_initializer="random_normal")
    shape = (2, 5, 12) if len(equation.split(",")[0]) == 3 else (2, 5, 3, 4)
    x = tf.constant(np.random.default_rng(0).standard_normal(shape), tf.float32)
    fast = keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, dtype=dtype)
    fast.build(x.shape)
    stock.build(x.shape)
    fast.set_weights(stock.get_weights())
    use_fast_layers(fast)
    assert fast.call.__func__ is fast_einsum_dense_call

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            weights = tf.cast(tf.reshape(tf.range(tf.size(y)) % 7, tf.shape(y)), tf.float32)  # not a plain sum
            total = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        return [y, *tape.gradient(total, [x, *layer.trainable_variables])]

    ours, theirs = run(fast), run(stock)
    assert ours[0].dtype == theirs[0].dtype and ours[0].shape == theirs[0].shape
    for a, b in zip(ours, theirs):
        a, b = np.asarray(tf.cast(a, tf.float32)), np.asarray(tf.cast(b, tf.float32))
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * np.abs(b).max())
    if flat:  # the kernel gradient is one MatMul, not a batch of them summed
        graph = tf.function(lambda: run(fast)).get_concrete_function().graph
        assert not any(op.type == "BatchMatMulV2" for op in graph.get_operations())


def _stock_and_fast_attention(dtype, x, mask):
    """Two identical MultiHeadAttention layers (dropout > 0, random biases); the second switched to the fast calls.

    dropout > 0: Keras routes attention without dropout to ops.dot_product_attention, which has no _masked_softmax.
    """
    keras.utils.set_random_seed(0)
    layers = [keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1, dtype=dtype,
                                              bias_initializer="random_normal") for _ in range(2)]
    for layer in layers:
        layer(x, x, attention_mask=mask)
    layers[1].set_weights(layers[0].get_weights())
    use_fast_layers(layers[1])
    return layers


def _output_and_gradients(layer, x, mask, period):
    """The layer's output and the gradients of a fixed weighting of it (by `period`) w.r.t. x and its weights."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, x, attention_mask=mask, training=False)
        weights = tf.cast(tf.reshape(tf.range(tf.size(y)) % period, tf.shape(y)), tf.float32)
        total = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    return [y, *tape.gradient(total, [x, *layer.trainable_variables])]


@pytest.mark.parametrize("mask_rows", [1, 6])  # keras-hub's (batch, 1, S) padding mask; a full (batch, T, S) mask
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-6), ("mixed_bfloat16", 2e-2)])
def test_fast_masked_softmax_matches_keras_attention_and_its_gradients(mask_rows, dtype, tolerance):
    """Same attention output and gradients as Keras' where-softmax-where, including a text with no real token."""
    x = tf.constant(np.random.default_rng(0).standard_normal((3, 6, 8)) * 3, tf.float32)
    # Row 0: 4 real tokens; row 1: all real; row 2: none (Keras zeroes its attention, so must we).
    mask = np.array([[1, 1, 1, 1, 0, 0], [1] * 6, [0] * 6], np.int32)[:, None, :].repeat(mask_rows, axis=1)
    if mask_rows > 1:
        mask[0, 2, :] = 0  # one query row of text 0 sees no key at all
    layers = _stock_and_fast_attention(dtype, x, mask)
    assert layers[1]._masked_softmax.__func__ is fast_masked_softmax

    def run(layer):
        return _output_and_gradients(layer, x, mask, 5)

    fast, stock = run(layers[1]), run(layers[0])
    f32 = lambda t: np.asarray(tf.cast(t, tf.float32))  # noqa: E731
    # One absolute scale for all: the key bias's gradient is 0 in exact arithmetic (softmax ignores a
    # shift of all scores), so both sides hold only rounding noise there.
    scale = max(np.abs(f32(b)).max() for b in stock)
    for a, b in zip(fast, stock):
        np.testing.assert_allclose(f32(a), f32(b), rtol=tolerance, atol=tolerance * scale)
    # The text with no real token gets Keras' answer: zero attention, so its output is the output bias
    # (rounded to bf16 under mixed precision).
    bias = np.asarray(tf.cast(layers[0].output_dense.bias, tf.float32))
    np.testing.assert_allclose(f32(fast[0])[2], np.broadcast_to(bias, (6, 8)), atol=1e-6 + tolerance * np.abs(bias).max())
    # The common case does no second pass: one SelectV2 fewer per direction than Keras' softmax.
    graphs = [tf.function(lambda layer=layer: run(layer)).get_concrete_function().graph for layer in layers]
    selects = [sum(op.type == "SelectV2" for op in g.get_operations()) for g in graphs]
    assert selects[1] < selects[0]


@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-6), ("float32", 2e-5), ("bfloat16", 2e-2)])
def test_fused_gelu_matches_keras_gelu_and_its_gradient(dtype, tolerance):
    x = tf.cast(tf.linspace(-9.0, 9.0, 1001), dtype)  # both tails and the bend
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = fused_gelu_tanh(x)
        theirs = keras.activations.gelu(x, approximate=True)
        weights = tf.cast(tf.linspace(0.5, 2.0, 1001), tf.float64)
        weighted = [tf.reduce_sum(tf.cast(y, tf.float64) * weights) for y in (ours, theirs)]
    assert ours.dtype == x.dtype
    f64 = lambda t: np.asarray(tf.cast(t, tf.float64))  # noqa: E731
    np.testing.assert_allclose(f64(ours), f64(theirs), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(f64(tape.gradient(weighted[0], x)), f64(tape.gradient(weighted[1], x)),
                               rtol=tolerance, atol=tolerance)


def test_training_call_reaches_the_fused_gelu(tiny_model, monkeypatch):
    """keras-hub calls its dense layers without `training`; Keras' call context must still route training to the fused GELU."""
    calls = []
    real = keras_compat.fused_gelu_tanh
    monkeypatch.setattr(keras_compat, "fused_gelu_tanh", lambda x: calls.append(x.shape) or real(x))
    x = {"token_ids": np.array([[1, 7, 9, 2]], np.int32), "segment_ids": np.zeros((1, 4), np.int32),
         "padding_mask": np.ones((1, 4), np.int32)}
    tiny_model(x, training=False)
    assert calls == []  # inference keeps the grappler-fusable form
    tiny_model(x, training=True)
    assert len(calls) == 2  # one feed-forward layer per encoder layer


def test_classifier_uses_fast_layers_and_reloads(tiny_model, tmp_path):
    """Every Dropout/Dense inside the backbone is switched; the saved model loads and predicts the same."""
    calls = [getattr(layer.call, "__func__", None) for layer in tiny_model._flatten_layers()]
    assert calls.count(fast_dropout_call) == 1 + 2 * 3 + 2  # embeddings, 3 per encoder layer, the head's 2
    assert calls.count(fast_dense_call) == 2 * 2 + 1 + 2  # 2 per encoder layer, the pooler, the head's 2
    assert calls.count(fast_einsum_dense_call) == 4 * 2  # query, key, value, output per encoder layer
    softmaxes = [getattr(layer.__dict__.get("_masked_softmax"), "__func__", None) for layer in tiny_model._flatten_layers()]
    assert softmaxes.count(fast_masked_softmax) == 2  # one attention per encoder layer
    path = str(tmp_path / "m.keras")
    tiny_model.save(path)
    again = keras.saving.load_model(path)
    x = {"token_ids": np.array([[1, 7, 9, 2, 0]], np.int32), "segment_ids": np.zeros((1, 5), np.int32),
         "padding_mask": np.array([[1, 1, 1, 1, 0]], np.int32)}
    np.testing.assert_allclose(np.asarray(again(x, training=False)), np.asarray(tiny_model(x, training=False)), atol=1e-6)


def test_versions_outside_the_tested_range_are_named():
    assert keras_compat.unsupported_versions({"keras": "3.15.1", "keras_hub": "0.32.0"}) == {}
    assert keras_compat.unsupported_versions({"keras": "3.16.0", "keras_hub": "0.32.0"}) == {"keras": "3.16.0"}
    assert keras_compat.unsupported_versions({"keras": "3.1.5", "keras_hub": "0.33.1"}) == {
        "keras": "3.1.5", "keras_hub": "0.33.1"}


def test_the_installed_versions_are_the_tested_ones():
    """CI runs the pinned versions: the fast paths are what the suite tests."""
    assert keras_compat.supported()


@pytest.fixture
def unsupported(monkeypatch):
    monkeypatch.setattr(keras_compat, "supported", lambda: False)


def test_unsupported_versions_keep_the_stock_layers(unsupported, tiny_tokenizer):
    backbone = build_backbone(ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32),
                              tiny_tokenizer.vocabulary_size(), 16)
    model = use_fast_layers(build_classifier(backbone, 1, "sigmoid"))
    assert not any(isinstance(layer.__dict__.get("call"), types.MethodType) for layer in model._flatten_layers())
    assert not any("_masked_softmax" in layer.__dict__ for layer in model._flatten_layers())
    assert keras_compat.half_precision_copies(model) == []
    assert keras_compat.patch_multi_worker_fit() is False


def test_unsupported_versions_use_keras_adamw(unsupported):
    from tfbert.optimization import build_optimizer

    assert type(build_optimizer(1e-3, 10, 0.1, 0.01)) is keras.optimizers.AdamW
    with pytest.raises(ValueError, match="--layer-lr-decay 0.8 needs tfbert's AdamW"):
        build_optimizer(1e-3, 10, 0.1, 0.01, layer_lr_decay=0.8)


def test_the_warning_is_given_once(monkeypatch, caplog):
    keras_compat.supported.cache_clear()
    monkeypatch.setattr(keras_compat.keras, "__version__", "9.0.0")
    try:
        assert not keras_compat.supported() and not keras_compat.supported()
    finally:
        keras_compat.supported.cache_clear()
    warnings = [r for r in caplog.records if "fast paths were tested on" in r.getMessage()]
    assert len(warnings) == 1 and "keras 9.0.0" in warnings[0].getMessage()


@pytest.mark.parametrize("mixed", [False, True])
def test_fast_and_stock_classifiers_agree(tiny_tokenizer, mixed):
    """The same weights give the same outputs and the same training step on both paths (within tolerance)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed else "float32")
    try:
        keras.utils.set_random_seed(1)
        backbone = build_backbone(ModelConfig(num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
                                              dropout=0.0), tiny_tokenizer.vocabulary_size(), 16)
        stock = build_classifier(backbone, 3, "softmax", dropout=0.0)
        fast = keras.models.clone_model(stock)
        fast.set_weights(stock.get_weights())
        use_fast_layers(fast)
        x = {"token_ids": np.array([[1, 7, 9, 2, 0], [1, 8, 2, 0, 0]], np.int32),
             "segment_ids": np.zeros((2, 5), np.int32),
             "padding_mask": np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], np.int32)}
        tolerance = 2e-2 if mixed else 1e-5
        for training in (False, True):
            np.testing.assert_allclose(np.asarray(fast(x, training=training)), np.asarray(stock(x, training=training)),
                                       atol=tolerance)
    finally:
        keras.mixed_precision.set_global_policy("float32")


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 5)] * 4), dtype=st.sampled_from(["bfloat16", "float16", "float32"]))
def test_swap_middle_axes_is_the_transpose_both_ways(shape, dtype):
    x = tf.cast(tf.constant(np.random.default_rng(sum(shape)).standard_normal(shape) * 4, tf.float32), dtype)
    upstream = tf.cast(tf.reshape(tf.range(math.prod(shape)) % 7 - 3, [shape[0], shape[2], shape[1], shape[3]]), dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, reference = swap_middle_axes(x), tf.transpose(x, [0, 2, 1, 3])
    assert ours.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(tf.cast(ours, tf.float32)), np.asarray(tf.cast(reference, tf.float32)))
    np.testing.assert_array_equal(np.asarray(tf.cast(tape.gradient(ours, x, upstream), tf.float32)),
                                  np.asarray(tf.cast(tape.gradient(reference, x, upstream), tf.float32)))


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-6), ("mixed_bfloat16", 2e-2)])
def test_fast_attention_without_padding_matches_keras_and_moves_heads_as_integers(dtype, tolerance):
    """No padding at all (one serving text): the softmax skips the mask; output and gradients stay Keras'."""
    x = tf.constant(np.random.default_rng(1).standard_normal((2, 5, 8)) * 3, tf.float32)
    mask = np.ones((2, 1, 5), np.int32)
    layers = _stock_and_fast_attention(dtype, x, mask)
    assert layers[1]._compute_attention.__func__ is fast_compute_attention

    f32 = lambda t: np.asarray(tf.cast(t, tf.float32))  # noqa: E731
    stock = _output_and_gradients(layers[0], x, mask, 3)
    scale = max(np.abs(f32(b)).max() for b in stock)
    for a, b in zip(_output_and_gradients(layers[1], x, mask, 3), stock):
        np.testing.assert_allclose(f32(a), f32(b), rtol=tolerance, atol=tolerance * scale)
    ops = tf.function(lambda: layers[1](x, x, attention_mask=mask)).get_concrete_function().graph.get_operations()
    assert not any(op.type == "Einsum" for op in ops)
    transposed = {op.inputs[0].dtype for op in ops if op.type == "Transpose"}
    assert transposed == ({tf.int16} if dtype == "mixed_bfloat16" else {tf.float32})
