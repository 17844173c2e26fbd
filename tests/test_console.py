"""A run's console: no framework noise without --verbose, the opening lines, the next commands at the end."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert import console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = re.compile(r"cuda|cuInit|oneDNN|absl|^[IWE]\d{4} ", re.IGNORECASE | re.MULTILINE)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`python train.py --data` on a tiny file, in a fresh process, as a user runs it."""
    out = tmp_path_factory.mktemp("console")
    data = str(out / "reviews.csv")
    write_csv(data, synthetic_rows(120))
    argv = [sys.executable, os.path.join(ROOT, "train.py"), "--data", data, "--epochs", "1", "--log-dir",
            str(out / "logs"), "--export-dir", str(out / "sm"), *TINY_FLAGS]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(out), env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


@pytest.mark.slow
def test_a_run_prints_no_framework_noise(tiny_run):
    proc, _ = tiny_run
    assert not NOISE.search(proc.stdout + proc.stderr), NOISE.search(proc.stdout + proc.stderr).group(0)


@pytest.mark.slow
def test_a_run_opens_with_what_it_does_and_ends_with_the_next_commands(tiny_run):
    proc, out = tiny_run
    log = proc.stderr
    for opening in ("Data: reviews: ", "Model: BERT from scratch", "Device: ", "precision float32", "Logs: "):
        assert opening in log, opening
    assert "--data without --preset trains a small BERT from scratch" in log and "--preset tfbert_zh_mini" in log
    tail = proc.stdout.strip().splitlines()
    next_at = tail.index("Next:")
    commands = [line.strip() for line in tail[next_at + 1:]]
    assert commands[0] == f"tensorboard --logdir {out / 'logs'}"
    assert commands[1].startswith(f"python predict.py --model {out / 'sm' / 'reviews'} ")
    assert "-e MODEL_NAME=reviews tensorflow/serving" in commands[3] and "/v1/models/reviews" in commands[4]


def test_next_steps_quote_what_the_shell_would_split():
    text = console.next_steps("logs/my run-1", "saved models", "m", "很 好")
    lines = text.splitlines()
    assert lines[1].strip() == "tensorboard --logdir logs"
    assert shlex.split(lines[2]) == ["python", "predict.py", "--model", "saved models/m", "很 好"]
    assert f"-v {shlex.quote(os.path.abspath('saved models/m'))}:/models/m" in lines[4]


def test_quiet_startup_restores_stderr(capfd):
    with console._stderr_to_devnull():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "hidden" not in err and "shown" in err


def test_verbose_leaves_the_log_level_alone(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    console.quiet_startup(verbose=True)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    console.quiet_startup(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
