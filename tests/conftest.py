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


TOPICS = {"价格": "price", "快递": "delivery", "服务": "service"}


def synthetic_task_rows(n: int, seed: int = 0) -> list[dict]:
    """Reviews with a second text, tags (sentiment + the topics they mention) and a score the words decide."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        positive = rng.random() < 0.5
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        topics = [t for t in TOPICS if rng.random() < 0.4]
        text = "".join(rng.choices(FILLER, k=rng.randint(2, 8))) + word + "".join(topics)
        if text in seen:
            continue
        seen.add(text)
        tags = (["positive"] if positive else []) + [TOPICS[t] for t in topics]
        rows.append({"text": text, "pair": "".join(rng.choices(FILLER, k=3)), "tags": tags,
                     "score": round(1.0 + 2.0 * positive + 0.5 * len(topics) + rng.random() * 0.2, 4)})
    return rows


def write_task_files(directory, rows) -> dict:
    """The same rows as each task's file: JSONL lists, the wide CSV form (with pairs), and a regression CSV (with pairs)."""
    import json

    names = ["delivery", "positive", "price", "service"]
    with open(directory / "tags.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"text": row["text"], "label": row["tags"]}, ensure_ascii=False) + "\n")
    wide = [{"text": r["text"], "pair": r["pair"], **{n: int(n in r["tags"]) for n in names}} for r in rows]
    scores = [{"text": r["text"], "pair": r["pair"], "label": r["score"]} for r in rows]
    return {"tags.jsonl": str(directory / "tags.jsonl"),
            "wide.csv": write_csv(directory / "wide.csv", wide, ["text", "pair", *names]),
            "scores.csv": write_csv(directory / "scores.csv", scores, ["text", "pair", "label"])}


TASK_RUNS = {
    "multi_label": ["--task", "multi_label", "--data", "tags.jsonl"],
    "multi_label_wide_pairs": ["--task", "multi_label", "--data", "wide.csv", "--text-pair-column", "pair",
                               "--label-columns", "delivery,positive,price,service"],
    "regression_pairs": ["--task", "regression", "--data", "scores.csv", "--text-pair-column", "pair"],
}


@pytest.fixture(scope="session")
def task_files(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("tasks"), synthetic_task_rows(400))


@pytest.fixture(scope="session")
def task_runs(tmp_path_factory, task_files):
    """One tiny training run per new task form (multi-label lists, wide multi-label with pairs, regression with pairs)."""
    from tfbert.cli import parse_config
    from tfbert.config import TrainConfig
    from tfbert.training import train

    out = tmp_path_factory.mktemp("task_runs")
    results = {}
    for name, argv in TASK_RUNS.items():
        argv = [task_files.get(a, a) for a in argv]
        argv += ["--epochs", "4", "--export-dir", str(out / "sm"), "--log-dir", str(out / "logs"), "--run-name", name,
                 "--model-name", name, *TINY_FLAGS]
        results[name] = train(parse_config(TrainConfig, argv, ""))
    return results
