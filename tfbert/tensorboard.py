"""TensorBoard beyond Keras' defaults: learning rate, throughput, validation curves, mistakes, HParams.

Keras' `keras.callbacks.TensorBoard` writes the graph, the profiler trace and
every value in the `logs` dict, per epoch (`epoch_*` tags) and every
`update_freq` steps (`batch_*` tags). The callbacks here add to those `logs`
(as Keras' own `LearningRateScheduler` adds `learning_rate`), so they must
come *before* the TensorBoard callback in the list; the progress bar and
`History` then show the values too. What is not a scalar (images, the
mistakes table, the HParams session) they write with `tf.summary` directly.
Use this module's `TensorBoard`: Keras' drops epoch summaries (see below).
The backup and best-epoch callbacks are `tfbert.resume`'s.

One run, as `tensorboard --logdir <log-dir>` shows it::

    <run_dir>/            HParams session: the config and the kept epoch's final/val_* metrics
    <run_dir>/train       loss, accuracy, learning_rate, examples_per_second; graph; profile
    <run_dir>/validation  loss, accuracy, auc, precision, recall, f1; confusion matrix,
                          PR and ROC curves; the worst mistakes
"""

from __future__ import annotations

import dataclasses
import html
import io
import logging
import math
import os
import re
import time
import typing
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm
from tensorboard.plugins.hparams import api as hp

from tfbert.config import ModelConfig, TrainConfig
from tfbert.pipeline import predict_by_index
from tfbert.preprocessor import FEATURES
from tfbert.resume import BestEpochRecord
from tfbert.tasks import ClassificationTask

logger = logging.getLogger(__name__)

# Config fields that say where things go or how the run is logged, not what was trained.
NOT_HPARAMS = ("log_dir", "run_name", "log_every", "profile_batch", "export_dir", "model_name", "version", "debug",
               "backup_dir", "tpu")
