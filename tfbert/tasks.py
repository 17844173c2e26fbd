"""What the task is: how labels become targets, the head, the loss, the metrics, and how outputs become answers.

One class per task type, so the rest of tfbert never branches on it:

- `ClassificationTask`: one label per text, binary or multi-class. 2 labels:
  one sigmoid unit, P(label 1), binary cross-entropy; precision/recall/F1 of
  label 1 (the second in sorted order, e.g. "positive" against "negative");
  label 1 is predicted when P(label 1) >= `threshold`. More labels: a softmax,
  sparse categorical cross-entropy, macro precision/recall/F1 and
  one-vs-rest ROC-AUC, argmax.
- `MultiLabelTask`: any set of labels per text, the empty set included. A
  sigmoid per label, binary cross-entropy; a label is predicted when its
  probability >= `threshold`.
- `RegressionTask`: one number per text. A linear unit trained on
  standardized targets with MSE (or Huber); answers come back in the
  original units (`mean` + `std` x output).

A task is built from the training split (`for_training`), recorded in the
export (`to_config`), and rebuilt from it by evaluate.py and predict.py
(`from_config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from tfbert import figures, losses
from tfbert import metrics as metrics_lib
from tfbert.config import TASK_METRICS
from tfbert.serving import Answers


def sorted_label_names(labels: Sequence[str]) -> tuple[str, ...]:
    """Distinct labels: numerically when all are integers, else alphabetically."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=int))
    except ValueError:
        return tuple(sorted(distinct))


