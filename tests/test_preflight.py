"""A run that would fail at its end fails at its start, within seconds, with one line."""

import os
import time

import pytest

from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert import preflight
from tfbert.scripts import evaluate_main, predict_main, pretrain_main, train_main


def _one_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", ["--export-dir", "--log-dir", "--backup-dir"])
def test_an_output_dir_that_is_a_file_fails_before_training(tmp_path, capsys, flag):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    argv = ["--data", write_csv(tmp_path / "r.csv", synthetic_rows(40)), "--export-dir", str(tmp_path / "sm"),
            "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS, flag, str(blocker)]
    start = time.time()
    assert train_main(argv) == 2
    assert f"{flag} '{blocker}' is a file; it must be a directory" in _one_line(capsys)
    assert time.time() - start < 30  # no data read, no model built
    assert not (tmp_path / "logs").exists() or not os.listdir(tmp_path / "logs")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_export_dir_fails_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert train_main(["--export-dir", str(locked / "sm"), "--log-dir", str(tmp_path / "logs")]) == 2
    assert "cannot be written" in _one_line(capsys)


def test_writable_dir_checks_by_writing_and_creates_nothing(tmp_path, monkeypatch):
    preflight.writable_dir(str(tmp_path / "new" / "nested"), "--log-dir")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="cannot be created: .*file' is a file"):
        preflight.writable_dir(str(tmp_path / "file" / "below"), "--log-dir")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(preflight.tempfile, "TemporaryFile", refuse)
    with pytest.raises(PermissionError, match="--log-dir .* cannot be written \\(Permission denied in"):
        preflight.writable_dir(str(tmp_path), "--log-dir")


@pytest.mark.parametrize("name", ["../outside", "a/b", "/abs", "..", "", "a\\b"])
def test_a_model_name_cannot_leave_the_export_dir(tmp_path, name):
    with pytest.raises(ValueError, match="must be a plain name"):
        preflight.inside(str(tmp_path), name, "--model-name")


def test_a_symlink_out_of_the_export_dir_is_refused(tmp_path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "sm" / "m")
    with pytest.raises(ValueError, match="is a link to .*elsewhere.*outside"):
        preflight.inside(str(tmp_path / "sm"), "m", "--model-name")
    os.symlink(tmp_path / "sm" / "real", tmp_path / "sm" / "inner")
    assert preflight.inside(str(tmp_path / "sm"), "inner", "--model-name").endswith("inner")


def test_train_refuses_an_escaping_model_name(tmp_path, capsys):
    assert train_main(["--model-name", "../../etc", "--export-dir", str(tmp_path / "sm"),
                       "--log-dir", str(tmp_path / "logs")]) == 2
    assert "--model-name '../../etc' must be a plain name" in _one_line(capsys)


def test_a_missing_validation_file_fails_first(tmp_path, capsys):
    argv = ["--data", write_csv(tmp_path / "r.csv", synthetic_rows(40)), "--validation-data",
            str(tmp_path / "nope.csv"), "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs")]
    assert train_main(argv) == 2
    assert "nope.csv' does not exist" in _one_line(capsys)


def test_evaluate_and_predict_outputs_are_checked_before_loading(tmp_path, capsys):
    data = write_csv(tmp_path / "r.csv", synthetic_rows(10))
    (tmp_path / "adir").mkdir()
    assert evaluate_main(["--model", str(tmp_path / "no_model"), "--data", data, "--json", str(tmp_path / "adir")]) == 2
    assert f"--json '{tmp_path / 'adir'}' is a directory; name a file" in _one_line(capsys)
    assert predict_main(["--model", str(tmp_path / "no_model"), "--file", data, "--output",
                         str(tmp_path / "adir" / "x.csv")]) == 2
    message = _one_line(capsys)
    assert "does not exist" in message  # the model is checked after the output: the output was fine


def test_pretrain_checks_its_output_parent(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert pretrain_main(["--output-dir", str(blocker / "preset"), "--log-dir", str(tmp_path / "logs")]) == 2
    assert "is a file; it must be a directory" in _one_line(capsys)
