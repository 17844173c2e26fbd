import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.conftest import CHARS
from tfbert.config import ModelConfig
from tfbert.keras_compat import use_fast_layers
from tfbert.model import MaskedMeanPooling, TextClassifier, build_backbone, build_classifier
from tfbert.preprocessor import TextPreprocessor


def test_masked_mean_pooling_golden():
    seq = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], np.float32)
    out = MaskedMeanPooling()(seq, np.array([[1, 1, 0]], np.int32))
    np.testing.assert_allclose(np.asarray(out), [[2.0, 3.0]])  # padding's 100s are ignored




def _probs(model, pre, texts):
    return np.asarray(model(pre(tf.constant(texts)), training=False))


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
    feats = {k: v.numpy() for k, v in TextPreprocessor.from_tokenizer(tiny_tokenizer, 16)(tf.constant(["很好"])).items()}
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
        model = build_classifier(backbone, 3, "softmax")
        out = model({"token_ids": np.ones((2, 5), np.int32), "segment_ids": np.zeros((2, 5), np.int32), "padding_mask": np.ones((2, 5), np.int32)})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.shape == (2, 3) and out.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-5)


def test_the_pooler_is_kept_out_of_training():
    backbone = build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16), 50, 16)
    model = build_classifier(backbone, 2, "softmax")
    assert not any("pooled_dense" in v.path for v in model.trainable_variables)
    assert any("pooled_dense" in v.path for v in model.non_trainable_variables)


def test_a_saved_classifier_carries_its_preprocessor(tiny_tokenizer, tmp_path):
    """save -> load: the same vocabulary, sequence length, pair setting, truncation and outputs."""
    keras.utils.set_random_seed(2)
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, 12, pair=True, truncation="head_tail")
    backbone = build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16),
                              tiny_tokenizer.vocabulary_size(), 16)
    model = build_classifier(backbone, 3, "softmax", preprocessor=pre)
    model.save(str(tmp_path / "m.keras"))
    again = keras.saving.load_model(str(tmp_path / "m.keras"))
    assert isinstance(again, TextClassifier) and (again.units, again.activation) == (3, "softmax")
    loaded = again.preprocessor
    assert (loaded.sequence_length, loaded.pair, loaded.truncation, loaded.lowercase) == (12, True, "head_tail", True)
    assert loaded.vocabulary == pre.vocabulary
    texts = (tf.constant(["这个手机很好推荐给大家用", "差"]), tf.constant(["快递", "服务质量很差的酒店"]))
    features = pre(*texts)
    for name, value in loaded(*texts).items():
        np.testing.assert_array_equal(value.numpy(), features[name].numpy())
    np.testing.assert_allclose(np.asarray(again(features)), np.asarray(model(features)), atol=1e-6)
