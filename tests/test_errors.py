"""Every user-facing failure: one clear line on stderr, exit status 2, no traceback (unless --debug)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings, strategies as st

import evaluate
import predict
import train
from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert import preprocessing


def _csv(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


TRAIN_CASES = {
    "missing file": (lambda t: ["--data", str(t / "nope.csv")], "Data file '{t}/nope.csv' does not exist"),
    "directory": (lambda t: ["--data", str(t)], "is a directory; pass a .csv, .tsv or .jsonl file"),
    "unknown format": (lambda t: ["--data", _csv(t, "d.xlsx", "x")], "Unknown data format '.xlsx'"),
    "empty file": (lambda t: ["--data", _csv(t, "d.csv", "")], "is empty"),
    "missing text column": (lambda t: ["--data", _csv(t, "d.csv", "review,label\na,b\n")],
                            "no text column 'text'; columns found: label, review. Pass --text-column NAME"),
    "missing label column": (lambda t: ["--data", _csv(t, "d.csv", "text,y\na,b\n")],
                             "no label column 'label'; columns found: text, y. Pass --label-column NAME"),
    "one class": (lambda t: ["--data", _csv(t, "d.csv", "text,label\na,x\nb,x\nc,x\nd,x\ne,x\n")],
                  "only 1 class ('x'); a classifier needs at least 2"),
    "not utf-8": (lambda t: ["--data", _csv(t, "d.csv", "text,label\n好,1\n".encode() + "坏,0\n".encode("gbk"))],
                  "line 3 is not valid UTF-8"),
    "all values missing": (lambda t: ["--data", _csv(t, "d.jsonl", '{"text": null, "label": 1}\n{"text": "a"}\n')],
                           "no usable rows"),
    "unseen validation label": (lambda t: ["--data", write_csv(t / "tr.csv", synthetic_rows(20)),
                                           "--validation-data", _csv(t, "va.csv", "text,label\n好,neutral\n")],
                                "The validation data has labels that training never saw: 'neutral'"),
    "unknown preset": (lambda t: ["--data", write_csv(t / "tr.csv", synthetic_rows(20)), "--preset", "bert_huge_xx"],
                       "Unknown --preset 'bert_huge_xx'. BERT presets: "),
    "missing preset dir": (lambda t: ["--data", write_csv(t / "tr.csv", synthetic_rows(20)), "--preset", "./no/such/dir"],
                           "--preset directory './no/such/dir' does not exist"),
    "bad flag value": (lambda t: ["--epochs", "0"], "--epochs must be >= 1, got 0"),
    "ensemble without baseline": (lambda t: ["--ensemble-baseline", "--no-baseline"],
                                  "--ensemble-baseline exports the baseline beside BERT, so it cannot go with --no-baseline"),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_errors(case, tmp_path, capsys):
    argv, message = TRAIN_CASES[case]
    code = train.main([*argv(tmp_path), "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress logs may come before it
    assert code == 2
    assert last.startswith("error: ") and message.format(t=tmp_path) in last
    assert "Traceback" not in err


def test_offline_preset_download_says_how_to_use_a_local_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(preprocessing, "_can_reach", lambda host, timeout=5.0: False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no kagglehub cache
    code = train.main(["--data", write_csv(tmp_path / "tr.csv", synthetic_rows(20)), "--preset", "bert_base_zh"])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot download --preset 'bert_base_zh': www.kaggle.com is not reachable" in err
    assert "--preset ./bert_base_zh" in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        train.main(["--data", str(tmp_path / "nope.csv"), "--debug"])


def test_blank_and_missing_rows_are_dropped_and_counted(tmp_path, caplog):
    from tfbert.data import load_examples

    path = _csv(tmp_path, "d.csv", "text,label\n好,1\n   ,0\n,1\n差,\n坏,0\n")
    with caplog.at_level("WARNING"):
        ex = load_examples(path)
    assert ex.texts == ["好", "坏"]
    # CSV cannot tell an empty cell from an empty string: an empty text is blank, an empty label missing.
    assert "dropped 1 rows with a missing text or label" in caplog.text
    assert "dropped 2 rows whose text is empty or whitespace only" in caplog.text


@pytest.mark.slow
def test_evaluate_and_predict_errors(trained, tmp_path, capsys):
    model = os.path.dirname(trained.export_path)
    cases = [
        (evaluate.main, ["--model", model, "--data", _csv(tmp_path, "e.csv", "text,label\n好,neutral\n")],
         "has labels that training never saw: 'neutral'. Known labels: 'negative', 'positive'"),
        (evaluate.main, ["--model", str(tmp_path), "--data", _csv(tmp_path, "e2.csv", "text,label\n好,positive\n")],
         "is not a tfbert export"),
        (evaluate.main, ["--model", model, "--data", str(tmp_path / "missing.csv")], "does not exist"),
        (predict.main, ["--model", model, "--file", str(tmp_path / "missing.txt")], "--file"),
        (predict.main, ["x"], "Give exactly one of --model DIR"),
        (predict.main, ["--server", "http://127.0.0.1:9", "x"], "--server needs --model-name"),
    ]
    for main, argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


@pytest.mark.slow
def test_nan_loss_stops_without_exporting(tmp_path, capsys):
    csv = write_csv(tmp_path / "r.csv", synthetic_rows(200))
    code = train.main(["--data", csv, "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"),
                       *TINY_FLAGS, "--learning-rate", "1e38", "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "the loss became NaN at epoch" in err and "Nothing was exported" in err
    assert not os.path.exists(tmp_path / "sm")


@pytest.mark.slow
def test_same_seed_same_metrics(review_csv, tmp_path):
    from tfbert.cli import parse_config
    from tfbert.config import TrainConfig
    from tfbert.training import train as train_fn

    metrics = []
    for run in ("a", "b"):
        argv = ["--data", review_csv, "--epochs", "2", "--export-dir", str(tmp_path / run), "--log-dir", str(tmp_path / run),
                "--run-name", "r", *TINY_FLAGS]
        metrics.append(train_fn(parse_config(TrainConfig, argv, "")).metrics)
    for key in ("loss", "accuracy", "f1", "roc_auc"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-6), key


@pytest.mark.slow
def test_ctrl_c_keeps_a_backup_and_the_same_command_resumes(tmp_path):
    csv = write_csv(tmp_path / "r.csv", synthetic_rows(2400, seed=5))
    argv = [sys.executable, "train.py", "--data", csv, "--export-dir", str(tmp_path / "sm"),
            "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS, "--epochs", "6", "--early-stopping-patience", "0"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # A shell without job control starts `cmd &` with SIGINT ignored, and children inherit that: Python then
    # never raises KeyboardInterrupt. Give train.py the default disposition, as a terminal would.
    proc = subprocess.Popen(argv, cwd=root, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        found = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "logs") for f in fs if f == "training_metadata.json"]
        if found and json.load(open(found[0]))["epoch"] >= 1:
            break
        time.sleep(0.05)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert alive, "training ended before the first backup was seen: " + err[-1000:]
    assert proc.returncode == 130, err[-2000:]
    assert "Interrupted. Kept the backup in" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Resuming the unfinished run" in proc.stderr
    assert os.path.isdir(tmp_path / "sm")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_serving_boundary_takes_any_bytes(served, batch):
    out = served(text=tf.constant(batch, tf.string))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(batch), 2) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_serving_boundary_edge_cases(served):
    cases = {
        "empty": [""],
        "huge": ["好" * 100_000],
        "invalid utf-8": [b"\xff\xfe\xc3(", b"ok\x80"],
        "emoji": ["😀👍🏽🎉"],
        "batch of 1000": ["这个手机很好"] * 1000,
        "empty batch": [],
    }
    for name, batch in cases.items():
        probs = served(text=tf.constant(batch, tf.string, shape=[len(batch)]))["probabilities"].numpy()
        assert probs.shape == (len(batch), 2) and np.isfinite(probs).all(), name
    # Invalid bytes are dropped the way U+FFFD is: "ok\x80" answers like "ok".
    a = served(text=tf.constant([b"ok\x80"]))["probabilities"].numpy()
    b = served(text=tf.constant(["ok"]))["probabilities"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.fixture(scope="module")
def served(trained):
    return tf.saved_model.load(trained.export_path).signatures["serving_default"]
