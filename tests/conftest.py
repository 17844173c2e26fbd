"""Shared fixtures: a tiny vocabulary, a small synthetic review file, and one tiny trained export.

Everything here is built from config in seconds; nothing is downloaded.
"""

from __future__ import annotations

import csv
import os
import random

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POSITIVE = ["好", "棒", "喜欢", "满意", "推荐", "great"]
NEGATIVE = ["差", "烂", "讨厌", "失望", "退货", "bad"]
FILLER = list("这个手机书酒店服务质量价格快递我们很的了是")
CHARS = sorted(set("".join(POSITIVE + NEGATIVE + FILLER)) - set("greatbd"))
TINY_VOCAB = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", *CHARS, "great", "bad", "a", "b", "##c", ",", "，", "!"]


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Reviews whose sentiment word decides the label; texts are distinct."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.choice(["positive", "negative"])
        words = POSITIVE if label == "positive" else NEGATIVE
        text = "".join(rng.choices(FILLER, k=rng.randint(2, 12))) + rng.choice(words) + "".join(rng.choices(FILLER, k=rng.randint(0, 6)))
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    return rows


def write_csv(path, rows, fieldnames=("text", "label"), delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    import keras_hub

    return keras_hub.models.BertTokenizer(vocabulary=TINY_VOCAB, lowercase=True)


# Flags for a model that trains in seconds.
TINY_FLAGS = [
    "--num-layers", "1", "--hidden-dim", "16", "--num-heads", "2", "--intermediate-dim", "32",
    "--vocabulary-size", "200", "--max-seq-length", "32", "--batch-size", "16", "--learning-rate", "5e-3",
]


@pytest.fixture(scope="session")
def review_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", synthetic_rows(400))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, review_csv):
    """One tiny training run through the package, shared by the export/evaluate/predict tests."""
    from tfbert.cli import parse_config
    from tfbert.config import TrainConfig
    from tfbert.training import train

    out = tmp_path_factory.mktemp("run")
    argv = ["--data", review_csv, "--epochs", "4", "--export-dir", str(out / "saved_models"),
            "--log-dir", str(out / "logs"), "--run-name", "tiny", *TINY_FLAGS]
    return train(parse_config(TrainConfig, argv, ""))


@pytest.fixture(scope="module")
def tiny_model(tiny_tokenizer):
    """A 2-layer, 16-wide binary classifier with the fast layers, built from config."""
    import keras

    from tfbert.config import ModelConfig
    from tfbert.keras_compat import use_fast_layers
    from tfbert.model import build_backbone, build_classifier

    keras.utils.set_random_seed(0)
    backbone = build_backbone(ModelConfig(num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32),
                              tiny_tokenizer.vocabulary_size(), 128)
    return use_fast_layers(build_classifier(backbone, 1, "sigmoid"))


@pytest.fixture(scope="module")
def preprocessors(tiny_tokenizer):
    """The tiny vocabulary's preprocessors at 32, 64 and 128 tokens."""
    from tfbert.preprocessor import TextPreprocessor

    return {n: TextPreprocessor.from_tokenizer(tiny_tokenizer, n) for n in (32, 64, 128)}
