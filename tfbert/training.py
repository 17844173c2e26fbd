"""Training, top to bottom: data -> preprocessing + model (in a strategy scope) -> fit -> metrics -> export."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfbert import data as data_lib
from tfbert.config import TrainConfig
from tfbert.distribute import get_strategy, is_chief
from tfbert.export import export_saved_model
from tfbert.metrics import classification_metrics
from tfbert.model import build_backbone, build_classifier, probabilities_per_label
from tfbert.optimization import build_optimizer
from tfbert.preprocessing import TextPreprocessor, learn_vocabulary, load_tokenizer, make_dataset

logger = logging.getLogger(__name__)

EARLY_STOPPING_PATIENCE = 2  # epochs without a lower validation loss before stopping


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


def build_preprocessor_and_backbone(config: TrainConfig, train_texts: list[str]) -> tuple[TextPreprocessor, keras.Model]:
    """From a preset, or from config with a vocabulary learned on the training texts only."""
    pair = bool(config.text_pair_column)
    if config.preset:
        tokenizer = load_tokenizer(config.preset)
        backbone = keras_hub.models.BertBackbone.from_preset(config.preset)
    else:
        vocab = learn_vocabulary(train_texts, config.model.vocabulary_size, config.lowercase)
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=config.lowercase)
        backbone = build_backbone(config.model, len(vocab), max_sequence_length=config.max_seq_length)
    if config.max_seq_length > backbone.max_sequence_length:
        raise ValueError(
            f"--max-seq-length {config.max_seq_length} exceeds the backbone's {backbone.max_sequence_length} "
            f"position embeddings; use --max-seq-length {backbone.max_sequence_length} or less."
        )
    return TextPreprocessor(tokenizer, config.max_seq_length, pair=pair), backbone


def _log_examples(train: data_lib.Examples, validation: data_lib.Examples, names: list[str]) -> None:
    logger.info("Split: %d training / %d validation examples; labels: %s", len(train), len(validation), names)
    for i in range(min(3, len(train))):
        logger.info("Example %d [%s]: %s", i, train.labels[i], train.texts[i][:80])


def _callbacks(run_dir: str) -> list[keras.callbacks.Callback]:
    return [
        keras.callbacks.TensorBoard(log_dir=run_dir),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=EARLY_STOPPING_PATIENCE, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "checkpoints", "best.keras"), monitor="val_loss", save_best_only=True),
    ]


def with_known_length(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Count the batches once and declare the count.

    Bucketed batching yields a data-dependent number of batches. Counting
    them (which also fills the token cache) lets the schedule end exactly
    at the last step and gives Keras the epoch length for its progress bar.
    """
    count = int(ds.reduce(0, lambda n, _: n + 1))
    return ds.apply(tf.data.experimental.assert_cardinality(count))


def predict_dataset(model: keras.Model, ds) -> tuple[np.ndarray, np.ndarray]:
    """(label ids, per-label probabilities) over a `(features, targets)` dataset, in its order."""
    ids, probs = [], []
    for features, targets in ds:
        outputs = model(features, training=False)
        probs.append(np.asarray(probabilities_per_label(outputs)))
        t = np.asarray(targets)
        ids.append(t[:, 0].astype(np.int64) if t.ndim == 2 else t.astype(np.int64))
    return np.concatenate(ids), np.concatenate(probs)


def train(config: TrainConfig) -> TrainResult:
    """Run one training job as described by `config`; export unless this is a non-chief worker."""
    keras.utils.set_random_seed(config.seed)
    logger.info("Config:\n%s", config.to_json())
    train_set, validation, task = load_splits(config)
    names = data_lib.label_names(train_set.labels)
    if len(names) < 2:
        raise ValueError(f"Training data has only {len(names)} class ({names}); a classifier needs at least 2.")
    data_lib.check_labels(validation, names, "The validation data")
    _log_examples(train_set, validation, names)
    model_name = config.model_name or task
    run_dir = os.path.join(config.log_dir, config.run_name or f"{model_name}-{time.strftime('%Y%m%d-%H%M%S')}")

    strategy = get_strategy(config.strategy)
    with strategy.scope():
        preprocessor, backbone = build_preprocessor_and_backbone(config, train_set.texts)
        model = build_classifier(backbone, len(names), dropout=config.model.dropout)
    batch = config.batch_size
    logger.info("Global batch %d = %d replica(s) x %d.", batch, strategy.num_replicas_in_sync, batch // max(strategy.num_replicas_in_sync, 1))
    train_ids, val_ids = _label_ids(train_set, names), _label_ids(validation, names)
    train_ds = make_dataset(preprocessor, train_set.texts, _targets(train_ids, len(names)), train_set.pairs,
                            batch, shuffle=True, seed=config.seed, bucket=config.bucket_by_length)
    val_ds = make_dataset(preprocessor, validation.texts, _targets(val_ids, len(names)), validation.pairs,
                          batch, bucket=config.bucket_by_length)
    train_ds, val_ds = with_known_length(train_ds), with_known_length(val_ds)
    steps_per_epoch = int(train_ds.cardinality())
    with strategy.scope():
        binary = len(names) == 2
        model.compile(
            optimizer=build_optimizer(config.resolved_learning_rate, steps_per_epoch * config.epochs,
                                      config.warmup_ratio, config.weight_decay),
            loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy") if binary
                     else keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    logger.info("Model: %d parameters; %d steps per epoch.", model.count_params(), steps_per_epoch)
    start = time.time()
    # shuffle=False: train_ds reshuffles itself every epoch (Keras cannot shuffle a tf.data pipeline).
    # One line per epoch when stdout is a log file rather than a terminal.
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=_callbacks(run_dir), shuffle=False,
              verbose=1 if sys.stdout.isatty() else 2)
    train_seconds = time.time() - start

    y_true, probabilities = predict_dataset(model, val_ds)
    metrics = classification_metrics(y_true, probabilities, names)
    metrics["train_seconds"] = round(train_seconds, 1)
    logger.info("Validation Loss: %.4f, Validation Accuracy: %.4f (training took %.0f s)",
                metrics["loss"], metrics["accuracy"], train_seconds)
    export_path = None
    if is_chief():
        resolved = {**config.to_dict(), "model_name": model_name, "task": task, "label_names": names,
                    "learning_rate": config.resolved_learning_rate, "run_dir": run_dir}
        extra = {
            "labels.txt": "".join(name + "\n" for name in names),
            "config.json": json.dumps(resolved, indent=2, ensure_ascii=False),
            "metrics.json": json.dumps({k: v for k, v in metrics.items() if k != "report"}, indent=2),
            "vocab.txt": "".join(token + "\n" for token in preprocessor.vocabulary),
        }
        export_path = export_saved_model(model, preprocessor, names, os.path.join(config.export_dir, model_name),
                                         config.version, extra)
    return TrainResult(export_path, metrics, names, run_dir, model, preprocessor)
