"""The model card: what it records, and the signatures as the SavedModel declares them."""

from __future__ import annotations

import hashlib
import os

from tfbert import model_card
from tfbert.model_card import DataFile, ModelCard


def test_data_file_facts(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\n\xe5\xa5\xbd,1\n")
    facts = DataFile.of(str(path))
    assert facts == DataFile("d.csv", 17, hashlib.sha256(path.read_bytes()).hexdigest())


def test_base_licence(tmp_path):
    assert model_card.base_licence(None, None) == model_card.SCRATCH_LICENCE
    assert model_card.base_licence("bert_base_zh", None) == model_card.KERAS_HUB_LICENCE
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# a model\n")
    assert model_card.base_licence(str(tmp_path), str(tmp_path)) == "mit"
    os.remove(tmp_path / "README.md")
    assert model_card.base_licence(str(tmp_path), str(tmp_path)).startswith("unknown")


def test_the_shipped_checkpoint_states_its_licence():
    from tfbert.presets import resolve

    directory = resolve("tfbert_zh_mini")
    assert model_card.base_licence("tfbert_zh_mini", directory).startswith("Apache-2.0")


def test_render_has_every_section():
    card = ModelCard("reviews", {"task": "classification", "label_names": ["neg", "pos"]}, "--preset x", "mit",
                     (DataFile("a.csv", 1234, "ab" * 32),), "stratified 20%", {
                         "loss": 0.3, "accuracy": 0.9, "baseline": {"loss": 0.4, "accuracy": 0.85},
                         "bert": {"loss": 0.35, "accuracy": 0.88}, "train_seconds": 12.0},
                     "python train.py --data a.csv", {"tensorflow": "2.21.0", "tfbert": "0.1.0"})
    text = card.render({"serving_default": {"inputs": {"text": "string [None]"},
                                            "outputs": {"probabilities": "float32 [None, 2]"}}})
    for section in ("## Task", "## Base checkpoint", "## Data", "## Validation metrics", "## Command",
                    "## Versions", "## Signatures"):
        assert section in text, section
    assert "- labels: neg, pos" in text and "| a.csv | 1,234 | `" + "ab" * 32 + "` |" in text
    assert "| exported model (BERT + baseline ensemble) | 0.3000 | 0.9000 |" in text
    assert "| BERT alone | 0.3500 | 0.8800 |" in text and "| TF-IDF baseline | 0.4000 | 0.8500 |" in text
    assert "`text` string [None]" in text and "python train.py --data a.csv" in text
