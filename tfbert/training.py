"""Training, top to bottom: data -> preprocessing + model (in a strategy scope) -> fit -> metrics -> export."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfbert import callbacks as callbacks_lib
from tfbert import data as data_lib
from tfbert.baseline import GraphBaseline, tfidf_baseline
from tfbert.config import TrainConfig
from tfbert.distribute import get_strategy, is_chief, set_precision, worker_info
from tfbert.export import export_saved_model
from tfbert.metrics import classification_metrics
from tfbert.model import build_backbone, build_classifier
from tfbert.optimization import build_optimizer
from tfbert.preprocessing import (
    TextPreprocessor, check_preset, learn_vocabulary, load_tokenizer, make_dataset, make_training_dataset,
)

logger = logging.getLogger(__name__)

BACKUP_METADATA = "training_metadata.json"  # written by keras.callbacks.BackupAndRestore


def best_checkpoint(run_dir: str) -> str:
    """Where the best epoch's Keras checkpoint goes."""
    return os.path.join(run_dir, "checkpoints", "best.keras")


@dataclasses.dataclass
class TrainResult:
    export_path: str | None
    metrics: dict
    label_names: list[str]
    run_dir: str
    model: keras.Model | None = None
    preprocessor: TextPreprocessor | None = None


def load_splits(config: TrainConfig) -> tuple[data_lib.Examples, data_lib.Examples, str]:
    """Training and validation examples, de-duplicated and leakage-free, plus the task name."""
    if config.data:
        examples = data_lib.load_examples(config.data, config.text_column, config.label_column, config.text_pair_column)
        task = os.path.splitext(os.path.basename(config.data))[0]
    else:
        if config.text_pair_column:
            raise ValueError("--text-pair-column needs --data: the default corpus has single texts only.")
        examples, task = data_lib.load_default_corpus(), data_lib.DEFAULT_TASK_NAME
    examples = data_lib.deduplicate(examples)
    if config.validation_data:
        validation = data_lib.load_examples(
            config.validation_data, config.text_column, config.label_column, config.text_pair_column
        )
        train = data_lib.drop_overlap(examples, validation)
    else:
        train, validation = data_lib.split(examples)
    if config.max_train_samples is not None:
        train = train.subset(range(min(config.max_train_samples, len(train))))
    return train, validation, task


def _label_ids(examples: data_lib.Examples, names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in examples.labels], dtype=np.int64)


def _targets(ids: np.ndarray, num_classes: int) -> np.ndarray:
    # One sigmoid unit for 2 classes wants float (n, 1) targets; softmax wants ids.
    return ids.astype(np.float32)[:, None] if num_classes == 2 else ids.astype(np.int32)


def build_preprocessor_and_backbone(config: TrainConfig, train_set: data_lib.Examples) -> tuple[TextPreprocessor, keras.Model]:
    """From a preset, or from config with a vocabulary learned on the training examples only.

    The vocabulary is learned from both texts of a pair: learned from the
    first alone, characters that appear only in the second became [UNK].
    """
    pair = bool(config.text_pair_column)
    if config.preset:
        tokenizer, backbone = load_pretrained(config.preset, config.max_seq_length)
    else:
        vocab = learn_vocabulary(train_set.texts + (train_set.pairs or []), config.model.vocabulary_size, config.lowercase)
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=config.lowercase)
        backbone = build_backbone(config.model, len(vocab), max_sequence_length=config.max_seq_length)
    return TextPreprocessor(tokenizer, config.max_seq_length, pair=pair, truncation=config.truncation), backbone


def load_pretrained(preset: str, max_seq_length: int, flag: str = "--preset"):
    """(tokenizer, backbone) of a preset, checked first: reachable, with position embeddings for max_seq_length.

    Shared by train.py's `--preset` and pretrain.py's `--init-from`; `flag`
    names the one the user passed in error messages.
    """
    check_preset(preset, flag)
    tokenizer = load_tokenizer(preset)
    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    if max_seq_length > backbone.max_sequence_length:
        raise ValueError(
            f"--max-seq-length {max_seq_length} exceeds the backbone's {backbone.max_sequence_length} "
            f"position embeddings; use --max-seq-length {backbone.max_sequence_length} or less."
        )
    return tokenizer, backbone


