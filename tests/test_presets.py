import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from tfbert.convert_checkpoint import import_checkpoint

    fixture = os.path.join(os.path.dirname(__file__), "data", "tiny_hf_bert")
    return import_checkpoint(fixture, str(tmp_path_factory.mktemp("ckpt") / "preset"), lowercase=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.99))
def test_truncated_weights_are_a_clear_error(converted, tmp_path_factory, cut):
    damaged = str(tmp_path_factory.mktemp("cut") / "preset")
    shutil.copytree(converted, damaged)
    weights = os.path.join(damaged, "model.safetensors")
    raw = open(weights, "rb").read()
    open(weights, "wb").write(raw[: int(len(raw) * cut)])
    with pytest.raises(ValueError, match="its weights cannot be read .* truncated or damaged"):
        presets.load_pretrained(damaged, 16)


@pytest.mark.parametrize("edit,message", [
    (lambda vocab: vocab[:7] + [""] + vocab[8:], "line 8 is empty"),
    (lambda vocab: vocab[:7] + [vocab[6]] + vocab[8:], "is on lines 7 and 8"),
])
def test_a_damaged_vocabulary_is_a_clear_error(converted, tmp_path, edit, message):
    damaged = str(tmp_path / "preset")
    shutil.copytree(converted, damaged)
    path = os.path.join(damaged, "vocab.txt")
    vocab = open(path, encoding="utf-8").read().splitlines()
    open(path, "w", encoding="utf-8").write("\n".join(edit(vocab)) + "\n")
    with pytest.raises(ValueError, match=message):
        presets.load_tokenizer(damaged)


def test_keras_files_load_in_safe_mode(tmp_path):
    """A .keras file whose config smuggles a Python lambda is refused, not run."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(str(tmp_path / "lambda.keras"))
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(str(tmp_path / "lambda.keras"))


def test_the_shipped_checkpoint_matches_its_recorded_checksums():
    """tfbert_zh_mini's README records each file's SHA-256 and size: the files in the package are those."""
    import hashlib
    import re

    from tfbert.presets import resolve, shipped_presets

    assert "tfbert_zh_mini" in shipped_presets()
    directory = resolve("tfbert_zh_mini")
    card = open(os.path.join(directory, "README.md"), encoding="utf-8").read()
    recorded = re.findall(r"^\| `([^`]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \|$", card, re.MULTILINE)
    files = sorted(os.path.relpath(os.path.join(root, name), directory)
                   for root, _, names in os.walk(directory) for name in names if name != "README.md")
    assert sorted(name for name, _, _ in recorded) == files
    for name, size, digest in recorded:
        path = os.path.join(directory, name)
        assert os.path.getsize(path) == int(size.replace(",", ""))
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest, name
    assert sum(os.path.getsize(os.path.join(directory, name)) for name in files) < 20 * 1024 * 1024


def test_the_shipped_checkpoint_loads_by_name():
    from tfbert.presets import learning_rate_for, load_pretrained

    pretrained = load_pretrained("tfbert_zh_mini", 128)
    assert pretrained.backbone.num_layers == 2 and pretrained.backbone.hidden_dim == 256
    assert pretrained.tokenizer.vocabulary_size() > 5000
    assert learning_rate_for("tfbert_zh_mini", None) > 2e-5  # the rate its pretraining recorded, not BERT's
