"""What the task is: how labels become targets, the head, the loss, the metrics, and how outputs become answers.

One object per task type, so the rest of tfbert never branches on it.
`ClassificationTask` is single-label classification, binary or multi-class:

- 2 labels: one sigmoid unit, P(label 1), binary cross-entropy; precision,
  recall and F1 of label 1 (the second in sorted order, e.g. "positive"
  against "negative"); ROC-AUC of P(label 1); label 1 is predicted when
  P(label 1) >= `threshold`.
- more: a softmax over the labels, sparse categorical cross-entropy; macro
  precision/recall/F1 and one-vs-rest macro ROC-AUC; argmax.

Label names are sorted numerically when they all look like integers,
alphabetically otherwise, so label ids are stable across runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from tfbert import metrics as metrics_lib


def sorted_label_names(labels: Sequence[str]) -> tuple[str, ...]:
    """Distinct labels: numerically when all are integers, else alphabetically."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    """Single-label classification over `label_names` (label id i is `label_names[i]`).

    Args:
        label_names: tuple of str, at least 2.
        threshold: float. Binary tasks: predict label 1 when P(label 1) >= this.
    """

    label_names: tuple[str, ...]
    threshold: float = 0.5
    name = "classification"

    def __post_init__(self):
        if len(self.label_names) < 2:
            raise ValueError(
                f"The training data has only {len(self.label_names)} class "
                f"({', '.join(map(repr, self.label_names))}); a classifier needs at least 2. Check --label-column."
            )

    @classmethod
    def from_labels(cls, labels: Sequence[str], threshold: float = 0.5) -> ClassificationTask:
        return cls(sorted_label_names(labels), threshold)

    @property
    def binary(self) -> bool:
        return len(self.label_names) == 2

    # === Labels ===

    def check_labels(self, labels: Sequence[str], source: str) -> None:
        """Raise when `labels` holds a label that is not one of `label_names` (one training never saw)."""
        unknown = sorted(set(labels) - set(self.label_names))
        if unknown:
            raise ValueError(
                f"{source} has labels that training never saw: {', '.join(map(repr, unknown[:10]))}. "
                f"Known labels: {', '.join(map(repr, self.label_names))}. Fix the labels or retrain with them."
            )

    def label_ids(self, labels: Sequence[str]) -> np.ndarray:
        """(n,) int64 label ids."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return np.array([index[label] for label in labels], dtype=np.int64)

    def targets(self, labels: Sequence[str]) -> np.ndarray:
        """What the loss compares the head's output with: (n, 1) float P(label 1) targets, or (n,) int32 ids."""
        ids = self.label_ids(labels)
        return ids.astype(np.float32)[:, None] if self.binary else ids.astype(np.int32)

    # === Head, loss, training metrics ===

    @property
    def output_units(self) -> int:
        return 1 if self.binary else len(self.label_names)

    @property
    def activation(self) -> str:
        return "sigmoid" if self.binary else "softmax"

    def loss(self) -> keras.losses.Loss:
        if self.binary:
            return keras.losses.BinaryCrossentropy()
        return keras.losses.SparseCategoricalCrossentropy()

    def training_metrics(self) -> list[keras.metrics.Metric]:
        if self.binary:
            return [keras.metrics.BinaryAccuracy(name="accuracy")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # === Outputs -> answers ===

    def probabilities(self, outputs):
        """Head outputs (batch, output_units) -> (batch, num_labels) probabilities (TensorFlow or numpy)."""
        if self.binary:
            return ops.concatenate([1.0 - outputs, outputs], axis=-1)
        return outputs

    def predictions(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(n,) predicted label ids from (n, num_labels) probabilities."""
        if self.binary:
            return (probabilities[:, 1] >= (self.threshold if threshold is None else threshold)).astype(np.int64)
        return probabilities.argmax(axis=1)

    def evaluate(self, label_ids: np.ndarray, probabilities: np.ndarray,
                 threshold: float | None = None) -> dict[str, Any]:
        """scikit-learn metrics of `probabilities` against the true `label_ids` (`tfbert.metrics`)."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        result = metrics_lib.classification_metrics(
            label_ids, probabilities, self.predictions(probabilities, threshold), self.label_names,
            average="binary" if self.binary else "macro",
            auc_scores=probabilities[:, 1] if self.binary else probabilities)
        if self.binary:
            result["threshold"] = self.threshold if threshold is None else threshold
        return result

    def report(self, label_ids: np.ndarray, probabilities: np.ndarray, threshold: float | None = None) -> str:
        """scikit-learn's per-label table and the confusion matrix, as text."""
        predictions = self.predictions(np.asarray(probabilities), threshold)
        matrix = self.evaluate(label_ids, probabilities, threshold)["confusion_matrix"]
        return "\n".join([metrics_lib.text_report(label_ids, predictions, self.label_names),
                          "Confusion matrix (rows: true, columns: predicted):",
                          metrics_lib.format_confusion_matrix(matrix, self.label_names)])

    @property
    def curve_labels(self) -> list[int]:
        """Labels that get a PR / ROC curve: label 1 of a binary task, else every label."""
        return [1] if self.binary else list(range(len(self.label_names)))

    def baseline_estimator(self):
        """The classic model on TF-IDF features: logistic regression (C=4, as calibrated on the default corpus)."""
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=4.0, max_iter=2000)