def _log_examples(train: data_lib.Examples, validation: data_lib.Examples, names: list[str]) -> None:
    logger.info("Split: %d training / %d validation examples; labels: %s", len(train), len(validation), names)
    for i in range(min(3, len(train))):
        logger.info("Example %d [%s]: %s", i, train.labels[i], train.texts[i][:80])


def resumed_epoch(backup_dir: str) -> int:
    """The epoch a run restarted with this backup directory trains first (0: a fresh run)."""
    path = os.path.join(backup_dir, BACKUP_METADATA)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def _callbacks(config: TrainConfig, run_dir: str, validation: data_lib.Examples, indexed_val: tf.data.Dataset,
               val_ids: np.ndarray, names: list[str], num_train: int, chief: bool,
               learning_rate: float, resumed_at: int = 0, state_dir: str | None = None) -> list[keras.callbacks.Callback]:
    # Ours come first: they add learning rate, throughput and validation AUC/precision/recall/F1
    # to the logs that the TensorBoard callback then writes (see tfbert/callbacks.py).
    best, keep_best = best_epoch_callbacks(run_dir, config.early_stopping_patience or config.epochs, resumed_at,
                                           state_dir)
    summaries: list[keras.callbacks.Callback] = [
        callbacks_lib.TrainingSpeed(config.batch_size, config.log_every, num_train)]
    if chief:  # one writer per run directory; other workers would only repeat the validation pass
        texts = data_lib.joined_texts(validation.texts, validation.pairs)
        summaries += [
            callbacks_lib.ValidationSummaries(indexed_val, val_ids, texts, names, os.path.join(run_dir, "validation")),
            callbacks_lib.HParamsSummary(run_dir, callbacks_lib.config_hparams(config, learning_rate), best=best),
        ]
    return [
        *summaries,
        callbacks_lib.TensorBoard(log_dir=run_dir, update_freq=config.log_every,
                                  profile_batch=config.profile_steps or 0),
        *keep_best,
    ]


def best_epoch_callbacks(run_dir: str, patience: int, resumed_at: int = 0,
                         state_dir: str | None = None) -> tuple[dict | None, list[keras.callbacks.Callback]]:
    """(the best epoch before a restart or None, [early stopping, best.keras checkpoint, best.json]).

    Patience 0 means "never stop early"; the best epoch's weights are restored
    (and exported) either way, also when that epoch ran before a crash and the
    run was resumed at epoch `resumed_at` (see `callbacks.BestEpoch`).
    best.json goes beside best.keras, or into `state_dir`: a non-chief worker
    writes its checkpoints to a scratch directory that a restart does not
    find again, so it keeps best.json in its backup directory instead. Its
    early stopping then resumes with the chief's count (the same validation
    losses), so all workers stop at the same epoch; only its weights, which
    are never exported, are not restored.
    """
    best_file = os.path.join(state_dir or os.path.dirname(best_checkpoint(run_dir)), "best.json")
    best = callbacks_lib.BestEpoch.read(best_file) if resumed_at else None  # a fresh run ignores an old file
    if best is not None and best["epoch"] >= resumed_at:  # not from this run's epochs (an old run of the same name)
        logger.warning("Ignoring %s: its epoch %d is not before the resumed epoch %d.", best_file, best["epoch"] + 1,
                       resumed_at + 1)
        best = None
    if best is not None:
        logger.info("Resumed at epoch %d; the best epoch so far is %d (val_loss %.4f).",
                    resumed_at + 1, best["epoch"] + 1, best["logs"]["val_loss"])
    return best, [
        callbacks_lib.ResumableEarlyStopping(best, best_checkpoint(run_dir), resumed_at, monitor="val_loss",
                                             patience=patience),
        keras.callbacks.ModelCheckpoint(best_checkpoint(run_dir), monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=best["logs"]["val_loss"] if best else None),
        callbacks_lib.BestEpoch(best_file, best),
    ]


