"""Where a BERT comes from: keras-hub preset names, local keras-hub presets and Hugging Face directories.

The one module that reads a preset: it checks that a preset can be loaded
before anything slow starts, loads its tokenizer and backbone, reads the
fine-tuning learning rate a `pretrain.py` preset recorded, and writes
presets atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket

import keras
import keras_hub

from tfbert import atomic

logger = logging.getLogger(__name__)

PRETRAIN_SUMMARY = "pretrain_summary.json"  # written into a pretrain.py preset, read by train.py
FROM_SCRATCH_LEARNING_RATE = 5e-4
BERT_LEARNING_RATE = 2e-5  # BERT's fine-tuning rate, for presets that recommend none


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A preset's tokenizer and backbone."""

    tokenizer: keras_hub.models.BertTokenizer
    backbone: keras_hub.models.BertBackbone


def _is_hf_checkpoint(preset: str) -> bool:
    path = os.path.join(preset, "config.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return "registered_name" not in json.load(f)


PRESET_HOSTS = {"hf://": "huggingface.co", "modelscope://": "www.modelscope.cn"}  # anything else: Kaggle
# Presets that ship inside the package (tfbert/checkpoints/<name>/, provenance in its README.md).
CHECKPOINTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")


def shipped_presets() -> list[str]:
    """The names of the presets tfbert ships."""
    if not os.path.isdir(CHECKPOINTS_DIR):
        return []
    return sorted(name for name in os.listdir(CHECKPOINTS_DIR) if os.path.isdir(os.path.join(CHECKPOINTS_DIR, name)))


def resolve(preset: str) -> str:
    """A shipped preset's name -> its directory; anything else unchanged (a local dir wins over a shipped name)."""
    if not os.path.isdir(preset) and preset in shipped_presets():
        return os.path.join(CHECKPOINTS_DIR, preset)
    return preset


@functools.cache  # asked once per run: preflight, then loading
def _can_reach(host: str, timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_preset(preset: str, flag: str = "--preset") -> None:
    """Fail fast, with the fix, on a preset that is neither a local dir nor downloadable from here.

    Without this, an offline machine waits on download retries for minutes
    before keras-hub gives up.

    Raises:
        FileNotFoundError: `preset` looks like a path but does not exist.
        ValueError: unknown preset name, or its hub cannot be reached.
    """
    preset = resolve(preset)
    if os.path.isdir(preset):
        return
    if os.sep in preset and "://" not in preset or preset.startswith((".", "~")):
        raise FileNotFoundError(f"{flag} directory {preset!r} does not exist.")
    handle = "://" in preset
    if not handle and preset not in keras_hub.models.BertBackbone.presets:
        raise ValueError(
            f"Unknown {flag} {preset!r}. Shipped with tfbert: {', '.join(shipped_presets()) or 'none'}; keras-hub "
            f"BERT presets: {', '.join(sorted(keras_hub.models.BertBackbone.presets))}; or pass a local keras-hub "
            "preset or Hugging Face checkpoint directory."
        )
    host = next((h for prefix, h in PRESET_HOSTS.items() if preset.startswith(prefix)), "www.kaggle.com")
    cached = os.path.isdir(os.path.expanduser(os.path.join("~", ".cache", "kagglehub", "models", "keras", "bert", "keras", preset)))
    if not cached and not _can_reach(host):
        local = preset.rstrip("/").rsplit("/", 1)[-1]  # bert_base_zh, or the last part of a hub handle
        raise ValueError(
            f"Cannot download {flag} {preset!r}: {host} is not reachable from here. On a machine with network, run "
            f"`python -c \"import keras_hub as h; h.models.BertBackbone.from_preset('{preset}').save_to_preset('{local}'); "
            f"h.models.BertTokenizer.from_preset('{preset}').save_to_preset('{local}')\"`, copy the '{local}' "
            f"directory here and pass {flag} ./{local}."
        )


def load_tokenizer(preset: str) -> keras_hub.models.BertTokenizer:
    """The BERT tokenizer of a keras-hub preset name, preset dir or Hugging Face checkpoint dir.

    A Hugging Face dir must state `do_lower_case` in `tokenizer_config.json`:
    guessing the case of a vocabulary silently maps every capital to [UNK].
    """
    preset = resolve(preset)
    if os.path.isdir(preset) and _is_hf_checkpoint(preset):
        # keras-hub reads model.safetensors (or a sharded one's index) and vocab.txt, nothing older.
        present = set(os.listdir(preset))
        missing = [] if present & {"model.safetensors", "model.safetensors.index.json"} else ["model.safetensors"]
        missing += [] if "vocab.txt" in present else ["vocab.txt"]
        if missing:
            raise FileNotFoundError(
                f"Hugging Face checkpoint {preset!r} has no {' or '.join(missing)}, which keras-hub reads. If it has "
                f"pytorch_model.bin or tokenizer.json instead, convert it once (no PyTorch needed): "
                f"`python -m tfbert.convert_checkpoint {preset} --output-dir saved_models/presets/NAME`, then pass that dir."
            )
        config_path = os.path.join(preset, "tokenizer_config.json")
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{preset!r} has no tokenizer_config.json; add one with \"do_lower_case\".")
        with open(config_path, encoding="utf-8") as f:
            if "do_lower_case" not in json.load(f):
                raise ValueError(
                    f"{config_path} has no \"do_lower_case\"; add `\"do_lower_case\": true` for an uncased "
                    "vocabulary or false for a cased one."
                )
    for vocabulary in ("vocab.txt", os.path.join("assets", "tokenizer", "vocabulary.txt")):
        if os.path.isdir(preset) and os.path.isfile(os.path.join(preset, vocabulary)):
            check_vocabulary(os.path.join(preset, vocabulary))
    return keras_hub.models.BertTokenizer.from_preset(preset)


def check_vocabulary(path: str) -> None:
    """A WordPiece vocabulary file holds one distinct, non-empty token per line."""
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, 1):
            token = line.rstrip("\r\n")
            if not token.strip():
                raise ValueError(f"{path}: line {number} is empty; a vocabulary holds one token per line. The file "
                                 "is damaged: copy it again.")
            if token in seen:
                raise ValueError(f"{path}: the token {token!r} is on lines {seen[token]} and {number}; each token "
                                 "must appear once. The file is damaged: copy it again.")
            seen[token] = number


