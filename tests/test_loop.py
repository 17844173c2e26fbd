"""The fit loop train.py and pretrain.py share: NaN guard, interruption, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert.scripts import train_main


@pytest.mark.slow
def test_nan_loss_stops_without_exporting(tmp_path, capsys):
    csv = write_csv(tmp_path / "r.csv", synthetic_rows(200))
    code = train_main(["--data", csv, "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"),
                       *TINY_FLAGS, "--learning-rate", "1e38", "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "the loss became NaN at epoch" in err and "Nothing was exported" in err
    assert not os.path.exists(tmp_path / "sm")


@pytest.mark.slow
def test_ctrl_c_keeps_a_backup_and_the_same_command_resumes(tmp_path):
    csv = write_csv(tmp_path / "r.csv", synthetic_rows(2400, seed=5))
    argv = [sys.executable, "train.py", "--data", csv, "--export-dir", str(tmp_path / "sm"),
            "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS, "--epochs", "20", "--early-stopping-patience", "0"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # A shell without job control starts `cmd &` with SIGINT ignored, and children inherit that: Python then
    # never raises KeyboardInterrupt. Give train.py the default disposition, as a terminal would.
    proc = subprocess.Popen(argv, cwd=root, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # After epoch 1, the other 19 epochs (~1.5 s each) give the SIGINT below time to land inside training: on a
    # loaded machine this process can wait seconds between seeing the backup and signalling, and a signal that
    # comes once train.py has exported tests nothing.
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


@pytest.mark.slow
def test_a_full_disk_during_training_is_a_clear_error(tmp_path):
    """A file-size limit stands for a full disk: the first backup, checkpoint or log write that hits it stops the run
    with one line that says what was kept."""
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (80_000, 80_000))\n"
              "from tfbert.scripts import train_main\n"
              "sys.exit(train_main(sys.argv[1:]))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = write_csv(tmp_path / "r.csv", synthetic_rows(200))
    proc = subprocess.run([sys.executable, "-c", script, "--data", data, "--export-dir", str(tmp_path / "sm"),
                           "--log-dir", str(tmp_path / "logs"), "--epochs", "2", *TINY_FLAGS], cwd=root,
                          env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith("error: Training stopped writing a backup, checkpoint or log") and "File too large" in last
    assert "run the same command to resume" in last