class Task:
    """The interface every task implements (see the module docstring)."""

    name: ClassVar[str]
    score_output: ClassVar[str] = "probabilities"  # the serving output evaluate.py scores
    metric_names: ClassVar[tuple[str, ...]]  # scalar validation metrics, as `--metric-for-best-model` names them
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"loss"})
    log_names: ClassVar[dict[str, str]] = {}  # metric -> its name in Keras' logs and TensorBoard, where they differ
    label_names: tuple[str, ...] = ()

    def monitor(self, metric: str) -> tuple[str, str]:
        """The Keras log name and mode ("min" / "max") that early stopping and checkpoints follow for `metric`."""
        return f"val_{self.log_names.get(metric, metric)}", "min" if metric in self.lower_is_better else "max"

    def epoch_logs(self, metrics: dict[str, Any]) -> dict[str, float]:
        """The validation metrics for Keras' logs each epoch (`val_<name>`): TensorBoard and early stopping read them.

        The loss and accuracy are Keras' own; these are scikit-learn's, the numbers of metrics.json.
        """
        return {f"val_{self.log_names.get(name, name)}": float(metrics[name]) for name in self.metric_names
                if name not in ("loss", "accuracy") and metrics.get(name) is not None}

    def keras_logs(self, targets: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """`val_loss` and the training metrics' `val_<name>` of head `outputs`: what Keras' own validation pass logs.

        Computed from the outputs the per-epoch summaries already have, so an
        epoch runs one forward pass over the validation set, not two. The loss
        is the compiled one (class weights included) averaged over the examples,
        as Keras averages it over batches weighted by their size.
        """
        logs = {"val_loss": float(self.loss()(targets, outputs))}
        for metric in self.training_metrics():
            metric.update_state(targets, outputs)
            logs[f"val_{metric.name}"] = float(metric.result())
        return logs

    baseline_name: ClassVar[str] = "LogisticRegression"

    def baseline_scores(self, model, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.predict_proba(list(texts)), np.float64)

    def mistakes(self, texts: Sequence[str], truth: np.ndarray, scores: np.ndarray) -> str | None:
        return None

    def to_config(self) -> dict[str, Any]:
        return {"task": self.name, **dataclasses.asdict(self)}


def _sklearn_average(binary: bool) -> str:
    return "binary" if binary else "macro"


@dataclasses.dataclass(frozen=True)
class ClassificationTask(Task):
    """Single-label classification over `label_names` (label id i is `label_names[i]`).

    Args:
        label_names: tuple of str, at least 2.
        threshold: float. Binary tasks: predict label 1 when P(label 1) >= this.
        class_weights: per-label loss weights (`--class-weight balanced`), or None for equal weights.
    """

    label_names: tuple[str, ...]
    threshold: float = 0.5
    class_weights: tuple[float, ...] | None = None
    name: ClassVar[str] = "classification"
    metric_names: ClassVar[tuple[str, ...]] = TASK_METRICS["classification"]
    log_names: ClassVar[dict[str, str]] = {"roc_auc": "auc"}

    def __post_init__(self):
        if len(self.label_names) < 2:
            raise ValueError(
                f"The training data has only {len(self.label_names)} class "
                f"({', '.join(map(repr, self.label_names))}); a classifier needs at least 2. Check --label-column."
            )

    @classmethod
    def from_labels(cls, labels: Sequence[str], threshold: float = 0.5, balanced: bool = False) -> ClassificationTask:
        names = sorted_label_names(labels)
        weights = None
        if balanced:
            counts = np.array([sum(label == name for label in labels) for name in names], np.float64)
            weights = tuple(float(w) for w in len(labels) / (len(names) * counts))
        return cls(names, threshold, weights)

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

    truth = label_ids  # what evaluate() compares scores with
    baseline_targets = label_ids

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
        if self.class_weights is not None:
            return losses.WeightedClassCrossentropy(list(self.class_weights))
        if self.binary:
            return keras.losses.BinaryCrossentropy()
        return keras.losses.SparseCategoricalCrossentropy()

    def training_metrics(self) -> list[keras.metrics.Metric]:
        if self.binary:
            return [keras.metrics.BinaryAccuracy(name="accuracy")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # === Outputs -> answers ===

    @property
    def score_width(self) -> int:
        return len(self.label_names)

    def scores(self, outputs):
        """Head outputs (batch, output_units) -> (batch, num_labels) probabilities (TensorFlow or numpy)."""
        if self.binary:
            return ops.concatenate([1.0 - outputs, outputs], axis=-1)
        return outputs

    probabilities = scores

    def predictions(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(n,) predicted label ids from (n, num_labels) probabilities."""
        if self.binary:
            return (probabilities[:, 1] >= (self.threshold if threshold is None else threshold)).astype(np.int64)
        return probabilities.argmax(axis=1)

    def answers(self, probabilities: np.ndarray, threshold: float | None = None) -> Answers:
        """What the export would answer for these probabilities (at `threshold`, default the task's)."""
        names = np.array(self.label_names, dtype=object)
        return Answers(probabilities=probabilities, label=names[self.predictions(probabilities, threshold)])

    def evaluate(self, label_ids: np.ndarray, probabilities: np.ndarray,
                 threshold: float | None = None) -> dict[str, Any]:
        """scikit-learn metrics of `probabilities` against the true `label_ids` (`tfbert.metrics`)."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        result = metrics_lib.classification_metrics(
            label_ids, probabilities, self.predictions(probabilities, threshold), self.label_names,
            average=_sklearn_average(self.binary), auc_scores=probabilities[:, 1] if self.binary else probabilities)
        if self.binary:
            result["threshold"] = self.threshold if threshold is None else threshold
        return result

    def report(self, label_ids: np.ndarray, probabilities: np.ndarray, threshold: float | None = None) -> str:
        """The article's line, scikit-learn's per-label table and the confusion matrix, as text."""
        predictions = self.predictions(np.asarray(probabilities), threshold)
        metrics = self.evaluate(label_ids, probabilities, threshold)
        return "\n".join([metrics_lib.loss_and_accuracy(metrics), "",
                          metrics_lib.text_report(label_ids, predictions, self.label_names),
                          "Confusion matrix (rows: true, columns: predicted):",
                          metrics_lib.format_confusion_matrix(metrics["confusion_matrix"], self.label_names)])

    def summary_line(self, metrics: dict[str, Any]) -> str:
        return metrics_lib.loss_and_accuracy(metrics)

    @property
    def curve_labels(self) -> list[int]:
        """Labels that get a PR / ROC curve: label 1 of a binary task, else every label."""
        return [1] if self.binary else list(range(len(self.label_names)))

    def figures(self, label_ids: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """Confusion matrix, and PR / ROC curves when every label occurs."""
        metrics = self.evaluate(label_ids, probabilities)
        result = {"confusion_matrix": figures.confusion_matrix_figure(metrics["confusion_matrix"], self.label_names)}
        if metrics["roc_auc"] is not None:
            truth = np.eye(len(self.label_names), dtype=np.int64)[label_ids]
            for kind in ("pr", "roc"):
                result[f"{kind}_curve"] = figures.curve_figure(kind, truth, probabilities, self.label_names,
                                                               self.curve_labels)
        return result

    def mistakes(self, texts: Sequence[str], label_ids: np.ndarray, probabilities: np.ndarray) -> str:
        return figures.mistakes_table(texts, label_ids, probabilities, self.predictions(probabilities),
                                      self.label_names)

    @property
    def final_metrics(self) -> tuple[str, ...]:
        return ("loss", "accuracy", "f1", "auc", "precision", "recall")

    # === Baseline ===

    def baseline_estimator(self):
        """Logistic regression on TF-IDF features (C=4, as calibrated on the default corpus)."""
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=4.0, max_iter=2000)

    def baseline_scores(self, model, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), num_labels] probabilities; columns are label ids (a label absent from training stays 0)."""
        probabilities = np.zeros((len(texts), len(self.label_names)))
        probabilities[:, model.classes_] = model.predict_proba(list(texts))
        return probabilities

    def baseline_linear(self, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coef [terms, classes], intercept [classes], placement [classes, labels]) for the in-graph baseline.

        A two-class LogisticRegression stores one row, the logit of its second
        class: sigmoid(z) = softmax([0, z])[1], so a zero row goes before it.
        """
        coef, intercept = model.coef_, model.intercept_
        missing = max(0, 2 - coef.shape[0])
        coef = np.concatenate([np.zeros((missing, coef.shape[1])), coef])
        intercept = np.concatenate([np.zeros(missing), intercept])
        placement = np.zeros((len(model.classes_), len(self.label_names)), np.float32)
        placement[np.arange(len(model.classes_)), model.classes_] = 1.0
        return coef.T, intercept, placement

    def link(self, scores):
        import tensorflow as tf

        return tf.nn.softmax(scores, axis=1)

    # === Serving ===

    def serving_outputs(self, probabilities, label_names):
        """The signature's outputs (TensorFlow), `label_names` a [num_labels] string tensor."""
        import tensorflow as tf

        batch = tf.shape(probabilities)[0]
        if self.binary:  # label 1 at the exported threshold, as evaluate.py decides
            predicted = tf.cast(probabilities[:, 1] >= tf.constant(self.threshold, probabilities.dtype), tf.int64)
        else:
            predicted = tf.argmax(probabilities, axis=-1)
        return {
            "probabilities": probabilities,
            "label": tf.gather(label_names, predicted),
            # The column names, repeated per row: TF Serving's row format needs a batch dimension on every
            # output, and remote clients then need no side file to name the columns.
            "label_names": tf.tile(label_names[tf.newaxis, :], tf.stack([batch, 1])),
        }



@dataclasses.dataclass(frozen=True)
class MultiLabelTask(Task):
    """Any set of `label_names` per text (the empty set too): a sigmoid per label.

    Args:
        label_names: tuple of str, at least 1.
        threshold: float. A label is predicted when its probability >= this.
        positive_weights: per-label weights of the positive term of the loss (`--class-weight balanced`:
            negatives / positives in the training split), or None.
    """

    label_names: tuple[str, ...]
    threshold: float = 0.5
    positive_weights: tuple[float, ...] | None = None
    name: ClassVar[str] = "multi_label"
    metric_names: ClassVar[tuple[str, ...]] = TASK_METRICS["multi_label"]
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"loss", "hamming_loss"})
    baseline_name: ClassVar[str] = "one-vs-rest LogisticRegression"

    def __post_init__(self):
        if not self.label_names:
            raise ValueError("The training data carries no label at all; a multi-label task needs at least one. "
                             "Check --label-column / --label-columns and --label-separator.")

    @classmethod
    def from_labels(cls, labels: Sequence[tuple[str, ...]], threshold: float = 0.5,
                    balanced: bool = False) -> MultiLabelTask:
        names = sorted_label_names([name for row in labels for name in row])
        weights = None
        if balanced:
            positives = np.array([sum(name in row for row in labels) for name in names], np.float64)
            weights = tuple(float(w) for w in (len(labels) - positives) / np.maximum(positives, 1.0))
        return cls(names, threshold, weights)

    def check_labels(self, labels: Sequence[tuple[str, ...]], source: str) -> None:
        unknown = sorted({name for row in labels for name in row} - set(self.label_names))
        if unknown:
            raise ValueError(
                f"{source} has labels that training never saw: {', '.join(map(repr, unknown[:10]))}. "
                f"Known labels: {', '.join(map(repr, self.label_names))}. Fix the labels or retrain with them."
            )

    def truth(self, labels: Sequence[tuple[str, ...]]) -> np.ndarray:
        """(n, num_labels) 0/1 indicator matrix."""
        index = {name: i for i, name in enumerate(self.label_names)}
        matrix = np.zeros((len(labels), len(self.label_names)), np.int64)
        for row, names in enumerate(labels):
            matrix[row, [index[name] for name in names]] = 1
        return matrix

    baseline_targets = truth

    def targets(self, labels: Sequence[tuple[str, ...]]) -> np.ndarray:
        return self.truth(labels).astype(np.float32)

    @property
    def output_units(self) -> int:
        return len(self.label_names)

    activation: ClassVar[str] = "sigmoid"

    def loss(self) -> keras.losses.Loss:
        if self.positive_weights is not None:
            return losses.PositiveWeightedBinaryCrossentropy(list(self.positive_weights))
        return keras.losses.BinaryCrossentropy()

    def training_metrics(self) -> list[keras.metrics.Metric]:
        return [keras.metrics.BinaryAccuracy(name="label_accuracy", threshold=self.threshold)]

    @property
    def score_width(self) -> int:
        return len(self.label_names)

    def scores(self, outputs):
        return outputs

    def predictions(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(n, num_labels) 0/1: the predicted set of each text."""
        return (np.asarray(probabilities) >= (self.threshold if threshold is None else threshold)).astype(np.int64)

    def answers(self, probabilities: np.ndarray, threshold: float | None = None) -> Answers:
        return Answers(probabilities=probabilities, labels=self.predictions(probabilities, threshold).astype(bool))

    def evaluate(self, truth: np.ndarray, probabilities: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
        result = metrics_lib.multi_label_metrics(truth, probabilities, self.predictions(probabilities, threshold),
                                                 self.label_names)
        result["threshold"] = self.threshold if threshold is None else threshold
        return result

    def report(self, truth: np.ndarray, probabilities: np.ndarray, threshold: float | None = None) -> str:
        metrics = self.evaluate(truth, probabilities, threshold)
        return "\n".join([self.summary_line(metrics), "",
                          metrics_lib.text_report_multi_label(metrics["per_label"], self.label_names)])

    def summary_line(self, metrics: dict[str, Any]) -> str:
        return (f"Validation Loss: {metrics['loss']:.4f}, micro F1: {metrics['micro_f1']:.4f}, macro F1: "
                f"{metrics['macro_f1']:.4f}, subset accuracy: {metrics['subset_accuracy']:.4f}")

    def figures(self, truth: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """Per-label precision-recall curves, for the labels that occur in the validation data."""
        present = [i for i in range(len(self.label_names)) if truth[:, i].any()]
        return {"pr_curve": figures.curve_figure("pr", truth, probabilities, self.label_names, present)} if present else {}

    @property
    def final_metrics(self) -> tuple[str, ...]:
        return ("loss", "micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss")

    def baseline_estimator(self):
        """One logistic regression per label on TF-IDF features (one-vs-rest)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        return OneVsRestClassifier(LogisticRegression(C=4.0, max_iter=2000))

    def baseline_linear(self, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coef [terms, labels], intercept [labels], identity placement) of the one-vs-rest logistic regressions."""
        terms = next(e.coef_.shape[1] for e in model.estimators_ if hasattr(e, "coef_"))
        coef = np.stack([_binary_coef(estimator, terms) for estimator in model.estimators_], axis=1)
        intercept = np.array([_binary_intercept(estimator) for estimator in model.estimators_])
        return coef, intercept, np.eye(len(self.label_names), dtype=np.float32)

    def link(self, scores):
        import tensorflow as tf

        return tf.sigmoid(scores)

    def serving_outputs(self, probabilities, label_names):
        import tensorflow as tf

        batch = tf.shape(probabilities)[0]
        return {
            "probabilities": probabilities,
            "labels": probabilities >= tf.constant(self.threshold, probabilities.dtype),  # the predicted set
            "label_names": tf.tile(label_names[tf.newaxis, :], tf.stack([batch, 1])),
        }


def _binary_coef(estimator, terms: int) -> np.ndarray:
    # A label that is always or never on in training: OneVsRest keeps a constant predictor, which scores it so.
    return estimator.coef_[0] if hasattr(estimator, "coef_") else np.zeros(terms)


def _binary_intercept(estimator) -> float:
    if hasattr(estimator, "intercept_"):
        return float(estimator.intercept_[0])
    p = float(estimator.y_[0]) if hasattr(estimator, "y_") else 0.0
    return 30.0 if p > 0.5 else -30.0  # a sigmoid this far out is 1 or 0 in float32


@dataclasses.dataclass(frozen=True)
class RegressionTask(Task):
    """One number per text: a linear head on standardized targets.

    Args:
        mean: float. The training targets' mean.
        std: float. Their standard deviation (1.0 when all are equal).
        loss_name: "mse" or "huber" (on the standardized targets, delta 1.0).
    """

    mean: float = 0.0
    std: float = 1.0
    loss_name: str = "mse"
    name: ClassVar[str] = "regression"
    score_output: ClassVar[str] = "prediction"
    baseline_name: ClassVar[str] = "Ridge"
    metric_names: ClassVar[tuple[str, ...]] = TASK_METRICS["regression"]
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"loss", "rmse", "mae"})
    activation: ClassVar[str] = "linear"
    output_units: ClassVar[int] = 1
    score_width: ClassVar[int] = 1

    @classmethod
    def from_labels(cls, labels: Sequence[float], loss_name: str = "mse") -> RegressionTask:
        values = np.asarray(labels, np.float64)
        std = float(values.std())
        return cls(float(values.mean()), std if std > 0 else 1.0, loss_name)

    def check_labels(self, labels: Sequence[float], source: str) -> None:
        pass  # any finite number is a valid target; data.py refuses the others with their line

    def truth(self, labels: Sequence[float]) -> np.ndarray:
        return np.asarray(labels, np.float64)

    baseline_targets = truth

    def targets(self, labels: Sequence[float]) -> np.ndarray:
        return ((self.truth(labels) - self.mean) / self.std).astype(np.float32)[:, None]

    def loss(self) -> keras.losses.Loss:
        return keras.losses.Huber(delta=1.0) if self.loss_name == "huber" else keras.losses.MeanSquaredError()

    def training_metrics(self) -> list[keras.metrics.Metric]:
        return [keras.metrics.MeanAbsoluteError(name="standardized_mae")]

    def scores(self, outputs):
        """(batch, 1) standardized outputs -> (batch, 1) predictions in the targets' units."""
        return outputs * self.std + self.mean

    def answers(self, predictions: np.ndarray, threshold: float | None = None) -> Answers:
        return Answers(prediction=np.asarray(predictions).reshape(-1))

    def evaluate(self, truth: np.ndarray, predictions: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
        result = metrics_lib.regression_metrics(truth, np.asarray(predictions, np.float64).reshape(-1))
        # The loss the model trains on: on standardized values, so it compares across datasets.
        standardized = (np.asarray(predictions).reshape(-1) - truth) / self.std
        result["loss"] = float(np.mean(metrics_lib.huber(standardized) if self.loss_name == "huber"
                                       else np.square(standardized))) if len(truth) else float("nan")
        return result

    def report(self, truth: np.ndarray, predictions: np.ndarray, threshold: float | None = None) -> str:
        metrics = self.evaluate(truth, predictions)
        return "\n".join([self.summary_line(metrics),
                          f"MAE {metrics['mae']:.4f}, R^2 {metrics['r2']:.4f}, Pearson {metrics['pearson']:.4f}, "
                          f"Spearman {metrics['spearman']:.4f} ({metrics['num_examples']} texts)"])

    def summary_line(self, metrics: dict[str, Any]) -> str:
        return f"Validation Loss: {metrics['loss']:.4f}, Validation RMSE: {metrics['rmse']:.4f}"

    def figures(self, truth: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
        predicted = np.asarray(predictions).reshape(-1)
        return {"predicted_vs_true": figures.scatter_figure(truth, predicted),
                "residuals": figures.residual_histogram(truth, predicted)}

    @property
    def final_metrics(self) -> tuple[str, ...]:
        return ("loss", "rmse", "mae", "r2", "pearson", "spearman")

    def baseline_estimator(self):
        """Ridge regression on TF-IDF features."""
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)

    def baseline_scores(self, model, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.predict(list(texts)), np.float64).reshape(-1, 1)

    def baseline_linear(self, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.asarray(model.coef_).reshape(-1, 1), np.atleast_1d(model.intercept_), np.ones((1, 1), np.float32)

    def link(self, scores):
        return scores

    def serving_outputs(self, predictions, label_names):
        import tensorflow as tf

        return {"prediction": tf.reshape(predictions, [-1])}

    def to_config(self) -> dict[str, Any]:
        return {"task": self.name, "mean": self.mean, "std": self.std, "loss_name": self.loss_name}


def for_training(task: str, labels: Sequence, threshold: float = 0.5, balanced: bool = False,
                 loss: str = "mse") -> Task:
    """The task of `--task`, from the training split's labels."""
    if task == "multi_label":
        return MultiLabelTask.from_labels(labels, threshold, balanced)
    if task == "regression":
        return RegressionTask.from_labels(labels, loss)
    return ClassificationTask.from_labels(labels, threshold, balanced)


def from_config(config: dict[str, Any], threshold: float | None = None) -> Task:
    """The task an export recorded (`Task.to_config`); `threshold` replaces the recorded one where a task has one."""
    config = dict(config)
    kind = {cls.name: cls for cls in (ClassificationTask, MultiLabelTask, RegressionTask)}[config.pop("task")]
    for name in ("label_names", "class_weights", "positive_weights"):
        if config.get(name) is not None:
            config[name] = tuple(config[name])
    if threshold is not None and "threshold" in config:
        config["threshold"] = threshold
    return kind(**config)
