"""Files and directories that appear complete or not at all.

A reader (TF Serving polling an export base, a resumed run reading its
best epoch) never sees half of something: content is written beside the
target under a hidden name and renamed into place in one step.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

# Errors of a full disk or a file-size limit: reported as such, with what was kept.
DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def disk_full_reason(error: BaseException) -> str | None:
    """The reason, when `error` is a full disk or a file-size limit (an OSError, or TensorFlow's or h5py's
    wrapping of one, which carry only its text); None otherwise."""
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        return error.strerror
    text = str(error)
    return next((os.strerror(code) for code in sorted(DISK_FULL) if os.strerror(code) in text), None)
_STAGED = re.compile(r"^\..+\.tmp-(\d+)-")


def staged_name(name: str) -> str:
    """The prefix of a staging directory for `name`, carrying this process's id (see `remove_stale`)."""
    return f".{name}.tmp-{os.getpid()}-"


def remove_stale(parent: str) -> list[str]:
    """Remove the staging directories in `parent` whose process is gone (killed mid-write); return their names.

    Another live process's staging directory is left alone: two writers can share a parent.
    """
    removed = []
    for entry in os.listdir(parent) if os.path.isdir(parent) else []:
        match = _STAGED.match(entry)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file and one rename."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def staged_directory(target: str, replace: bool = False) -> Iterator[str]:
    """Yield a hidden temporary directory beside `target`; rename it to `target` when the block succeeds.

    Args:
        target: the directory to create.
        replace: remove an existing `target` first (otherwise the rename fails on a non-empty one).

    On an exception the temporary directory is removed and `target` is untouched.
    """
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=staged_name(os.path.basename(os.path.normpath(target))), dir=parent)
    try:
        yield tmp
        if replace and os.path.isdir(target):
            shutil.rmtree(target)
        os.rename(tmp, target)  # atomic on one filesystem
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
