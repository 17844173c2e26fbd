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

from tfbert.scripts import evaluate_main
from tfbert.scripts import predict_main
from tfbert.scripts import train_main
from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert import presets


def _csv(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


TRAIN_CASES = {
    "missing file": (lambda t: ["--data", str(t / "nope.csv")], "Data file '{t}/nope.csv' does not exist"),
    "directory": (lambda t: ["--data", str(t)], "is a directory; pass a .csv, .json, .jsonl, .tsv file"),
    "unknown format": (lambda t: ["--data", _csv(t, "d.xlsx", "x")], "Unknown data format '.xlsx'"),
    "empty file": (lambda t: ["--data", _csv(t, "d.csv", "")], "is empty"),
    "missing text column": (lambda t: ["--data", _csv(t, "d.csv", "review,label\na,b\n")],
                            "no text column 'text'; columns found: label, review. Pass --text-column NAME"),
    "missing label column": (lambda t: ["--data", _csv(t, "d.csv", "text,y\na,b\n")],
                             "no label column 'label'; columns found: text, y. Pass --label-column NAME"),
    "one class": (lambda t: ["--data", _csv(t, "d.csv", "text,label\na,x\nb,x\nc,x\nd,x\ne,x\n")],
                  "only 1 class ('x'); a classifier needs at least 2"),
    "not utf-8": (lambda t: ["--data", _csv(t, "d.csv", "text,label\n好,1\n".encode() + "坏,0\n".encode("gbk"))],
                  "1 lines are not valid UTF-8 (the first is line 3)"),
    "all values missing": (lambda t: ["--data", _csv(t, "d.jsonl", '{"text": null, "label": 1}\n{"text": "a"}\n')],
                           "no usable rows"),
    "unseen validation label": (lambda t: ["--data", write_csv(t / "tr.csv", synthetic_rows(20)),
                                           "--validation-data", _csv(t, "va.csv", "text,label\n好,neutral\n")],
                                "The validation data has labels that training never saw: 'neutral'"),
    "unknown preset": (lambda t: ["--data", write_csv(t / "tr.csv", synthetic_rows(20)), "--preset", "bert_huge_xx"],
                       "Unknown --preset 'bert_huge_xx'. Shipped with tfbert: tfbert_zh_mini; keras-hub BERT presets: "),
    "missing preset dir": (lambda t: ["--data", write_csv(t / "tr.csv", synthetic_rows(20)), "--preset", "./no/such/dir"],
                           "--preset directory './no/such/dir' does not exist"),
    "bad flag value": (lambda t: ["--epochs", "0"], "--epochs must be >= 1, got 0"),
    "ensemble without baseline": (lambda t: ["--ensemble-baseline", "--no-baseline"],
                                  "--ensemble-baseline exports the baseline beside BERT, so it cannot go with --no-baseline"),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_errors(case, tmp_path, capsys):
    argv, message = TRAIN_CASES[case]
    code = train_main([*argv(tmp_path), "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress logs may come before it
    assert code == 2
    assert last.startswith("error: ") and message.format(t=tmp_path) in last
    assert "Traceback" not in err


def test_offline_preset_download_says_how_to_use_a_local_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(presets, "_can_reach", lambda host, timeout=5.0: False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no kagglehub cache
    code = train_main(["--data", write_csv(tmp_path / "tr.csv", synthetic_rows(20)), "--preset", "bert_base_zh"])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot download --preset 'bert_base_zh': www.kaggle.com is not reachable" in err
    assert "--preset ./bert_base_zh" in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        train_main(["--data", str(tmp_path / "nope.csv"), "--debug"])




@pytest.mark.slow
def test_evaluate_and_predict_errors(trained, tmp_path, capsys):
    model = os.path.dirname(trained.export_path)
    cases = [
        (evaluate_main, ["--model", model, "--data", _csv(tmp_path, "e.csv", "text,label\n好,neutral\n")],
         "has labels that training never saw: 'neutral'. Known labels: 'negative', 'positive'"),
        (evaluate_main, ["--model", str(tmp_path), "--data", _csv(tmp_path, "e2.csv", "text,label\n好,positive\n")],
         "is not a tfbert export"),
        (evaluate_main, ["--model", model, "--data", str(tmp_path / "missing.csv")], "does not exist"),
        (predict_main, ["--model", model, "--file", str(tmp_path / "missing.txt")], "--file"),
        (predict_main, ["x"], "Give exactly one of --model DIR"),
        (predict_main, ["--server", "http://127.0.0.1:9", "x"], "--server needs --model-name"),
    ]
    for main, argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)














def test_predict_prints_json_lines(trained, capsys, tmp_path):
    assert predict_main(["--model", os.path.dirname(trained.export_path), "很好", "太差了"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["很好", "太差了"]
    for r in lines:
        assert set(r["probabilities"]) == {"negative", "positive"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    file = tmp_path / "texts.txt"
    file.write_text("很好\n\n太差了\n", encoding="utf-8")
    assert predict_main(["--model", trained.export_path, "--file", str(file)]) == 0
    assert [json.loads(x)["label"] for x in capsys.readouterr().out.splitlines()] == [r["label"] for r in lines]


def test_not_an_export(tmp_path, capsys):
    assert predict_main(["--model", str(tmp_path), "x"]) == 2
    assert "is not a tfbert export" in capsys.readouterr().err


def test_pair_model_end_to_end(tmp_path, capsys):
    from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
    from tfbert.scripts import train_main

    rows = [{"a": r["text"], "b": s["text"], "label": int(r["label"] == s["label"])}
            for r, s in zip(synthetic_rows(120, seed=1), synthetic_rows(120, seed=2))]
    path = write_csv(tmp_path / "pairs.csv", rows, fieldnames=("a", "b", "label"))
    argv = ["--data", path, "--text-column", "a", "--text-pair-column", "b", "--epochs", "1",
            "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]
    assert train_main(argv) == 0
    export = str(tmp_path / "sm" / "pairs" / "1")
    serve = tf.saved_model.load(export).signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"text", "text_pair"}
    out = serve(text=tf.constant(["很好"]), text_pair=tf.constant(["推荐"]))
    assert out["probabilities"].shape == (1, 2)
    capsys.readouterr()
    assert predict_main(["--model", export, "很好\t推荐"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == "很好" and record["text_pair"] == "推荐"
    np.testing.assert_allclose(list(record["probabilities"].values()), out["probabilities"].numpy()[0], atol=1e-5)
    assert evaluate_main(["--model", export, "--data", path]) == 0
    assert "Validation Accuracy" in capsys.readouterr().out


OFFLINE = r"""
import socket, sys

def refuse(*args, **kwargs):
    raise OSError("network refused by the test")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
from tfbert.scripts import evaluate_main, predict_main, train_main

out, data = sys.argv[1], sys.argv[2]
code = train_main(["--export-dir", out + "/sm", "--log-dir", out + "/logs", "--max-train-samples", "64",
                   "--epochs", "1", *sys.argv[3:]])
code = code or predict_main(["--model", out + "/sm/snownlp_sentiment", "很好"])
code = code or evaluate_main(["--model", out + "/sm/snownlp_sentiment", "--data", data])
sys.exit(code)
"""


@pytest.mark.slow
def test_the_default_path_runs_with_every_socket_refused(tmp_path):
    """train -> predict -> evaluate on the default corpus never touches the network."""
    data = write_csv(tmp_path / "eval.csv", synthetic_rows(30))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", OFFLINE, str(tmp_path), data, *TINY_FLAGS], cwd=root,
                          env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "network refused" not in proc.stderr
    assert '"label": ' in proc.stdout and "Validation Loss" in proc.stdout


def test_a_remote_preset_offline_names_the_local_directory_fix(tmp_path, capsys, monkeypatch):
    """Only an explicitly named remote preset reaches for the network; offline, the message says what to do."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    presets._can_reach.cache_clear()
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        assert train_main(["--preset", "hf://google-bert/bert-base-chinese", "--export-dir", str(tmp_path / "sm"),
                           "--log-dir", str(tmp_path / "logs")]) == 2
    finally:
        presets._can_reach.cache_clear()
    err = capsys.readouterr().err
    assert "huggingface.co is not reachable from here" in err and "--preset ./" in err