def load_pretrained(preset: str, max_seq_length: int, flag: str = "--preset") -> Pretrained:
    """The tokenizer and backbone of a preset, checked first: reachable, with position embeddings for max_seq_length.

    Shared by train.py's `--preset` and pretrain.py's `--init-from`; `flag`
    names the one the user passed in error messages.
    """
    check_preset(preset, flag)
    preset = resolve(preset)
    tokenizer = load_tokenizer(preset)
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(preset)
    except Exception as error:  # safetensors, h5py and JSON errors of a damaged file are not user-error types
        if not os.path.isdir(preset):
            raise
        raise ValueError(f"{flag} {preset!r}: its weights cannot be read ({type(error).__name__}: {error}). The "
                         "file is truncated or damaged: download or copy it again.") from error
    if max_seq_length > backbone.max_sequence_length:
        raise ValueError(
            f"--max-seq-length {max_seq_length} exceeds the backbone's {backbone.max_sequence_length} "
            f"position embeddings; use --max-seq-length {backbone.max_sequence_length} or less."
        )
    return Pretrained(tokenizer, backbone)


@dataclasses.dataclass(frozen=True)
class PretrainSummary:
    """What `pretrain.py` records in `<preset>/pretrain_summary.json`."""

    texts: int
    held_out_texts: int
    vocabulary_size: int
    parameters: int
    steps_per_epoch: int
    steps: int
    seconds: float
    history: dict[str, list[float]]
    added_characters: str = ""
    fine_tune_learning_rate: float | None = None
    config: dict = dataclasses.field(default_factory=dict)
    tensorboard: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def read(cls, preset: str) -> PretrainSummary | None:
        """The summary of a `pretrain.py` preset; None for any other preset."""
        path = os.path.join(preset, PRETRAIN_SUMMARY)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})


def preset_learning_rate(preset: str) -> float | None:
    """The fine-tuning learning rate a `pretrain.py` preset recommends (None for any other preset).

    BERT's 2e-5 is tuned for 110M-parameter models; the small BERTs that
    pretrain.py writes fine-tune best at a higher rate, which it records.
    """
    preset = resolve(preset)
    summary = PretrainSummary.read(preset) if os.path.isdir(preset) else None
    return None if summary is None else summary.fine_tune_learning_rate


def learning_rate_for(preset: str | None, learning_rate: float | None) -> float:
    """The peak fine-tuning rate: `learning_rate` if given, else the preset's recommendation or BERT's 2e-5.

    From scratch (no preset) the default is `FROM_SCRATCH_LEARNING_RATE`.
    """
    if learning_rate is not None:
        return learning_rate
    if not preset:
        return FROM_SCRATCH_LEARNING_RATE
    return preset_learning_rate(preset) or BERT_LEARNING_RATE


def save_preset(backbone: keras.Model, tokenizer: keras_hub.models.BertTokenizer, output_dir: str,
                summary: PretrainSummary) -> None:
    """Write a keras-hub preset and its summary atomically: no half-written preset, ever."""
    with atomic.staged_directory(output_dir, replace=True) as tmp:
        backbone.save_to_preset(tmp)
        tokenizer.save_to_preset(tmp)
        with open(os.path.join(tmp, PRETRAIN_SUMMARY), "w", encoding="utf-8") as f:
            f.write(summary.to_json())
