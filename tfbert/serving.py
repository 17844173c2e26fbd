"""Answer texts from an exported SavedModel. Imports only tensorflow + tensorflow_text.

`evaluate.py` and `predict.py` share this, so they see the model exactly as
TF Serving does: raw strings in, `probabilities` and `label` out.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

logger = logging.getLogger(__name__)

ASSETS_EXTRA = "assets.extra"


def resolve_version_dir(path: str) -> str:
    """A version dir as is, or the newest integer version under a model dir.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is neither an export version nor a model dir holding one.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"--model {path!r} does not exist. Point it at <export-dir>/<model-name>.")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = []
    if os.path.isdir(path):
        versions = sorted(int(n) for n in os.listdir(path) if n.isdigit() and os.path.isfile(os.path.join(path, n, "saved_model.pb")))
    if not versions:
        raise ValueError(
            f"--model {path!r} is not a tfbert export: expected saved_model.pb in it, or integer version "
            "dirs holding one (as train.py writes to <export-dir>/<model-name>/<version>/)."
        )
    return os.path.join(path, str(versions[-1]))


class LocalModel:
    """A loaded export. `predict(texts)` -> (batch, num_labels) float32 probabilities."""

    def __init__(self, path: str):
        self.path = resolve_version_dir(path)
        extra = os.path.join(self.path, ASSETS_EXTRA)
        labels_path = os.path.join(extra, "labels.txt")
        if not os.path.isfile(labels_path):
            raise ValueError(f"{self.path!r} has no {ASSETS_EXTRA}/labels.txt; it was not exported by tfbert.")
        with open(labels_path, encoding="utf-8") as f:
            self.label_names = [line.rstrip("\n") for line in f if line.rstrip("\n")]
        config_path = os.path.join(extra, "config.json")
        self.config = {}
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as f:
                self.config = json.load(f)
        self.pair = bool(self.config.get("text_pair_column"))
        self._loaded = tf.saved_model.load(self.path)
        self._serve = self._loaded.signatures["serving_default"]
        logger.info("Loaded %s (labels: %s)", self.path, ", ".join(self.label_names))

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64) -> np.ndarray:
        if self.pair and pairs is None:
            raise ValueError(f"{self.path!r} is a sentence-pair model; give a text_pair for every text.")
        chunks = []
        for start in range(0, len(texts), batch_size):
            inputs = {"text": tf.constant(list(texts[start : start + batch_size]), tf.string)}
            if self.pair:
                inputs["text_pair"] = tf.constant(list(pairs[start : start + batch_size]), tf.string)
            chunks.append(self._serve(**inputs)["probabilities"].numpy())
        if not chunks:
            return np.zeros((0, len(self.label_names)), np.float32)
        return np.concatenate(chunks)