def with_known_length(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Count the batches once (bucketing makes the count data-dependent) and declare it to Keras."""
    count = int(ds.reduce(0, lambda n, _: n + 1))
    return ds.apply(tf.data.experimental.assert_cardinality(count))


def resolve_run_dir(config: TrainConfig, model_name: str, multi_worker: bool = False) -> str:
    """`<log-dir>/<run-name>`; without --run-name, the newest unfinished run of this model, else a new one.

    A run that dies leaves `<run dir>/backup/` behind (Keras deletes it when
    training finishes), so starting the same command again finds that run
    and resumes it instead of starting from scratch. Multi-worker runs default
    to `<log-dir>/<model-name>` (no timestamp) so that all workers agree.
    """
    if config.run_name:
        return os.path.join(config.log_dir, config.run_name)
    if multi_worker:
        return os.path.join(config.log_dir, model_name)
    if not config.backup_dir and os.path.isdir(config.log_dir):
        prefix = f"{model_name}-"
        unfinished = sorted(
            name for name in os.listdir(config.log_dir)
            if name.startswith(prefix) and os.path.isfile(os.path.join(config.log_dir, name, "backup", BACKUP_METADATA))
        )
        if unfinished:
            logger.info("Resuming the unfinished run %s.", unfinished[-1])
            return os.path.join(config.log_dir, unfinished[-1])
    return os.path.join(config.log_dir, f"{model_name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _datasets(config, preprocessor, train_set, validation, names, workers: tuple[int, int], first_epoch: int = 0):
    """(train_ds, val_ds, steps per epoch), the stream starting at `first_epoch`. Multi-worker: each worker its own shard."""
    num_workers, index = workers
    smallest_shard = len(train_set) // num_workers
    if num_workers > 1:
        # Shard the examples, not the batches: each worker tokenizes and buckets
        # only its share, and every worker runs the same number of steps.
        train_set = train_set.subset(range(index, len(train_set), num_workers))
    batch = config.batch_size // num_workers  # per worker; split again across its local replicas
    train_ids, val_ids = _label_ids(train_set, names), _label_ids(validation, names)
    # Every worker runs the same number of steps per epoch (shards differ in size by at most one example).
    epoch_steps = max(1, smallest_shard // batch) if num_workers > 1 else None
    train_ds, steps = make_training_dataset(preprocessor, train_set.texts, _targets(train_ids, len(names)),
                                            train_set.pairs, batch, seed=config.seed, bucket=config.bucket_by_length,
                                            first_epoch=first_epoch, epoch_steps=epoch_steps)
    val_ds = with_known_length(make_dataset(preprocessor, validation.texts, _targets(val_ids, len(names)),
                                            validation.pairs, batch, bucket=config.bucket_by_length))
    if num_workers > 1:  # each worker feeds its own shard: auto-sharding off
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
    return train_ds, val_ds, steps


def _compile(model: keras.Model, config: TrainConfig, total_steps: int, num_classes: int, replicas: int) -> float:
    learning_rate = config.resolved_learning_rate * (replicas if config.scale_lr else 1)
    binary = num_classes == 2
    model.compile(
        optimizer=build_optimizer(learning_rate, total_steps, config.warmup_ratio, config.weight_decay,
                                  config.layer_lr_decay),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy") if binary
                 else keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile,
    )
    return learning_rate


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers where it stopped, so training can report it and skip the export."""

    def __init__(self):
        super().__init__()
        self.stopped_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_at is None:
            self.stopped_at = (self._epoch, batch)


def _fit(model, config, train_ds, val_ds, steps, callbacks, backup_dir, run_dir) -> keras.callbacks.History:
    nan_guard = StopOnNaN()
    # Backups at epoch ends only: Keras 3.15's BackupAndRestore restores the
    # epoch but not the position inside it, so mid-epoch backups would replay
    # part of an epoch and change the number of optimizer steps.
    backup = callbacks_lib.OrderedBackupAndRestore(backup_dir, save_freq="epoch")
    try:
        # shuffle=False: train_ds reshuffles itself every epoch (Keras cannot shuffle a tf.data pipeline).
        # One line per epoch when stdout is a log file rather than a terminal.
        history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps,
                            callbacks=[backup, *callbacks, nan_guard, backup.last], shuffle=False,
                            verbose=1 if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        where = f"the backup in {backup_dir}" if os.path.isdir(backup_dir) else "nothing yet (no epoch finished)"
        logger.error("Interrupted. Kept %s; run the same command again to resume.", where)
        raise
    if nan_guard.stopped_at is not None:
        epoch, batch = nan_guard.stopped_at
        best = best_checkpoint(run_dir)
        kept = f"The last good checkpoint is {best}." if os.path.isfile(best) else "No epoch finished, so no checkpoint was kept."
        raise ValueError(
            f"Training stopped: the loss became NaN at epoch {epoch + 1}, batch {batch + 1}. {kept} "
            "Nothing was exported. Lower --learning-rate (or check the data), then rerun."
        )
    return history


def _export(config, model, preprocessor, names, validation, metrics, model_name, task, run_dir, learning_rate,
            baseline=None) -> str:
    resolved = {**config.to_dict(), "model_name": model_name, "task": task, "label_names": names,
                "learning_rate": learning_rate, "run_dir": run_dir}
    extra = {
        "labels.txt": "".join(name + "\n" for name in names),
        "config.json": json.dumps(resolved, indent=2, ensure_ascii=False),
        "metrics.json": json.dumps({k: v for k, v in metrics.items() if k != "report"}, indent=2),
        "vocab.txt": "".join(token + "\n" for token in preprocessor.vocabulary),
    }
    warmup = validation.texts[:8] if validation.pairs is None else list(zip(validation.texts[:8], validation.pairs[:8]))
    return export_saved_model(model, preprocessor, names, os.path.join(config.export_dir, model_name),
                              config.version, extra, warmup_texts=warmup, baseline=baseline)


def _load(config: TrainConfig):
    train_set, validation, task = load_splits(config)
    names = data_lib.label_names(train_set.labels)
    if len(names) < 2:
        raise ValueError(
            f"The training data has only {len(names)} class ({', '.join(map(repr, names))}); "
            "a classifier needs at least 2. Check --label-column."
        )
    data_lib.check_labels(validation, names, "The validation data")
    _log_examples(train_set, validation, names)
    return train_set, validation, task, names


def train(config: TrainConfig) -> TrainResult:
    """Run one training job as described by `config`; export unless this is a non-chief worker."""
    strategy = get_strategy(config.strategy, config.tpu)  # first: multi-worker needs a fresh runtime
    keras.utils.set_random_seed(config.seed)
    set_precision(config.mixed_precision)
    logger.info("Config:\n%s", config.to_json())
    train_set, validation, task, names = _load(config)
    model_name = config.model_name or task
    workers = worker_info(strategy)
    run_dir = resolve_run_dir(config, model_name, multi_worker=workers[0] > 1)
    # Only the chief writes logs, checkpoints and the export; other workers
    # write their (identical) logs to a scratch dir, and their backups beside
    # the chief's so a restarted cluster resumes every worker.
    chief = is_chief()
    callback_dir = run_dir if chief else tempfile.mkdtemp(prefix=f"tfbert-worker{workers[1]}-")
    with strategy.scope():
        preprocessor, backbone = build_preprocessor_and_backbone(config, train_set)
        model = build_classifier(backbone, len(names), dropout=config.model.dropout)
    replicas = strategy.num_replicas_in_sync
    logger.info("Global batch %d = %d worker(s) x %d replica(s) in all, %d per replica.",
                config.batch_size, workers[0], replicas, config.batch_size // max(replicas, 1))
    backup_dir = config.backup_dir or os.path.join(run_dir, "backup")
    if workers[1]:
        backup_dir = f"{backup_dir}-worker{workers[1]}"
    resumed_at = resumed_epoch(backup_dir)
    train_ds, val_ds, steps = _datasets(config, preprocessor, train_set, validation, names, workers, resumed_at)
    with strategy.scope():
        learning_rate = _compile(model, config, steps * config.epochs, len(names), replicas)
    logger.info("Model: %d parameters; %d steps per epoch; peak learning rate %g.", model.count_params(), steps, learning_rate)
    val_ids = _label_ids(validation, names)
    # val_ds's batches, but carrying each example's index: bucketing reorders the examples.
    indexed_val = make_dataset(preprocessor, validation.texts, np.arange(len(validation)), validation.pairs,
                               config.batch_size, bucket=config.bucket_by_length)
    callbacks = _callbacks(config, callback_dir, validation, indexed_val, val_ids, names, len(train_set), chief,
                           learning_rate, resumed_at, state_dir=None if chief else backup_dir)
    start = time.time()
    history = _fit(model, config, train_ds, val_ds, steps, callbacks, backup_dir, run_dir)
    train_seconds = time.time() - start

    # BERT's probabilities in the validation set's order, so they line up with val_ids and the baseline's.
    probabilities = callbacks_lib.predict_by_index(lambda features: model(features, training=False), indexed_val,
                                                   len(validation), len(names))
    metrics = classification_metrics(val_ids, probabilities, names)
    metrics["train_seconds"] = round(train_seconds, 1)
    logger.info("Validation Loss: %.4f, Validation Accuracy: %.4f (training took %.0f s)",
                metrics["loss"], metrics["accuracy"], train_seconds)
    graph_baseline = None
    if config.baseline and chief:
        baseline_metrics, baseline_model, baseline_probabilities = tfidf_baseline(
            train_set.texts, _label_ids(train_set, names), validation.texts, val_ids, names,
            train_set.pairs, validation.pairs)
        metrics["baseline"] = baseline_metrics
        if config.ensemble_baseline:
            graph_baseline = GraphBaseline(baseline_model, len(names))
            metrics = ensemble_metrics(val_ids, probabilities, baseline_probabilities, names, metrics)
    export_path = None
    if chief:
        _write_summary(run_dir, model, history, metrics, steps)
        export_path = _export(config, model, preprocessor, names, validation, metrics, model_name, task, run_dir,
                              learning_rate, graph_baseline)
    return TrainResult(export_path, metrics, names, run_dir, model, preprocessor)


def ensemble_metrics(val_ids: np.ndarray, bert: np.ndarray, baseline: np.ndarray, names: list[str],
                     bert_metrics: dict) -> dict:
    """Metrics of the equal-weight mean of BERT's and the baseline's probabilities (what the export serves).

    Equal weights are fixed in advance: a weight tuned on the validation set
    would make its accuracy an optimistic estimate. BERT's own metrics move
    under "bert"; "baseline" and "train_seconds" stay at the top level.
    """
    metrics = classification_metrics(val_ids, (bert + baseline) / 2.0, names)
    metrics["baseline"] = bert_metrics["baseline"]
    metrics["train_seconds"] = bert_metrics["train_seconds"]
    metrics["bert"] = {k: v for k, v in bert_metrics.items() if k not in ("report", "baseline")}
    logger.info("Ensemble (BERT + baseline, equal weights): Validation Loss: %.4f, Validation Accuracy: %.4f, "
                "F1 %.4f", metrics["loss"], metrics["accuracy"], metrics["f1"])
    return metrics


def _write_summary(run_dir: str, model: keras.Model, history: keras.callbacks.History, metrics: dict, steps: int) -> None:
    """`<run dir>/run_summary.json`: optimizer steps, per-epoch history and final metrics."""
    summary = {
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "steps_per_epoch": steps,
        "epochs_run": list(history.epoch),
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "metrics": {k: v for k, v in metrics.items() if k != "report"},
    }
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "run_summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
