"""scikit-learn metrics from probabilities. Pure functions: no TensorFlow here.

Binary tasks report precision/recall/F1 of label 1 (the second label in
sorted order, e.g. "positive" vs "negative") and ROC-AUC of P(label 1);
tasks with more labels report macro averages and one-vs-rest macro ROC-AUC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

EPS = 1e-7  # clip for log loss, as Keras' binary_crossentropy does


def predicted_ids(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """argmax, or for binary models P(label 1) >= threshold."""
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(np.int64)
    return probabilities.argmax(axis=1)


def classification_metrics(
    label_ids: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Loss, accuracy, precision, recall, F1, ROC-AUC, confusion matrix and report.

    Args:
        label_ids: (n,) true label ids.
        probabilities: (n, num_labels) per-label probabilities (rows sum to 1).
        label_names: names of label ids 0..num_labels-1.
        threshold: decision threshold on P(label 1), binary tasks only.
    """
    label_ids = np.asarray(label_ids, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_labels = len(label_names)
    predictions = predicted_ids(probabilities, threshold)
    binary = n_labels == 2
    average = "binary" if binary else "macro"
    ids = list(range(n_labels))
    p_true = np.clip(probabilities[np.arange(len(label_ids)), label_ids], EPS, 1.0)
    result: dict[str, Any] = {
        "num_examples": int(len(label_ids)),
        "loss": float(-np.log(p_true).mean()) if len(label_ids) else float("nan"),
        "accuracy": float(skm.accuracy_score(label_ids, predictions)),
        "precision": float(skm.precision_score(label_ids, predictions, average=average, labels=ids if not binary else None, zero_division=0)),
        "recall": float(skm.recall_score(label_ids, predictions, average=average, labels=ids if not binary else None, zero_division=0)),
        "f1": float(skm.f1_score(label_ids, predictions, average=average, labels=ids if not binary else None, zero_division=0)),
        "average": average,
    }
    if binary:
        result["threshold"] = threshold
    present = np.unique(label_ids)
    if len(present) == n_labels:
        if binary:
            result["roc_auc"] = float(skm.roc_auc_score(label_ids, probabilities[:, 1]))
        else:
            result["roc_auc"] = float(skm.roc_auc_score(label_ids, probabilities, multi_class="ovr", average="macro", labels=ids))
    else:
        result["roc_auc"] = None  # undefined when a label is absent from the data
    result["confusion_matrix"] = skm.confusion_matrix(label_ids, predictions, labels=ids).tolist()
    result["report"] = skm.classification_report(
        label_ids, predictions, labels=ids, target_names=list(label_names), digits=4, zero_division=0
    )
    return result


def format_confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str]) -> str:
    """Rows are true labels, columns predicted labels."""
    width = max(8, *(len(name) for name in label_names)) + 1
    lines = ["true \\ predicted".ljust(width) + "".join(name.rjust(width) for name in label_names)]
    for name, row in zip(label_names, matrix):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)
