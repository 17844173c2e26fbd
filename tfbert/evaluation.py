"""Evaluate an export on a labelled file, exactly as TF Serving would answer it."""

from __future__ import annotations

import json
import logging

import numpy as np

from tfbert import data as data_lib
from tfbert.config import EvaluateConfig
from tfbert.metrics import classification_metrics, format_confusion_matrix, predicted_ids
from tfbert.serving import LocalModel

logger = logging.getLogger(__name__)


def evaluate(config: EvaluateConfig) -> dict:
    """Metrics of the export at `config.model` on `config.data`.

    Columns are the ones named in `config`, else the ones training used (recorded in the export).

    Raises:
        ValueError: the file has a label the model was not trained on, or is unusable.
    """
    model = LocalModel(config.model)
    columns = model.config
    examples = data_lib.load_examples(
        config.data,
        config.text_column or columns.get("text_column", "text"),
        config.label_column or columns.get("label_column", "label"),
        config.text_pair_column or columns.get("text_pair_column"),
    )
    data_lib.check_labels(examples, model.label_names, config.data)
    index = {name: i for i, name in enumerate(model.label_names)}
    label_ids = np.array([index[label] for label in examples.labels], dtype=np.int64)
    probabilities = model.predict(examples.texts, examples.pairs, config.batch_size)
    metrics = classification_metrics(label_ids, probabilities, model.label_names, config.threshold)
    if config.predictions:
        _write_predictions(config.predictions, examples, probabilities, predicted_ids(probabilities, config.threshold),
                           model.label_names)
    metrics["model"] = model.path
    metrics["data"] = config.data
    metrics["label_names"] = model.label_names
    return metrics


def report(metrics: dict, label_names: list[str]) -> str:
    """The article's line, then scikit-learn's report and the confusion matrix."""
    lines = [
        f"Validation Loss: {metrics['loss']:.4f}, Validation Accuracy: {metrics['accuracy']:.4f}",
        "",
        metrics["report"],
        "Confusion matrix (rows: true, columns: predicted):",
        format_confusion_matrix(metrics["confusion_matrix"], label_names),
    ]
    return "\n".join(lines)


def write_json(metrics: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False)


def _write_predictions(path: str, examples: data_lib.Examples, probabilities: np.ndarray, predicted: np.ndarray,
                       names: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, row in enumerate(probabilities):
            record = {"text": examples.texts[i], "label": examples.labels[i], "predicted": names[predicted[i]],
                      "probabilities": {name: round(float(p), 6) for name, p in zip(names, row)}}
            if examples.pairs is not None:
                record["text_pair"] = examples.pairs[i]
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
