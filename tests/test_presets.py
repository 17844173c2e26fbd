import json

import pytest

from tfbert import presets


def test_learning_rate_defaults():
    assert presets.learning_rate_for(None, None) == presets.FROM_SCRATCH_LEARNING_RATE == 5e-4
    assert presets.learning_rate_for("bert_base_en", None) == presets.BERT_LEARNING_RATE == 2e-5
    assert presets.learning_rate_for("bert_base_en", 1e-3) == 1e-3


def test_a_pretrain_preset_recommends_its_rate(tmp_path):
    (tmp_path / presets.PRETRAIN_SUMMARY).write_text(json.dumps(
        {"texts": 1, "held_out_texts": 1, "vocabulary_size": 9, "parameters": 5, "steps_per_epoch": 1, "steps": 2,
         "seconds": 0.5, "history": {"loss": [1.0]}, "fine_tune_learning_rate": 3e-4, "a_key_from_elsewhere": 1}))
    assert presets.learning_rate_for(str(tmp_path), None) == 3e-4
    assert presets.PretrainSummary.read(str(tmp_path)).steps == 2
    assert presets.PretrainSummary.read(str(tmp_path / "nothing")) is None


def test_hugging_face_dir_without_case_setting_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(FileNotFoundError, match="has no tokenizer_config.json"):
        presets.load_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ValueError, match='has no "do_lower_case"'):
        presets.load_tokenizer(str(tmp_path))


def test_old_hugging_face_files_point_to_the_converter(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="python -m tfbert.convert_checkpoint"):
        presets.load_tokenizer(str(tmp_path))


def test_save_preset_is_atomic_and_replaces(tmp_path, tiny_tokenizer):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=tiny_tokenizer.vocabulary_size(), num_layers=1,
                                             num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    summary = presets.PretrainSummary(1, 1, 9, 5, 1, 2, 0.5, {"loss": [1.0]})
    target = tmp_path / "p"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    presets.save_preset(backbone, tiny_tokenizer, str(target), summary)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"] and not (target / "stale.txt").exists()
    assert presets.PretrainSummary.read(str(target)) == summary
    assert keras_hub.models.BertBackbone.from_preset(str(target)).hidden_dim == 8