# ClassificationTask.evaluate key -> logged name (`val_<name>` in logs, `epoch_<name>` in TensorBoard).
VALIDATION_METRICS = {"roc_auc": "auc", "precision": "precision", "recall": "recall", "f1": "f1"}
# HParams metric columns, in this order (TensorBoard shows the first five until you tick more).
FINAL_METRICS = ("loss", "accuracy", "f1", "auc", "precision", "recall")
MAX_CELL_CHARS = 200  # mistakes-table text cells are cut here


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, with its epoch-end summaries always recorded.

    With an integer `update_freq`, Keras leaves the last training step's
    `tf.summary.record_if(step % update_freq == 0)` in force after the step,
    so epoch summaries (its own and every other callback's) are silently
    dropped unless the steps per epoch divide evenly by `update_freq`
    (tensorflow/tensorflow#49109; still so in Keras 3.15).
    """

    def on_epoch_end(self, epoch, logs=None):
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)

    def on_test_end(self, logs=None):
        with tf.summary.record_if(True):
            super().on_test_end(logs)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The optimizer's schedule evaluated at its current iteration (the rate of the next step)."""
    # Keras 3's `learning_rate` property calls the schedule with `iterations`.
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class TrainingSpeed(keras.callbacks.Callback):
    """Adds `learning_rate` and `examples_per_second` to the training logs.

    Every `log_every` steps (the TensorBoard callback's `update_freq`, so it
    writes them as `batch_*` next to the step loss) and at each epoch's end.
    Throughput is wall-clock: step values count `batch_size` examples per
    step; the epoch value counts `examples_per_epoch` (the last batch of each
    length bucket is partial) over the time to the epoch's last training
    step, so the validation pass is not included.

    Args:
        batch_size: int. Global batch size.
        log_every: int. Steps between step values.
        examples_per_epoch: int or None. Training examples per epoch; None for `steps * batch_size`.
    """

    def __init__(self, batch_size: int, log_every: int, examples_per_epoch: int | None = None):
        super().__init__()
        self.batch_size = batch_size
        self.log_every = log_every
        self.examples_per_epoch = examples_per_epoch

    def on_train_begin(self, logs=None):
        self._step = 0  # steps of this fit(), counted as TensorBoard counts them for update_freq

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._mark_time = self._last_step_end = time.perf_counter()
        self._epoch_first_step = self._mark_step = self._step

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        self._last_step_end = now = time.perf_counter()
        if logs is None or self._step % self.log_every:
            return
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        examples = self.batch_size * (self._step - self._mark_step)
        logs["examples_per_second"] = examples / max(now - self._mark_time, 1e-9)
        self._mark_time, self._mark_step = now, self._step

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        steps = self._step - self._epoch_first_step
        examples = self.examples_per_epoch or steps * self.batch_size
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        logs["examples_per_second"] = examples / max(self._last_step_end - self._epoch_start, 1e-9)


class ValidationSummaries(keras.callbacks.Callback):
    """At each epoch's end: validation AUC/precision/recall/F1, confusion matrix, PR and ROC curves, mistakes.

    One prediction pass over the validation set per epoch. The scalars go
    into the logs as `val_auc`, `val_precision`, `val_recall`, `val_f1`
    (scikit-learn's, via the task: the numbers of metrics.json); images and
    the mistakes table go to `log_dir`.

    Args:
        dataset: tf.data.Dataset of `(features, example_index)` batches covering the validation set once,
            in any order. Bucketed batches come out reordered, so each carries its examples' indices.
        label_ids: (n,) true label ids, by example index.
        texts: the n texts, by example index, for the mistakes table.
        task: the `ClassificationTask`.
        log_dir: where images and text go, e.g. `<run_dir>/validation`.
        num_mistakes: rows of the mistakes table.
    """

    def __init__(self, dataset: tf.data.Dataset, label_ids: np.ndarray, texts: Sequence[str],
                 task: ClassificationTask, log_dir: str, num_mistakes: int = 10):
        super().__init__()
        self.dataset = dataset
        self.label_ids = np.asarray(label_ids, dtype=np.int64)
        self.texts = list(texts)
        self.task = task
        self.label_names = list(task.label_names)
        self.log_dir = log_dir
        self.num_mistakes = num_mistakes
        self._writer = None
        self._forward = None

    def set_model(self, model):
        super().set_model(model)
        # One graph for every bucket length and batch size: traced once, and shown in the Graphs tab.
        signature = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in FEATURES}
        self._forward = tf.function(lambda features: model(features, training=False), input_signature=[signature])

    def predict(self) -> np.ndarray:
        """(n, num_labels) probabilities, rows in example-index order."""
        forward = lambda features: self.task.probabilities(self._forward(features))  # noqa: E731
        return predict_by_index(forward, self.dataset, len(self.label_ids), len(self.label_names))

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        probabilities = self.predict()
        if not np.isfinite(probabilities).all():  # diverged: leave the report to TerminateOnNaN
            logger.warning("Validation probabilities are not finite after epoch %d; no summaries.", epoch + 1)
            return
        metrics = self.task.evaluate(self.label_ids, probabilities)
        if logs is not None:
            logs.update({f"val_{name}": metrics[key] for key, name in VALIDATION_METRICS.items()
                         if metrics[key] is not None})
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default(), tf.summary.record_if(True):
                # Keras 3's TensorBoard callback writes only the conceptual (layer) graph.
                tf.summary.graph(self._forward.get_concrete_function().graph)
        # record_if(True): see TensorBoard above.
        with self._writer.as_default(step=epoch), tf.summary.record_if(True):
            tf.summary.image("confusion_matrix", figure_image(confusion_matrix_figure(
                metrics["confusion_matrix"], self.label_names)))
            if metrics["roc_auc"] is not None:  # curves need every label present
                for kind in ("pr", "roc"):
                    tf.summary.image(f"{kind}_curve", figure_image(
                        curve_figure(kind, self.label_ids, probabilities, self.label_names, self.task.curve_labels)))
            tf.summary.text("worst_mistakes", mistakes_table(
                self.texts, self.label_ids, probabilities, self.task.predictions(probabilities), self.label_names,
                self.num_mistakes))
        self._writer.flush()
        logger.debug("Validation summaries for epoch %d took %.1f s.", epoch + 1, time.perf_counter() - start)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class HParamsSummary(keras.callbacks.Callback):
    """The run as one session of TensorBoard's HParams table: its hyper-parameters and final metrics.

    Final metrics are those of the epoch with the lowest validation loss,
    the weights `EarlyStopping(restore_best_weights=True)` restores and
    train.py exports. They are read from the logs, so this callback must
    come after `ValidationSummaries`.

    Args:
        log_dir: the run directory; its `train`/`validation` subdirectories belong to the session.
        hparams: `hp.HParam` -> bool/int/float/str value, or None for "not set" (declared, not written).
    """

    def __init__(self, log_dir: str, hparams: Mapping[hp.HParam, bool | int | float | str | None],
                 best: BestEpochRecord | None = None):
        super().__init__()
        self.log_dir = log_dir
        self.hparams = dict(hparams)
        # A resumed run starts from the best epoch before the restart (`tfbert.resume.previous_best`).
        self._best: dict[str, float] | None = None
        self._best_epoch = 0
        if best is not None:
            self._best = {name: best.logs[f"val_{name}"] for name in FINAL_METRICS if f"val_{name}" in best.logs}
            self._best_epoch = best.epoch
        self._writer = None

    def on_train_begin(self, logs=None):
        # Every run declares the same columns: TensorBoard uses the first declaration it finds.
        metrics = [hp.Metric(f"final/val_{name}", display_name=f"validation {name}") for name in FINAL_METRICS]
        self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(), tf.summary.record_if(True):  # see TensorBoard above
            hp.hparams_config(hparams=list(self.hparams), metrics=metrics)
            hp.hparams({k: v for k, v in self.hparams.items() if v is not None},
                       trial_id=os.path.basename(os.path.normpath(self.log_dir)))
        self._writer.flush()  # the run joins the HParams table while it trains

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is not None and (self._best is None or loss < self._best["loss"]):
            self._best = {name: logs[f"val_{name}"] for name in FINAL_METRICS if f"val_{name}" in logs}
            self._best_epoch = epoch

    def on_train_end(self, logs=None):
        if self._best is not None:
            with self._writer.as_default(step=self._best_epoch), tf.summary.record_if(True):
                for name, value in self._best.items():
                    tf.summary.scalar(f"final/val_{name}", value)
        self._writer.close()


def config_hparams(config: TrainConfig, learning_rate: float) -> dict[hp.HParam, bool | int | float | str | None]:
    """The config's fields as flat HParams (`model.num_layers` -> `num_layers`).

    `NOT_HPARAMS` (output paths, logging switches) are left out. `learning_rate`
    is the peak rate the optimizer got (the preset's or the default when the
    flag was not given, times the replicas under `--scale-lr`), so runs compare
    on what was trained, not on what was typed.
    """
    hints = {**typing.get_type_hints(ModelConfig), **typing.get_type_hints(TrainConfig)}
    values = {}
    for name, value in dataclasses.asdict(config).items():
        if isinstance(value, dict):
            values.update(value)
        elif name not in NOT_HPARAMS:
            values[name] = value
    values["learning_rate"] = learning_rate
    return {hp.HParam(name, _domain(hints[name])): value for name, value in values.items()}


def _domain(annotation: typing.Any) -> hp.Domain | None:
    """A domain that only gives the column its type; other runs' values are unknown, so no bounds."""
    kinds = set(typing.get_args(annotation)) or {annotation}
    if bool in kinds:
        return hp.Discrete([False, True])
    if kinds & {int, float}:
        return hp.RealInterval(-math.inf, math.inf)
    return None  # strings: a discrete domain would have to list every run's value


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


def curve_figure(kind: str, label_ids: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str],
                 labels: Sequence[int]) -> Figure:
    """Precision-recall (`kind="pr"`) or ROC (`"roc"`) curves, one per label id in `labels`."""
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    for label in labels:
        truth, score = label_ids == label, probabilities[:, label]
        if kind == "pr":
            precision, recall, _ = skm.precision_recall_curve(truth, score)
            average_precision = skm.average_precision_score(truth, score)
            ax.plot(recall, precision, label=f"{label_names[label]} (AP {average_precision:.3f})")
        else:
            fpr, tpr, _ = skm.roc_curve(truth, score)
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


def figure_image(fig: Figure) -> tf.Tensor:
    """A figure as a (1, height, width, 4) uint8 tensor for `tf.summary.image`."""
    # The Agg canvas renders without pyplot: no GUI backend, no global figure state.
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return tf.image.decode_png(buffer.getvalue(), channels=4)[tf.newaxis]


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
