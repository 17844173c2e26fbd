"""Evaluate an export on a labelled file, exactly as TF Serving would answer it."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import numpy as np

from tfbert import data as data_lib
from tfbert.config import EvaluateConfig
from tfbert.metrics import loss_and_accuracy
from tfbert.serving import ExportMetadata, LocalModel, prediction_records
from tfbert.tasks import ClassificationTask

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """scikit-learn's metrics (with the model, data and label names) and the printed report."""

    metrics: dict[str, Any]
    report: str


def evaluate(config: EvaluateConfig) -> Evaluation:
    """Metrics of the export at `config.model` on `config.data`.

    Columns are the ones named in `config`, else the ones training used (recorded in the export).

    Raises:
        ValueError: the file has a label the model was not trained on, or is unusable.
    """
    model = LocalModel(config.model)
    recorded = model.metadata or ExportMetadata(model_name="", task="classification",
                                                label_names=tuple(model.label_names))
    examples = data_lib.load_examples(
        config.data,
        config.text_column or recorded.text_column,
        config.label_column or recorded.label_column,
        config.text_pair_column or recorded.text_pair_column,
    )
    task = ClassificationTask(tuple(model.label_names), config.threshold)
    task.check_labels(examples.labels, config.data)
    label_ids = task.label_ids(examples.labels)
    probabilities = model.predict(examples.texts, examples.pairs, config.batch_size)
    metrics = task.evaluate(label_ids, probabilities)
    if config.predictions:
        _write_predictions(config.predictions, examples, probabilities, task)
    report = "\n".join([loss_and_accuracy(metrics), "", task.report(label_ids, probabilities)])
    return Evaluation({**metrics, "model": model.path, "data": config.data, "label_names": list(task.label_names)},
                      report)


def write_json(metrics: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False)


def _write_predictions(path: str, examples: data_lib.Examples, probabilities: np.ndarray,
                       task: ClassificationTask) -> None:
    """One JSON line per example: the prediction record, with the true label as `label` and the prediction as `predicted`."""
    records = prediction_records(examples.texts, examples.pairs, probabilities, task.predictions(probabilities),
                                 task.label_names)
    with open(path, "w", encoding="utf-8") as f:
        for record, label in zip(records, examples.labels):
            record = {**record, "label": label, "predicted": record["label"]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
