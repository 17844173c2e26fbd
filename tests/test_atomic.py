import os

import pytest

from tfbert import atomic


def test_write_text_replaces_in_one_step(tmp_path):
    path = tmp_path / "sub" / "best.json"
    atomic.write_text(str(path), "one")
    atomic.write_text(str(path), "two")
    assert path.read_text() == "two" and os.listdir(path.parent) == ["best.json"]


def test_staged_directory_appears_complete(tmp_path):
    target = tmp_path / "3"
    with atomic.staged_directory(str(target)) as tmp:
        (open(os.path.join(tmp, "saved_model.pb"), "w")).close()
        assert not target.exists() and os.path.basename(tmp).startswith(".3.tmp-")
    assert os.listdir(target) == ["saved_model.pb"] and os.listdir(tmp_path) == ["3"]


def test_a_failure_leaves_nothing_and_keeps_the_target(tmp_path):
    target = tmp_path / "preset"
    target.mkdir()
    (target / "old").write_text("kept")
    with pytest.raises(RuntimeError):
        with atomic.staged_directory(str(target), replace=True) as tmp:
            open(os.path.join(tmp, "new"), "w").close()
            raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == ["preset"] and (target / "old").read_text() == "kept"


def test_replace_swaps_a_whole_directory(tmp_path):
    target = tmp_path / "preset"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic.staged_directory(str(target), replace=True) as tmp:
        open(os.path.join(tmp, "new"), "w").close()
    assert os.listdir(target) == ["new"]
    with pytest.raises(OSError):
        with atomic.staged_directory(str(target)) as tmp:  # no replace: an existing, non-empty target is refused
            open(os.path.join(tmp, "other"), "w").close()
    assert os.listdir(target) == ["new"] and os.listdir(tmp_path) == ["preset"]


def test_disk_full_is_recognised_in_any_wrapping():
    import errno

    assert atomic.disk_full_reason(OSError(errno.ENOSPC, "No space left on device")) == "No space left on device"
    assert atomic.disk_full_reason(RuntimeError("write failed: File too large [Op:SaveV2]")) == "File too large"
    assert atomic.disk_full_reason(OSError(errno.EACCES, "Permission denied")) is None
    assert atomic.disk_full_reason(ValueError("bad value")) is None
