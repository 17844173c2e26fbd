"""What a run shows on the console: a quiet framework start-up unless `--verbose`, and the next commands at its end.

TensorFlow's C++ runtime writes start-up notices straight to the process's
stderr before any Python logging exists: CUDA probing on a machine without a
GPU ("Could not find cuda drivers", "failed call to cuInit"), oneDNN notes,
absl's "All log messages before absl::InitializeLog()". TF_CPP_MIN_LOG_LEVEL
does not reach those, so `quiet_startup` imports TensorFlow and probes its
devices with file descriptor 2 pointed at /dev/null, then raises the C++ log
level so later notices stay hidden too. Python exceptions still reach the
user: they print after stderr is restored. `--verbose` keeps everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys

QUIET_LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib")


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_startup(verbose: bool) -> None:
    """Import TensorFlow without its C++ start-up notices (all of them with `verbose`), and quiet its loggers.

    A no-op for the C++ part when TensorFlow is already imported (in tests, or a notebook).
    """
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # later C++ notices too (e.g. oneDNN's int64 fallback)
    if "tensorflow" not in sys.modules:
        with _stderr_to_devnull():
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe happens here, once
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def serving_command(export_dir: str, model_name: str) -> str:
    """The TF Serving command that serves `<export_dir>/<model_name>` under its own name on port 8501."""
    source = shlex.quote(os.path.abspath(os.path.join(export_dir, model_name)))
    return (f"docker run --rm -p 8501:8501 -v {source}:/models/{model_name} -e MODEL_NAME={model_name} "
            "tensorflow/serving")


def next_steps(run_dir: str, export_dir: str, model_name: str, sample: str) -> str:
    """The commands to run after training: TensorBoard, predict, evaluate and serve (`sample`: a text to predict)."""
    model = shlex.quote(os.path.join(export_dir, model_name))
    text = shlex.quote(sample or "text")
    return "\n".join([
        "Next:",
        f"  tensorboard --logdir {shlex.quote(os.path.dirname(run_dir) or '.')}",
        f"  python predict.py --model {model} {text}",
        f"  python evaluate.py --model {model} --data <labelled file>",
        f"  {serving_command(export_dir, model_name)}",
        f"  curl http://localhost:8501/v1/models/{model_name}   # health: state AVAILABLE",
    ])
