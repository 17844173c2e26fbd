"""Evaluate an exported model on a labelled file (scikit-learn metrics).

    python evaluate.py --model saved_models/snownlp_sentiment --data test.csv [--json metrics.json]
"""

from __future__ import annotations

import sys

from tfbert.cli import run_script
from tfbert.config import EvaluateConfig


def _run(config: EvaluateConfig) -> int:
    from tfbert.evaluation import evaluate, report, write_json

    metrics = evaluate(config)
    print(report(metrics, metrics["label_names"]))
    if config.json:
        write_json(metrics, config.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(EvaluateConfig, argv, __doc__, _run)


if __name__ == "__main__":
    sys.exit(main())
