import json

import pytest

from tfbert.config import EvaluateConfig, ModelConfig, PredictConfig, PretrainConfig, TrainConfig


def test_tpu_needs_an_address():
    with pytest.raises(ValueError, match="--strategy tpu needs --tpu"):
        TrainConfig(strategy="tpu")
    with pytest.raises(ValueError, match="--strategy tpu needs --tpu"):
        PretrainConfig(strategy="tpu")


def test_pretraining_takes_every_strategy():
    for strategy in ("auto", "default", "mirrored", "multiworker"):
        assert PretrainConfig(strategy=strategy).strategy == strategy


def test_model_shape_is_checked():
    with pytest.raises(ValueError, match="--hidden-dim 30 is not divisible by --num-heads 4"):
        ModelConfig(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="--dropout must be in"):
        ModelConfig(dropout=1.0)


def test_profile_steps():
    assert TrainConfig(profile_batch="10,20").profile_steps == (10, 20)
    assert TrainConfig().profile_steps is None


def test_config_serializes_to_json():
    values = json.loads(TrainConfig(epochs=2).to_json())
    assert values["epochs"] == 2 and values["model"]["num_layers"] == 2


def test_predict_and_evaluate_checks():
    with pytest.raises(ValueError, match="Give exactly one of --model DIR"):
        PredictConfig()
    with pytest.raises(ValueError, match="--request-format 'xml' is not one of row, columnar"):
        PredictConfig(model="m", request_format="xml")
    with pytest.raises(ValueError, match="--threshold must be in"):
        EvaluateConfig(model="m", data="d", threshold=1.0)
