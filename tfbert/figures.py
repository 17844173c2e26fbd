"""Pictures of validation results for TensorBoard: confusion matrix, PR / ROC curves, regression plots, mistakes.

Pure matplotlib (the Agg canvas, no pyplot state) and numpy; each task
(`tfbert.tasks`) picks the ones that fit it, and `tfbert.tensorboard` writes them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn import metrics as skm

MAX_CELL_CHARS = 200  # mistakes-table text cells are cut here


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], label_names: Sequence[str]) -> Figure:
    """Counts, rows = true labels, columns = predicted labels."""
    matrix = np.asarray(matrix)
    size = 3.0 + 0.5 * len(label_names)  # inches
    fig = Figure(figsize=(size + 1, size), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(label_names))
    ax.set_xticks(ticks, label_names, rotation=45, ha="right")
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title("Confusion matrix (validation)")
    for (i, j), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        ax.text(j, i, str(count), ha="center", va="center", color="white" if dark else "black")
    fig.tight_layout()
    return fig


def curve_figure(kind: str, truth: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str],
                 labels: Sequence[int]) -> Figure:
    """Precision-recall (`kind="pr"`) or ROC (`"roc"`) curves, one per label id in `labels`.

    Args:
        truth: (n, num_labels) 0/1: whether each text carries each label.
        probabilities: (n, num_labels) scores.
    """
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    for label in labels:
        label_truth, score = truth[:, label] == 1, probabilities[:, label]
        if kind == "pr":
            precision, recall, _ = skm.precision_recall_curve(label_truth, score)
            average_precision = skm.average_precision_score(label_truth, score)
            ax.plot(recall, precision, label=f"{label_names[label]} (AP {average_precision:.3f})")
        else:
            fpr, tpr, _ = skm.roc_curve(label_truth, score)
            ax.plot(fpr, tpr, label=f"{label_names[label]} (AUC {skm.auc(fpr, tpr):.3f})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("recall" if kind == "pr" else "false positive rate")
    ax.set_ylabel("precision" if kind == "pr" else "true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall (validation)" if kind == "pr" else "ROC (validation)")
    ax.legend(loc="lower left" if kind == "pr" else "lower right")
    fig.tight_layout()
    return fig


def scatter_figure(truth: np.ndarray, predicted: np.ndarray) -> Figure:
    """Predicted against true values, with the diagonal a perfect model would sit on."""
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(truth, predicted, s=6, alpha=0.5)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.set_title("Predicted vs true (validation)")
    fig.tight_layout()
    return fig


def residual_histogram(truth: np.ndarray, predicted: np.ndarray) -> Figure:
    """How far predictions land from the truth (predicted - true)."""
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    ax.hist(predicted - truth, bins=40)
    ax.axvline(0.0, linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("residual (predicted - true)")
    ax.set_ylabel("texts")
    ax.set_title("Residuals (validation)")
    fig.tight_layout()
    return fig


def _cell(text: str) -> str:
    """One Markdown table cell: single line, cut, with Markdown's table and emphasis characters escaped."""
    text = " ".join(text.split())
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS] + "…"
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", html.escape(text, quote=False))


def mistakes_table(texts: Sequence[str], label_ids: np.ndarray, probabilities: np.ndarray, predictions: np.ndarray,
                   label_names: Sequence[str], limit: int = 10) -> str:
    """Markdown: the `limit` misclassified texts the model was most sure of, most sure first."""
    wrong = np.flatnonzero(predictions != label_ids)
    confidence = probabilities[wrong, predictions[wrong]]
    worst = wrong[np.argsort(-confidence, kind="stable")][:limit]
    lines = [f"{len(wrong)} of {len(label_ids)} validation texts misclassified; the {len(worst)} most confident:",
             "", "| text | true label | predicted label | probability |", "|---|---|---|---|"]
    for i in worst:
        true_name, predicted_name = label_names[label_ids[i]], label_names[predictions[i]]
        lines.append(f"| {_cell(texts[i])} | {_cell(true_name)} | {_cell(predicted_name)} "
                     f"| {probabilities[i, predictions[i]]:.3f} |")
    return "\n".join(lines)
