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
import io
import logging
import math
import os
import time
import typing
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.plugins.hparams import api as hp

from tfbert.config import ModelConfig, TrainConfig
from tfbert.pipeline import predict_by_index
from tfbert.preprocessor import FEATURES
from tfbert.resume import BestEpochRecord, Monitor
from tfbert.tasks import Task

logger = logging.getLogger(__name__)

# Config fields that say where things go or how the run is logged, not what was trained.
NOT_HPARAMS = ("log_dir", "run_name", "log_every", "profile_batch", "export_dir", "model_name", "version", "debug",
               "backup_dir", "tpu", "label_columns", "encoding_errors", "skip_bad_rows")


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, with its epoch-end summaries always recorded.

    With an integer `update_freq`, Keras leaves the last training step's
    `tf.summary.record_if(step % update_freq == 0)` in force after the step,
    so epoch summaries (its own and every other callback's) are silently
    dropped unless the steps per epoch divide evenly by `update_freq`
    (tensorflow/tensorflow#49109; still so in Keras 3.15).
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # Keras writes the conceptual graph of plain Functional / Sequential models only; a TextClassifier is a
        # Functional subclass, so its graph is written here, as Keras would.
        if self.write_graph and type(self.model).__name__ not in ("Functional", "Sequential"):
            write_conceptual_graph(self.model, os.path.join(self.log_dir, "train"))

    def on_epoch_end(self, epoch, logs=None):
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)

    def on_test_end(self, logs=None):
        with tf.summary.record_if(True):
            super().on_test_end(logs)


def write_conceptual_graph(model: keras.Model, log_dir: str) -> None:
    """The model's layer graph for TensorBoard's Graphs tab ("keras" tag, the graph_keras_model plugin)."""
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "graph_keras_model"
    metadata.plugin_data.content = b"1"
    graph = keras.Model(model.inputs, model.outputs, name=model.name)  # the plain functional view of its layers
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(), tf.summary.record_if(True):
        tf.summary.write(tag="keras", tensor=graph.to_json(), step=0, metadata=metadata)
    writer.close()


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


@dataclasses.dataclass(frozen=True)
class ValidationSet:
    """The validation examples by index: the task's truth (metrics), its targets (the loss) and the texts."""

    truth: np.ndarray
    targets: np.ndarray
    texts: Sequence[str]


class ValidationSummaries(keras.callbacks.Callback):
    """At each epoch's end: the validation logs, and the task's pictures and mistakes to `log_dir`.

    The run's one forward pass over the validation set per epoch (`fit` gets
    no `validation_data`). From its outputs come Keras' own validation logs
    (`val_loss` and the training metrics, `Task.keras_logs`) and the task's
    scikit-learn metrics as `val_<name>` (the numbers of metrics.json), where
    TensorBoard, the progress bar and early stopping read them; the task's
    figures (confusion matrix and PR / ROC curves, per-label PR curves, or
    predicted-vs-true and residuals) and mistakes table go to `log_dir` when
    `write`.

    Args:
        dataset: tf.data.Dataset of `(features, example_index)` batches covering the validation set once,
            in any order. Bucketed batches come out reordered, so each carries its examples' indices.
        examples: what each example index stands for: the task's truth and targets, and the texts for the
            mistakes table.
        task: the task.
        log_dir: where images and text go, e.g. `<run_dir>/validation`.
        write: False on workers other than the chief: they compute the metrics, which early stopping reads,
            and write nothing.
    """

    def __init__(self, dataset: tf.data.Dataset, examples: ValidationSet, task: Task, log_dir: str,
                 write: bool = True):
        super().__init__()
        self.dataset = dataset
        self.truth = np.asarray(examples.truth)
        self.targets = np.asarray(examples.targets)
        self.texts = list(examples.texts)
        self.task = task
        self.log_dir = log_dir
        self.write = write
        self._writer = None
        self._forward = None

    def set_model(self, model):
        super().set_model(model)
        # One graph for every bucket length and batch size: traced once, and shown in the Graphs tab.
        signature = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in FEATURES}
        self._forward = tf.function(lambda features: model(features, training=False), input_signature=[signature])

    def predict(self) -> np.ndarray:
        """(n, output_units) head outputs, rows in example-index order."""
        return predict_by_index(self._forward, self.dataset, len(self.truth), self.task.output_units)

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        outputs = self.predict()
        scores = np.asarray(self.task.scores(outputs))
        if not np.isfinite(scores).all():  # diverged: leave the report to StopOnNaN
            logger.warning("Validation outputs are not finite after epoch %d; no summaries.", epoch + 1)
            return
        metrics = self.task.evaluate(self.truth, scores)
        if logs is not None:
            logs.update(self.task.keras_logs(self.targets, outputs))
            logs.update(self.task.epoch_logs(metrics))
        if self.write:
            self._write(epoch, scores)
        logger.debug("Validation pass and summaries for epoch %d took %.1f s.", epoch + 1, time.perf_counter() - start)

    def _write(self, epoch: int, scores: np.ndarray) -> None:
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default(), tf.summary.record_if(True):
                # Keras 3's TensorBoard callback writes only the conceptual (layer) graph.
                tf.summary.graph(self._forward.get_concrete_function().graph)
        # record_if(True): see TensorBoard above.
        with self._writer.as_default(step=epoch), tf.summary.record_if(True):
            for name, figure in self.task.figures(self.truth, scores).items():
                tf.summary.image(name, figure_image(figure))
            mistakes = self.task.mistakes(self.texts, self.truth, scores)
            if mistakes is not None:
                tf.summary.text("worst_mistakes", mistakes)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class HParamsSummary(keras.callbacks.Callback):
    """The run as one session of TensorBoard's HParams table: its hyper-parameters and final metrics.

    Final metrics are those of the best epoch by `monitor`, the weights
    `EarlyStopping(restore_best_weights=True)` restores and train.py exports.
    They are read from the logs, so this callback must come after
    `ValidationSummaries`.

    Args:
        log_dir: the run directory; its `train`/`validation` subdirectories belong to the session.
        hparams: `hp.HParam` -> bool/int/float/str value, or None for "not set" (declared, not written).
        metrics: the metric columns, as Keras' logs name them without `val_` (the task's `final_metrics`).
        monitor: what picks the best epoch.
        best: the best epoch before a restart, or None.
    """

    def __init__(self, log_dir: str, hparams: Mapping[hp.HParam, bool | int | float | str | None],
                 metrics: Sequence[str], monitor: Monitor = Monitor(), best: BestEpochRecord | None = None):
        super().__init__()
        self.log_dir = log_dir
        self.hparams = dict(hparams)
        self.metrics = tuple(metrics)
        self.monitor = monitor
        # A resumed run starts from the best epoch before the restart (`tfbert.resume.previous_best`).
        self._best: dict[str, float] | None = None
        self._best_value: float | None = None
        self._best_epoch = 0
        if best is not None:
            self._best, self._best_value, self._best_epoch = self._final(best.logs), best.value, best.epoch
        self._writer = None

    def _final(self, logs) -> dict[str, float]:
        return {name: logs[f"val_{name}"] for name in self.metrics if f"val_{name}" in logs}

    def on_train_begin(self, logs=None):
        # Runs of one task declare the same columns: TensorBoard uses the first declaration it finds.
        metrics = [hp.Metric(f"final/val_{name}", display_name=f"validation {name}") for name in self.metrics]
        self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(), tf.summary.record_if(True):  # see TensorBoard above
            hp.hparams_config(hparams=list(self.hparams), metrics=metrics)
            hp.hparams({k: v for k, v in self.hparams.items() if v is not None},
                       trial_id=os.path.basename(os.path.normpath(self.log_dir)))
        self._writer.flush()  # the run joins the HParams table while it trains

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor.name)
        if self.monitor.improves(value, self._best_value):
            self._best, self._best_value, self._best_epoch = self._final(logs), value, epoch

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
        if isinstance(value, dict):  # a nested group: its fields, flat
            values.update({k: v for k, v in value.items() if k not in NOT_HPARAMS})
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


def figure_image(fig: Figure) -> tf.Tensor:
    """A figure as a (1, height, width, 4) uint8 tensor for `tf.summary.image`."""
    # The Agg canvas renders without pyplot: no GUI backend, no global figure state.
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return tf.image.decode_png(buffer.getvalue(), channels=4)[tf.newaxis]


