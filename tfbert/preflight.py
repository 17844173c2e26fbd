"""Checks that run before any data is read or any step trained: a run that would fail at its end fails at its start.

Each check raises the usual one-line error (the scripts print it and exit 2):
output directories that cannot be created or written, or that are files;
output files that cannot be written; input files that do not exist; a
preset or `--init-from` that cannot be loaded from here; a model name that
would write outside the export directory.
"""

from __future__ import annotations

import logging
import os
import tempfile

from tfbert import presets
from tfbert.config import DEFAULT_PRESET, EvaluateConfig, PredictConfig, PretrainConfig, TrainConfig
from tfbert.files import FORMATS, STREAM_FORMATS, check_path

logger = logging.getLogger(__name__)


def writable_dir(path: str, flag: str) -> None:
    """`path` is a directory this process can write in, or one it can create: nothing is created here."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{flag} {path!r} is a file; it must be a directory. Pass another {flag}.")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the deepest directory that exists: the run creates the rest in it
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NotADirectoryError(f"{flag} {path!r} cannot be created: {existing!r} is a file. Pass another {flag}.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise PermissionError(f"{flag} {path!r} cannot be written ({error.strerror} in {existing!r}). Pass a "
                              f"directory you can write to as {flag}.") from None


def writable_file(path: str, flag: str) -> None:
    """`path` can be written: not a directory, in a directory that exists or can be created and written."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{flag} {path!r} is a directory; name a file.")
    writable_dir(os.path.dirname(os.path.abspath(path)), f"The directory of {flag}")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"{flag} {path!r} exists and cannot be overwritten. Name another file.")


def single_name(value: str, flag: str) -> None:
    """`value` names one directory entry: no separators, no `..`, not absolute, not empty."""
    separators = [sep for sep in (os.sep, os.altsep, "/", "\\") if sep]
    if not value or value in (".", "..") or any(sep in value for sep in separators) or os.path.isabs(value):
        raise ValueError(f"{flag} {value!r} must be a plain name (no '/', '\\\\' or '..'): it names a directory "
                         "inside the export directory.")


def inside(base: str, name: str, flag: str) -> str:
    """`base/name`, refused when a symlink there points outside `base`."""
    single_name(name, flag)
    path = os.path.join(base, name)
    real_base, real_path = os.path.realpath(base), os.path.realpath(path)
    if os.path.commonpath([real_base, real_path]) != real_base:
        raise ValueError(f"{flag} {name!r}: {path!r} is a link to {real_path!r}, outside {base!r}; exports stay "
                         "inside the export directory. Remove the link or pick another name.")
    return path


def train(config: TrainConfig, model_name: str) -> None:
    """Everything `train.py` can check before reading data."""
    writable_dir(config.log_dir, "--log-dir")
    writable_dir(config.export_dir, "--export-dir")
    writable_dir(inside(config.export_dir, model_name, "--model-name"), "--model-name")
    if config.backup_dir:
        writable_dir(config.backup_dir, "--backup-dir")
    for path in (config.data, config.validation_data):
        if path:
            check_path(path, "Data file", FORMATS)
    if config.backbone_preset:
        presets.check_preset(config.backbone_preset)
    elif config.preset is None:
        logger.warning(
            "--data without --preset trains a small BERT from scratch, which learns the language from your labels "
            "alone and often stays below the TF-IDF baseline. A pretrained BERT does better: --preset %s (Chinese, "
            "shipped with tfbert, offline), a keras-hub preset such as bert_base_zh, bert_base_en_uncased or "
            "bert_base_multi (downloaded once), or a local keras-hub or Hugging Face BERT directory. "
            "--preset scratch keeps this choice without the warning.", DEFAULT_PRESET)


def pretrain(config: PretrainConfig) -> None:
    writable_dir(config.log_dir, "--log-dir")
    writable_dir(os.path.dirname(os.path.abspath(config.output_dir)), "The directory of --output-dir")
    for path in config.text_files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Text file {path!r} does not exist (pretrain.py takes plain text, one text "
                                    "per line).")
    if config.init_from:
        presets.check_preset(config.init_from, "--init-from")


def evaluate(config: EvaluateConfig) -> None:
    check_path(config.data, "Data file", FORMATS)
    for flag, path in (("--json", config.json), ("--predictions", config.predictions)):
        if path:
            writable_file(path, flag)


def predict(config: PredictConfig) -> None:
    if config.file:
        check_path(config.file, "--file", STREAM_FORMATS)
    if config.output:
        writable_file(config.output, "--output")
