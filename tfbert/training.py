"""Fine-tuning, top to bottom: data -> task -> model (in a strategy scope) -> tf.data -> fit -> metrics -> export.

    splits = load_splits(config)                  files -> de-duplicated train / validation
    task = for_training(...)                      targets, head, loss, metrics
    run = start_run(...)                          strategy, worker, run paths, resumed epoch
    model = build_model(...)                      preprocessor + BERT + head, fast layers
    data = build_datasets(...)                    tokenized once, length-bucketed
    fitted = loop.fit(...)                        backups, TensorBoard, early stopping
    metrics = validation metrics, baseline, ensemble
    export_model(...)                             TF Serving SavedModel (chief only)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import sys
from typing import Any

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfbert import atomic, data as data_lib, keras_compat, loop, preflight, presets
from tfbert.baseline import BaselineResult, GraphBaseline, tfidf_baseline
from tfbert.config import TrainConfig
from tfbert.export import export_saved_model
from tfbert.model import TextClassifier, build_backbone, build_classifier
from tfbert.model_card import DataFile, ModelCard, base_licence, library_versions
from tfbert.optimization import build_optimizer
from tfbert.pipeline import EpochPlan, make_dataset, make_training_dataset, predict_by_index, without_auto_shard, \
    worker_shard
from tfbert.preprocessor import TextPreprocessor
from tfbert.resume import Monitor, best_epoch_callbacks, previous_best
from tfbert.serving import ExportMetadata
from tfbert import tasks as tasks_lib
from tfbert.tasks import Task
from tfbert import tensorboard
from tfbert.vocabulary import learn_vocabulary

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` returns. `metrics` are the exported model's (the ensemble's with --ensemble-baseline)."""

    export_path: str | None
    metrics: dict[str, Any]
    task: Task
    run_dir: str
    model: TextClassifier
    sample: str = ""  # a validation text (joined with its pair by a tab), for the next commands' example

    @property
    def label_names(self) -> list[str]:
        return list(self.task.label_names)

    @property
    def preprocessor(self) -> TextPreprocessor:
        return self.model.preprocessor


def train(config: TrainConfig) -> TrainResult:
    """Run one training job as described by `config`; export unless this is a non-chief worker."""
    model_name = config.model_name or _default_name(config)
    preflight.train(config, model_name)  # before anything slow: a run that would fail at its end fails now
    run = loop.start_run(_run_settings(config), model_name)
    logger.debug("Config:\n%s", config.to_json())
    splits = data_lib.load_splits(config)
    task = tasks_lib.for_training(config.task, splits.train.labels, config.threshold,
                                  config.class_weight == "balanced", config.loss)
    task.check_labels(splits.validation.labels, "The validation data")
    _log_examples(splits, task)
    logger.debug("Task: %s", json.dumps(task.to_config(), ensure_ascii=False))
    with run.strategy.scope():
        model = build_model(config, splits.train, task)
    data = build_datasets(config, model.preprocessor, splits, task, run)
    with run.strategy.scope():
        learning_rate = _compile(model, config, task, data.steps * config.epochs, run.strategy.num_replicas_in_sync)
    logger.info("Model: %s, %s parameters, up to %d tokens per text; %d steps per epoch, peak learning rate %g.",
                _describe_backbone(config), f"{model.count_params():,}", config.max_seq_length, data.steps,
                learning_rate)
    logger.info("Logs: %s; export: %s", run.paths.run_dir, os.path.join(config.export_dir, model_name))
    callbacks = _callbacks(config, run, splits, task, data, learning_rate)
    fitted = loop.fit(model, data.train, None, config.epochs, data.steps, callbacks, run)

    truth = task.truth(splits.validation.labels)
    bert = predict_by_index(lambda features: task.scores(model(features, training=False)), data.indexed,
                            len(splits.validation), task.score_width)
    metrics = {**task.evaluate(truth, bert), "train_seconds": round(fitted.seconds, 1)}
    logger.info("%s (training took %.0f s)", task.summary_line(metrics), fitted.seconds)
    baseline = tfidf_baseline(task, splits) if config.baseline and run.worker.chief else None
    if baseline is not None:
        metrics = _with_baseline(config, task, truth, bert, baseline, metrics)
    export_path = None
    if run.worker.chief:
        write_summary(run.paths.run_dir, model, fitted.history, metrics, data.steps, task)
        graph_baseline = GraphBaseline(baseline.model, task) if config.ensemble_baseline else None
        metadata = _metadata(config, splits, task, learning_rate, run.paths.run_dir)
        export_path = export_model(config, model, task, splits, metrics, metadata, graph_baseline)
    validation = splits.validation
    sample = validation.texts[0][:40] + (f"\t{validation.pairs[0][:40]}" if validation.pairs else "") \
        if len(validation) else ""
    return TrainResult(export_path, metrics, task, run.paths.run_dir, model, sample)


def _run_settings(config: TrainConfig) -> loop.RunSettings:
    return loop.RunSettings(config.strategy, config.tpu, config.seed, config.mixed_precision, config.log_dir,
                            config.run_name, config.backup_dir)


