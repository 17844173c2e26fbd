"""scikit-learn metrics from probabilities. Pure functions: no TensorFlow here.

The task (`tfbert.tasks`) decides how probabilities become predictions, how
precision/recall/F1 are averaged and which scores ROC-AUC ranks; these
functions compute what they are told.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

EPS = 1e-7  # clip for log loss, as Keras' binary_crossentropy does


def log_loss(label_ids: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log probability of the true label (NaN for no examples)."""
    if not len(label_ids):
        return float("nan")
    p_true = np.clip(probabilities[np.arange(len(label_ids)), label_ids], EPS, 1.0)
    return float(-np.log(p_true).mean())


def classification_metrics(label_ids: np.ndarray, probabilities: np.ndarray, predictions: np.ndarray,
                           label_names: Sequence[str], average: str, auc_scores: np.ndarray) -> dict[str, Any]:
    """Loss, accuracy, precision, recall, F1, ROC-AUC and the confusion matrix.

    Args:
        label_ids: (n,) true label ids.
        probabilities: (n, num_labels) per-label probabilities (rows sum to 1).
        predictions: (n,) predicted label ids.
        label_names: names of label ids 0..num_labels-1.
        average: scikit-learn's `average` for precision/recall/F1 ("binary": of label 1; "macro").
        auc_scores: what ROC-AUC ranks: (n,) P(label 1), or (n, num_labels) for one-vs-rest macro AUC.
    """
    label_ids = np.asarray(label_ids, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    ids = list(range(len(label_names)))
    labels = None if average == "binary" else ids
    result: dict[str, Any] = {
        "num_examples": int(len(label_ids)),
        "loss": log_loss(label_ids, probabilities),
        "accuracy": float(skm.accuracy_score(label_ids, predictions)),
        "precision": float(skm.precision_score(label_ids, predictions, average=average, labels=labels, zero_division=0)),
        "recall": float(skm.recall_score(label_ids, predictions, average=average, labels=labels, zero_division=0)),
        "f1": float(skm.f1_score(label_ids, predictions, average=average, labels=labels, zero_division=0)),
        "average": average,
        "roc_auc": None,  # undefined when a label is absent from the data
        "confusion_matrix": skm.confusion_matrix(label_ids, predictions, labels=ids).tolist(),
    }
    if len(np.unique(label_ids)) == len(label_names):
        result["roc_auc"] = float(skm.roc_auc_score(label_ids, auc_scores, multi_class="ovr", average="macro",
                                                    labels=ids))
    return result


def text_report(label_ids: np.ndarray, predictions: np.ndarray, label_names: Sequence[str]) -> str:
    """scikit-learn's per-label precision/recall/F1/support table."""
    return skm.classification_report(label_ids, predictions, labels=list(range(len(label_names))),
                                      target_names=list(label_names), digits=4, zero_division=0)


def format_confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str]) -> str:
    """Rows are true labels, columns predicted labels."""
    width = max(8, *(len(name) for name in label_names)) + 1
    lines = ["true \\ predicted".ljust(width) + "".join(name.rjust(width) for name in label_names)]
    for name, row in zip(label_names, matrix):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def loss_and_accuracy(metrics: dict[str, Any]) -> str:
    """The article's one-line summary of a metrics dict."""
    return f"Validation Loss: {metrics['loss']:.4f}, Validation Accuracy: {metrics['accuracy']:.4f}"


def multi_label_metrics(truth: np.ndarray, probabilities: np.ndarray, predictions: np.ndarray,
                        label_names: Sequence[str]) -> dict[str, Any]:
    """Micro / macro / samples F1, subset accuracy, Hamming loss, and per label precision, recall, F1, support, ROC-AUC.

    Args:
        truth: (n, num_labels) 0/1, the true sets.
        probabilities: (n, num_labels) per-label probabilities.
        predictions: (n, num_labels) 0/1, the predicted sets.
    """
    truth, predictions = np.asarray(truth, np.int64), np.asarray(predictions, np.int64)
    p = np.clip(np.asarray(probabilities, np.float64), EPS, 1 - EPS)
    loss = float(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p))) if len(truth) else float("nan")
    precision, recall, f1, support = skm.precision_recall_fscore_support(truth, predictions, average=None,
                                                                         zero_division=0)
    per_label = {}
    for i, name in enumerate(label_names):
        both_seen = 0 < truth[:, i].sum() < len(truth)  # ROC-AUC needs positives and negatives
        per_label[name] = {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                           "support": int(support[i]),
                           "roc_auc": float(skm.roc_auc_score(truth[:, i], p[:, i])) if both_seen else None}
    return {
        "num_examples": int(len(truth)),
        "loss": loss,
        "micro_f1": float(skm.f1_score(truth, predictions, average="micro", zero_division=0)),
        "macro_f1": float(skm.f1_score(truth, predictions, average="macro", zero_division=0)),
        "samples_f1": float(skm.f1_score(truth, predictions, average="samples", zero_division=1.0)),
        "subset_accuracy": float(skm.accuracy_score(truth, predictions)),
        "hamming_loss": float(skm.hamming_loss(truth, predictions)),
        "per_label": per_label,
    }


def text_report_multi_label(per_label: dict[str, dict[str, Any]], label_names: Sequence[str]) -> str:
    """One line per label: precision, recall, F1, support and ROC-AUC."""
    width = max(8, *(len(name) for name in label_names)) + 1
    lines = ["label".ljust(width) + "".join(h.rjust(11) for h in ("precision", "recall", "f1", "support", "roc_auc"))]
    for name in label_names:
        row = per_label[name]
        auc = "n/a" if row["roc_auc"] is None else f"{row['roc_auc']:.4f}"
        lines.append(name.ljust(width) + f"{row['precision']:11.4f}{row['recall']:11.4f}{row['f1']:11.4f}"
                     f"{row['support']:11d}{auc:>11}")
    return "\n".join(lines)


def huber(residuals: np.ndarray, delta: float = 1.0) -> np.ndarray:
    """Keras' Huber loss per element."""
    absolute = np.abs(residuals)
    return np.where(absolute <= delta, 0.5 * np.square(residuals), delta * absolute - 0.5 * delta * delta)


def regression_metrics(truth: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE, R^2, Pearson's and Spearman's correlation (None where undefined: constant values)."""
    from scipy import stats

    truth, predictions = np.asarray(truth, np.float64), np.asarray(predictions, np.float64)
    varied = len(truth) > 1 and np.ptp(truth) > 0 and np.ptp(predictions) > 0
    return {
        "num_examples": int(len(truth)),
        "rmse": float(np.sqrt(skm.mean_squared_error(truth, predictions))) if len(truth) else float("nan"),
        "mae": float(skm.mean_absolute_error(truth, predictions)) if len(truth) else float("nan"),
        "r2": float(skm.r2_score(truth, predictions)) if len(truth) > 1 else None,
        "pearson": float(stats.pearsonr(truth, predictions)[0]) if varied else None,
        "spearman": float(stats.spearmanr(truth, predictions)[0]) if varied else None,
    }
