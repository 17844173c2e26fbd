import keras
import numpy as np
import pytest

from tests.conftest import TINY_VOCAB
from tfbert.config import ModelConfig
from tfbert.model import build_backbone, build_classifier
from tfbert.optimization import WarmupLinearDecay, build_optimizer


@pytest.mark.parametrize("step,expected", [(0, 0.0), (5, 0.5e-3), (10, 1e-3), (55, 0.5e-3), (100, 0.0), (150, 0.0)])
def test_schedule_values(step, expected):
    schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_schedule_round_trip():
    schedule = WarmupLinearDecay(2e-5, 1000, 100)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(again(550)) == pytest.approx(float(schedule(550)))


def test_weight_decay_skips_layer_norm_and_biases():
    model = build_classifier(build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16), len(TINY_VOCAB), 16), 2)
    optimizer = build_optimizer(1e-3, 10, 0.1, 0.01)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    skipped = {v.path for v in model.trainable_variables} - decayed
    assert skipped and all(p.rsplit("/", 1)[-1] in {"gamma", "beta", "bias"} for p in skipped)
    assert all(p.rsplit("/", 1)[-1] in {"kernel", "embeddings", "reverse_embeddings"} for p in decayed)
    assert any("layer_norm" in p or "norm" in p for p in skipped)
    assert optimizer.clip_global_norm == 1.0 and optimizer.global_clipnorm is None  # clipped after all-reduce


def test_clipping_matches_keras_global_clipnorm_on_one_device():
    import tensorflow as tf

    from tfbert.optimization import AdamW

    def step(optimizer):
        keras.utils.set_random_seed(0)
        v = keras.Variable(np.ones((3,), np.float32))
        optimizer.apply_gradients([(tf.constant([30.0, -40.0, 0.0]), v)])
        return np.asarray(v)

    ours = step(AdamW(learning_rate=0.1, clip_global_norm=1.0, weight_decay=0.0))
    theirs = step(keras.optimizers.AdamW(learning_rate=0.1, global_clipnorm=1.0, weight_decay=0.0))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
