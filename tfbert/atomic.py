"""Files and directories that appear complete or not at all.

A reader (TF Serving polling an export base, a resumed run reading its
best epoch) never sees half of something: content is written beside the
target under a hidden name and renamed into place in one step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


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
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.normpath(target))}.tmp-", dir=parent)
    try:
        yield tmp
        if replace and os.path.isdir(target):
            shutil.rmtree(target)
        os.rename(tmp, target)  # atomic on one filesystem
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
