"""Classify texts with an exported model: one JSON object per line.

    python predict.py --model saved_models/snownlp_sentiment 很好 太差了
    python predict.py --model saved_models/snownlp_sentiment --file texts.txt
    echo 很好 | python predict.py --model saved_models/snownlp_sentiment
"""

from __future__ import annotations

import json
import sys

from tfbert.cli import run_script
from tfbert.config import PredictConfig


def _read_texts(config: PredictConfig) -> list[str]:
    if config.texts:
        return list(config.texts)
    if config.file:
        with open(config.file, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f if line.strip()]
    return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]


def _run(config: PredictConfig) -> int:
    from tfbert.serving import LocalModel

    texts = _read_texts(config)
    model = LocalModel(config.model)
    probabilities = model.predict(texts, batch_size=config.batch_size)
    for text, row in zip(texts, probabilities):
        best = int(row.argmax())
        record = {
            "text": text,
            "label": model.label_names[best],
            "probabilities": {name: round(float(p), 6) for name, p in zip(model.label_names, row)},
        }
        print(json.dumps(record, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(PredictConfig, argv, __doc__, _run)


if __name__ == "__main__":
    sys.exit(main())
