"""Masked-LM pretraining: corpus preparation, masking invariants, and pretrain -> preset -> train.py --preset."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfbert.scripts import pretrain_main
from tfbert.scripts import train_main
from tests.conftest import TINY_FLAGS, TINY_VOCAB, synthetic_rows
from tfbert import data as data_lib
from tfbert import pretraining
from tfbert.config import TrainConfig
from tfbert.presets import learning_rate_for

























@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "texts.txt"
    path.write_text("".join(row["text"] + "\n" for row in synthetic_rows(300, seed=7)), encoding="utf-8")
    return str(path)


def test_pretrain_writes_a_preset_that_train_fine_tunes(tmp_path, text_file, review_csv, capsys):
    import keras_hub

    preset = str(tmp_path / "presets" / "tiny")
    argv = [text_file, "--output-dir", preset, "--epochs", "3", "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]
    assert pretrain_main(argv) == 0
    assert "Masked-LM held-out loss" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "presets")) == ["tiny"]  # the temp dir was renamed, nothing left behind
    summary = json.loads((tmp_path / "presets" / "tiny" / "pretrain_summary.json").read_text())
    loss = summary["history"]["loss"]
    assert loss[-1] < loss[0] and np.isfinite(summary["history"]["val_loss"]).all()
    # Short texts fill few of the 7 mask slots: Keras' slot-averaged loss reads far below the per-token mean.
    assert summary["history"]["val_masked_loss"][-1] > 2 * summary["history"]["val_loss"][-1]
    assert summary["steps"] == 3 * summary["steps_per_epoch"]
    tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
    assert tokenizer.lowercase is True and tokenizer.vocabulary_size() == summary["vocabulary_size"]
    assert learning_rate_for(preset, None) == pretraining.FINE_TUNE_LEARNING_RATE
    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    assert backbone.num_layers == 1 and backbone.hidden_dim == 16

    # Rerunning into the same directory is refused unless asked for.
    assert pretrain_main(argv) == 2
    assert "--output-dir" in capsys.readouterr().err

    export = tmp_path / "sm"
    assert train_main(["--data", review_csv, "--preset", preset, "--epochs", "1", "--batch-size", "16",
                       "--max-seq-length", "32", "--learning-rate", "5e-3", "--no-baseline",
                       "--export-dir", str(export), "--log-dir", str(tmp_path / "logs"), "--model-name", "m"]) == 0
    vocab = (export / "m" / "1" / "assets.extra" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == tokenizer.get_vocabulary()  # fine-tuning used the pretrained vocabulary, not a new one


def test_pretrain_with_whole_word_masking(tmp_path, text_file, capsys):
    preset = str(tmp_path / "wwm")
    assert pretrain_main([text_file, "--whole-word-masking", "--output-dir", preset, "--epochs", "2",
                          "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]) == 0
    summary = json.loads((tmp_path / "wwm" / "pretrain_summary.json").read_text())
    assert summary["config"]["whole_word_masking"] is True
    # The log line run_script's logging writes to stderr: jieba found multi-character words in the synthetic reviews.
    continuing = re.search(r"Whole-word masking: (\d+) tokens", capsys.readouterr().err)
    assert continuing and int(continuing.group(1)) > 100
    history = summary["history"]
    assert history["loss"][-1] < history["loss"][0] and np.isfinite(history["val_masked_loss"]).all()






def test_init_from_continues_a_checkpoint_and_grows_its_vocabulary(tmp_path, tiny_tokenizer):
    import keras_hub

    start = str(tmp_path / "start")
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(TINY_VOCAB), num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=64)
    backbone.save_to_preset(start)
    tiny_tokenizer.save_to_preset(start)
    corpus = tmp_path / "new.txt"
    rows = [row["text"] for row in synthetic_rows(200, seed=3)]
    corpus.write_text("".join(f"{text}酷毙了\n" for text in rows) + "罕\n", encoding="utf-8")
    preset = str(tmp_path / "continued")
    assert pretrain_main([str(corpus), "--init-from", start, "--output-dir", preset, "--epochs", "1",
                          "--max-seq-length", "32", "--batch-size", "16", "--learning-rate", "1e-3",
                          "--log-dir", str(tmp_path / "logs")]) == 0
    summary = json.loads((tmp_path / "continued" / "pretrain_summary.json").read_text())
    assert sorted(summary["added_characters"]) == sorted("酷毙")  # 罕 appears once: below --add-characters 2
    vocab = keras_hub.models.BertTokenizer.from_preset(preset).get_vocabulary()
    assert vocab[: len(TINY_VOCAB)] == TINY_VOCAB and sorted(vocab[len(TINY_VOCAB):]) == sorted("酷毙")
    continued = keras_hub.models.BertBackbone.from_preset(preset)
    assert continued.vocabulary_size == len(vocab) and continued.num_layers == 1
    # Pretraining moved the start's weights; a continued checkpoint recommends no learning rate of its own.
    layer = "transformer_layer_0"
    assert not np.allclose(continued.get_layer(layer).weights[0].numpy(), backbone.get_layer(layer).weights[0].numpy())
    assert learning_rate_for(preset, None) == 2e-5


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--init-from", "bert_tiny_en_uncased", "--num-layers", "4"], "cannot be combined with --num-layers"),
        (["--add-characters", "-1"], "--add-characters must be >= 0"),
        (["--mask-rate", "0.6"], "--mask-rate must be in (0, 0.5)"),
        (["--strategy", "gpu"], "--strategy 'gpu' is not one of auto, default, mirrored, multiworker, tpu"),
        (["/nonexistent/corpus.txt"], "Text file '/nonexistent/corpus.txt' does not exist"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    ],
)
def test_bad_pretrain_flags_fail_in_one_line(capsys, argv, message, tmp_path):
    assert pretrain_main([*argv, "--output-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# Runs pretrain.py's main in a fresh process (each worker of a cluster is its own) and records its summary.
PRETRAIN_RUNNER = r"""
import dataclasses, json, os, sys
from tfbert import pretraining
from tfbert.scripts import pretrain_main
real = pretraining.pretrain
def spy(config):
    summary = real(config)
    json.dump(dataclasses.asdict(summary), open(os.environ["SUMMARY_OUT"], "w"))
    return summary