def _default_name(config: TrainConfig) -> str:
    return os.path.splitext(os.path.basename(config.data))[0] if config.data else data_lib.DEFAULT_TASK_NAME


def _log_examples(splits: data_lib.Splits, task: Task) -> None:
    train = splits.train
    labels = f"labels {', '.join(task.label_names)}" if task.label_names else "numeric targets"
    logger.info("Data: %s: %d training / %d validation examples; %s, %s.", splits.name, len(train),
                len(splits.validation), task.name, labels)
    for i in range(min(3, len(train))):
        logger.debug("Example %d [%s]: %s", i, train.labels[i], train.texts[i][:80])


def _describe_backbone(config: TrainConfig) -> str:
    if config.backbone_preset:
        return f"BERT from --preset {config.backbone_preset}"
    shape = config.model
    return f"BERT from scratch ({shape.num_layers} layers x {shape.hidden_dim})"


def build_model(config: TrainConfig, train: data_lib.Examples, task: Task) -> TextClassifier:
    """Preprocessor + BERT (a preset's, or one from config) + the task's head, with the fast layers.

    From config, the vocabulary is learned from the training examples only,
    from both texts of a pair (learned from the first alone, characters
    that appear only in the second would be [UNK]).
    """
    if config.backbone_preset:
        pretrained = presets.load_pretrained(config.backbone_preset, config.max_seq_length)
        tokenizer, backbone = pretrained.tokenizer, pretrained.backbone
    else:
        vocab = learn_vocabulary(train.texts + (train.pairs or []), config.model.vocabulary_size, config.lowercase)
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=config.lowercase)
        backbone = build_backbone(config.model, len(vocab), max_sequence_length=config.max_seq_length)
    preprocessor = TextPreprocessor.from_tokenizer(tokenizer, config.max_seq_length, pair=bool(config.text_pair_column),
                                                   truncation=config.truncation)
    model = build_classifier(backbone, task.output_units, task.activation, config.model.dropout, preprocessor)
    return keras_compat.use_fast_layers(model)


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The pipelines of one run.

    Args:
        train: endless stream of shuffled training epochs (this worker's shard).
        indexed: the validation batches with each example's index instead of its target: the run's one
            validation pass per epoch (`tensorboard.ValidationSummaries`) computes every validation log from them.
        steps: training steps per epoch.
    """

    train: tf.data.Dataset
    indexed: tf.data.Dataset
    steps: int


def build_datasets(config: TrainConfig, preprocessor: TextPreprocessor, splits: data_lib.Splits,
                   task: Task, run: loop.Run) -> TrainingData:
    """Tokenized, cached, length-bucketed pipelines; under multi-worker training each worker its own shard."""
    train, validation = splits.train, splits.validation
    shard = worker_shard(len(train), config.batch_size, run.worker.count, run.worker.index)
    train = train.subset(shard.indices)
    plan = EpochPlan(shard.batch_size, config.seed, config.bucket_by_length, run.resumed_at, shard.epoch_steps)
    train_ds, steps = make_training_dataset(preprocessor, train.texts, task.targets(train.labels), train.pairs, plan)
    # Bucketing reorders the examples, so these batches carry each example's index.
    indexed = make_dataset(preprocessor, validation.texts, np.arange(len(validation)), validation.pairs,
                           config.batch_size, bucket=config.bucket_by_length)
    if run.worker.multi_worker:
        train_ds = without_auto_shard(train_ds)
    log = logger.info if run.worker.count * run.strategy.num_replicas_in_sync > 1 else logger.debug
    log("Global batch %d = %d worker(s) x %d replica(s) in all, %d per replica.", config.batch_size,
                run.worker.count, run.strategy.num_replicas_in_sync,
                config.batch_size // max(run.strategy.num_replicas_in_sync, 1))
    return TrainingData(train_ds, indexed, steps)


def _compile(model: keras.Model, config: TrainConfig, task: Task, total_steps: int,
             replicas: int) -> float:
    learning_rate = presets.learning_rate_for(config.backbone_preset, config.learning_rate) * (replicas if config.scale_lr else 1)
    model.compile(
        optimizer=build_optimizer(learning_rate, total_steps, config.warmup_ratio, config.weight_decay,
                                  config.layer_lr_decay),
        loss=task.loss(),
        metrics=task.training_metrics(),
        jit_compile=config.jit_compile,
    )
    return learning_rate


def _callbacks(config: TrainConfig, run: loop.Run, splits: data_lib.Splits, task: Task,
               data: TrainingData, learning_rate: float) -> list[keras.callbacks.Callback]:
    """Logging first: it adds learning rate, throughput and the task's validation metrics to the logs the others read.

    Every worker computes the validation metrics (early stopping may follow one of them, and all workers
    must stop together); only the chief writes summaries.
    """
    monitor = Monitor(*task.monitor(config.metric_for_best_model))
    best = previous_best(run.paths, run.resumed_at, monitor)
    validation = splits.validation
    examples = tensorboard.ValidationSet(task.truth(validation.labels), task.targets(validation.labels),
                                         data_lib.joined_texts(validation.texts, validation.pairs))
    summaries = [tensorboard.ValidationSummaries(data.indexed, examples, task,
                                                 os.path.join(run.paths.log_dir, "validation"), run.worker.chief)]
    if run.worker.chief:  # one writer per run directory
        summaries.append(tensorboard.HParamsSummary(run.paths.log_dir, tensorboard.config_hparams(config, learning_rate),
                                                    task.final_metrics, monitor, best))
    patience = config.early_stopping_patience or config.epochs
    return [
        *loop.logging_callbacks(run, config.batch_size, config.log_every, len(splits.train), summaries,
                                config.profile_steps),
        *best_epoch_callbacks(run.paths, patience, run.resumed_at, best, monitor),
    ]


def _with_baseline(config: TrainConfig, task: Task, truth: np.ndarray, bert: np.ndarray,
                   baseline: BaselineResult, metrics: dict) -> dict:
    metrics = {**metrics, "baseline": baseline.metrics}
    if config.ensemble_baseline:
        return ensemble_metrics(task, truth, bert, baseline.scores, metrics)
    return metrics


def ensemble_metrics(task: Task, truth: np.ndarray, bert: np.ndarray, baseline: np.ndarray,
                     bert_metrics: dict) -> dict:
    """Metrics of the equal-weight mean of BERT's and the baseline's scores (what the export serves).

    Equal weights are fixed in advance: a weight tuned on the validation set
    would make its accuracy an optimistic estimate. BERT's own metrics move
    under "bert"; "baseline" and "train_seconds" stay at the top level.
    """
    metrics = task.evaluate(truth, (bert + baseline) / 2.0)
    metrics["baseline"] = bert_metrics["baseline"]
    metrics["train_seconds"] = bert_metrics["train_seconds"]
    metrics["bert"] = {k: v for k, v in bert_metrics.items() if k != "baseline"}
    logger.info("Ensemble (BERT + baseline, equal weights): %s", task.summary_line(metrics))
    return metrics


def write_summary(run_dir: str, model: keras.Model, history: keras.callbacks.History, metrics: dict,
                  steps: int, task: Task) -> None:
    """`<run dir>/run_summary.json`: the task (with its class weights), optimizer steps, history, final metrics."""
    summary = {
        "task": task.to_config(),
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "steps_per_epoch": steps,
        "epochs_run": list(history.epoch),
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "metrics": metrics,
    }
    atomic.write_text(os.path.join(run_dir, "run_summary.json"), json.dumps(summary, indent=2))


def _metadata(config: TrainConfig, splits: data_lib.Splits, task: Task, learning_rate: float,
              run_dir: str) -> ExportMetadata:
    return ExportMetadata(
        model_name=config.model_name or splits.name, task=task.name, label_names=task.label_names,
        text_column=config.text_column, label_column=config.label_column, text_pair_column=config.text_pair_column,
        label_separator=config.label_separator, label_columns=config.label_format.columns,
        task_config=task.to_config(), dataset=splits.name, learning_rate=learning_rate, run_dir=run_dir,
        config=config.to_dict(),
    )


def export_model(config: TrainConfig, model: TextClassifier, task: Task, splits: data_lib.Splits,
                 metrics: dict, metadata: ExportMetadata, baseline: GraphBaseline | None = None) -> str:
    """`<export-dir>/<model-name>/<version>/` with labels, config, metrics, vocabulary, model card, warmup requests."""
    validation = splits.validation
    extra = {
        "labels.txt": "".join(name + "\n" for name in metadata.label_names),
        "config.json": metadata.to_json(),
        "metrics.json": json.dumps(metrics, indent=2),
        "vocab.txt": "".join(token + "\n" for token in model.preprocessor.vocabulary),
        "README.md": model_card(config, splits, task, metrics, metadata.model_name).render,
    }
    warmup = validation.texts[:8] if validation.pairs is None else list(zip(validation.texts[:8], validation.pairs[:8]))
    return export_saved_model(model, task, os.path.join(config.export_dir, metadata.model_name),
                              config.version, extra, warmup_texts=warmup, baseline=baseline)


def command_line() -> str:
    """The command this process runs, as a user would type it again (`python train.py ...`)."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "train.py"
    if program.endswith(".py"):
        return shlex.join(["python", os.path.relpath(program) if not program.startswith("..") else program,
                           *sys.argv[1:]])
    return shlex.join([os.path.basename(program), *sys.argv[1:]])


def model_card(config: TrainConfig, splits: data_lib.Splits, task: Task, metrics: dict,
               model_name: str) -> ModelCard:
    """The export's `assets.extra/README.md`: task, base checkpoint and licence, data and split, metrics, command."""
    files = [path for path in (config.data, config.validation_data) if path] or data_lib.default_corpus_files()
    preset = config.backbone_preset
    directory = presets.resolve(preset) if preset else None
    base = f"--preset {preset}" if preset else "none (BERT from scratch)"
    return ModelCard(model_name=model_name, task=task.to_config(), base=base,
                     base_licence=base_licence(preset, directory if directory and os.path.isdir(directory) else None),
                     data=tuple(DataFile.of(path) for path in files), split=data_lib.split_description(config, splits),
                     metrics=metrics, command=command_line(),
                     versions=library_versions())
