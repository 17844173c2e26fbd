import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.conftest import CHARS
from tfbert.config import ModelConfig
from tfbert.model import MaskedMeanPooling, build_backbone, build_classifier, probabilities_per_label
from tfbert.preprocessing import TextPreprocessor


def test_masked_mean_pooling_golden():
    seq = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], np.float32)
    out = MaskedMeanPooling()(seq, np.array([[1, 1, 0]], np.int32))
    np.testing.assert_allclose(np.asarray(out), [[2.0, 3.0]])  # padding's 100s are ignored


def test_pooling_config_round_trip():
    layer = MaskedMeanPooling(name="p")
    again = MaskedMeanPooling.from_config(layer.get_config())
    assert again.name == "p"


@pytest.fixture(scope="module")
def tiny_model(tiny_tokenizer):
    keras.utils.set_random_seed(0)
    backbone = build_backbone(ModelConfig(num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32), tiny_tokenizer.vocabulary_size(), 128)
    return build_classifier(backbone, num_classes=2)


@pytest.fixture(scope="module")
def preprocessors(tiny_tokenizer):
    return {n: TextPreprocessor(tiny_tokenizer, n) for n in (32, 64, 128)}


def _probs(model, pre, texts):
    return np.asarray(probabilities_per_label(model(pre(tf.constant(texts)), training=False)))


@settings(max_examples=15, deadline=None)
@given(
    text=st.text(alphabet=CHARS, min_size=1, max_size=25),
    others=st.lists(st.text(alphabet=CHARS, min_size=20, max_size=120), min_size=0, max_size=4),
)
def test_padding_and_batch_invariance(tiny_model, preprocessors, text, others):
    """A text's probabilities do not depend on its padding or its batch-mates."""
    alone = _probs(tiny_model, preprocessors[32], [text])[0]
    for length in (64, 128):
        padded = _probs(tiny_model, preprocessors[length], [text])[0]
        np.testing.assert_allclose(padded, alone, atol=1e-5)
    batched = _probs(tiny_model, preprocessors[128], [*others, text])[-1]
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_padding_tokens_do_not_matter(tiny_model, tiny_tokenizer):
    """Even garbage in padded positions (mask 0) leaves the output unchanged."""
    feats = {k: v.numpy() for k, v in TextPreprocessor(tiny_tokenizer, 16)(tf.constant(["很好"])).items()}
    noisy = {k: v.copy() for k, v in feats.items()}
    noisy["token_ids"][0, 4:] = 7
    noisy["segment_ids"][0, 4:] = 1
    a = np.asarray(tiny_model(feats, training=False))
    b = np.asarray(tiny_model(noisy, training=False))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_head_shapes_and_float32_under_mixed_precision(tiny_tokenizer):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        backbone = build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16), 50, 16)
        model = build_classifier(backbone, num_classes=3)
        out = model({"token_ids": np.ones((2, 5), np.int32), "segment_ids": np.zeros((2, 5), np.int32), "padding_mask": np.ones((2, 5), np.int32)})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.shape == (2, 3) and out.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-5)


def test_binary_probabilities_per_label():
    np.testing.assert_allclose(np.asarray(probabilities_per_label(np.array([[0.25]], np.float32))), [[0.75, 0.25]])


def test_one_class_is_rejected():
    with pytest.raises(ValueError, match="at least 2 classes, got 1"):
        build_classifier(build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16), 50, 16), 1)