pretraining.pretrain = spy
sys.exit(pretrain_main(sys.argv[1:]))
"""


def _pretrain_process(argv, env_extra, **popen):
    from tests.test_distribute import ROOT

    env = {**os.environ, "PYTHONPATH": ROOT, **env_extra}
    return subprocess.Popen([sys.executable, "-c", PRETRAIN_RUNNER, *argv], env=env, cwd=ROOT, **popen)


@pytest.mark.slow
def test_two_workers_pretrain_in_lockstep(tmp_path, text_file):
    """The fit loop train.py uses: MultiWorkerMirroredStrategy, one preset from the chief, its TensorBoard logs."""
    from tests.test_distribute import _free_port

    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    argv = [text_file, "--output-dir", str(tmp_path / "preset"), "--epochs", "2", "--strategy", "multiworker",
            "--log-dir", str(tmp_path / "logs"), "--run-name", "p", *TINY_FLAGS]
    procs = [_pretrain_process(argv, {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                                      "SUMMARY_OUT": str(tmp_path / f"w{i}.json")}, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 0, err[-3000:]
    w0, w1 = (json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2))
    assert w0["history"]["loss"] == w1["history"]["loss"] and w0["steps"] == w1["steps"] == 2 * w0["steps_per_epoch"]
    assert w0["history"]["loss"][-1] < w0["history"]["loss"][0]
    assert sorted(os.listdir(tmp_path)) == sorted(["logs", "preset", "w0.json", "w1.json"])  # one preset, no backups left
    assert os.listdir(tmp_path / "logs" / "p" / "train") and os.listdir(tmp_path / "logs" / "p" / "validation")


@pytest.mark.slow
def test_pretraining_killed_mid_run_resumes_with_the_same_command(tmp_path):
    corpus = tmp_path / "texts.txt"
    corpus.write_text("".join(row["text"] + "\n" for row in synthetic_rows(2400, seed=5)), encoding="utf-8")
    preset = tmp_path / "preset"
    argv = [str(corpus), "--output-dir", str(preset), "--epochs", "5", "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]
    proc = _pretrain_process(argv, {"SUMMARY_OUT": str(tmp_path / "s.json")}, stderr=subprocess.DEVNULL)
    metadata = str(preset) + ".backup/training_metadata.json"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if os.path.isfile(metadata) and json.load(open(metadata))["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "pretraining ended before a backup of epoch 2 appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not preset.exists()  # killed before saving

    proc = _pretrain_process(argv, {"SUMMARY_OUT": str(tmp_path / "s.json")}, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert "Resuming from the backup" in err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert len(summary["history"]["loss"]) <= 3  # only the epochs after the backup ran again
    assert summary["steps"] == 5 * summary["steps_per_epoch"]  # as many steps as an uninterrupted run
    assert preset.is_dir() and not os.path.exists(str(preset) + ".backup")
