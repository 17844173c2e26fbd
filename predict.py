"""Classify texts with an exported model: one JSON object per line.

For a sentence-pair model, give each input as "text<TAB>text_pair".

    python predict.py --model saved_models/snownlp_sentiment 很好 太差了
    python predict.py --model saved_models/snownlp_sentiment --file texts.txt
    echo 很好 | python predict.py --model saved_models/snownlp_sentiment
    python predict.py --server http://localhost:8501 --model-name snownlp_sentiment 很好
"""

from __future__ import annotations

import json
import os
import sys

from tfbert.cli import run_script
from tfbert.config import PredictConfig


def _read_texts(config: PredictConfig) -> list[str]:
    if config.texts:
        return list(config.texts)
    if config.file:
        if not os.path.isfile(config.file):
            raise FileNotFoundError(f"--file {config.file!r} does not exist.")
        with open(config.file, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f if line.strip()]
    return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]


def _split_pairs(texts: list[str]) -> tuple[list[str], list[str]]:
    firsts, seconds = [], []
    for number, line in enumerate(texts, 1):
        if "\t" not in line:
            raise ValueError(
                f"Input {number} ({line[:40]!r}) has no tab: this is a sentence-pair model; "
                "give each input as text<TAB>text_pair."
            )
        first, second = line.split("\t", 1)
        firsts.append(first)
        seconds.append(second)
    return firsts, seconds


def _run(config: PredictConfig) -> int:
    from tfbert.serving import LocalModel, RemoteModel

    texts = _read_texts(config)
    if config.server:
        model = RemoteModel(config.server, config.model_name, config.version, config.request_format)
    else:
        model = LocalModel(config.model)
    pairs = None
    if model.pair:
        texts, pairs = _split_pairs(texts)
    probabilities = model.predict(texts, pairs, batch_size=config.batch_size)
    for i, row in enumerate(probabilities):
        record = {"text": texts[i]}
        if pairs is not None:
            record["text_pair"] = pairs[i]
        record["label"] = model.label_names[int(row.argmax())]
        record["probabilities"] = {name: round(float(p), 6) for name, p in zip(model.label_names, row)}
        print(json.dumps(record, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(PredictConfig, argv, __doc__, _run)


if __name__ == "__main__":
    sys.exit(main())
