"""Bring a Hugging Face BERT checkpoint into the form `--preset` reads, without PyTorch.

    python -m tfbert.convert_checkpoint CHECKPOINT_DIR --output-dir saved_models/presets/NAME [--lowercase]

keras-hub reads a Hugging Face BERT directory (config.json, model.safetensors,
vocab.txt; tfbert also wants tokenizer_config.json with do_lower_case). Many
checkpoints ship only what older transformers releases wrote: weights in
PyTorch's pytorch_model.bin and the vocabulary inside tokenizer.json. This
module writes the four files keras-hub and tfbert read from either form.

pytorch_model.bin is a zip archive around a pickle. It is read here with an
unpickler that accepts only the handful of names a state dict uses (tensors,
their storages, OrderedDict) and refuses anything else, so no code from the
file runs; `torch.load` would need PyTorch installed (~1 GB) and, in older
releases, runs whatever the pickle names. Only the zip format (PyTorch >= 1.6)
is read.

The case setting is taken from the checkpoint (tokenizer_config.json, else
tokenizer.json's normalizer) unless `--lowercase`/`--no-lowercase` says
otherwise; with neither, the import refuses to guess. A cased setting on a
vocabulary without a single capital letter maps every capital to [UNK], so
that is logged as a warning with the fix.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import pickle
import shutil
import struct
import sys
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _storage_dtypes() -> dict[str, Any]:
    import ml_dtypes  # TensorFlow's own dependency; numpy has no bfloat16

    return {
        "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
        "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
        "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    }


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """numpy stand-in for torch._utils._rebuild_tensor_v2 (the trailing args are autograd state)."""
    # as_strided does no bounds checks: a file whose sizes or strides overrun its storage would read other memory.
    malformed = len(size) != len(stride) or offset < 0 or min((*size, *stride), default=0) < 0
    if malformed or 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(storage):
        raise ValueError(
            f"A tensor of shape {tuple(size)}, strides {tuple(stride)} at offset {offset} does not fit its storage of "
            f"{len(storage)} elements: the checkpoint is damaged."
        )
    if not size:
        return storage[offset].copy()
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=[s * itemsize for s in stride])
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch state dict into numpy arrays; refuses every other global."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._dtypes = _storage_dtypes()
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in self._dtypes:
            return self._dtypes[name]
        raise pickle.UnpicklingError(
            f"pytorch_model.bin names {module}.{name}, which is not part of a plain state dict of tensors; refusing "
            "to load it. Convert the checkpoint with PyTorch (`save_file(torch.load(...), 'model.safetensors')`)."
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        # ('storage', <dtype>, key, location, numel): the tensor bytes live in <prefix>/data/<key>.
        _, dtype, key, _location, _numel = pid
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            self._storages[key] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        return self._storages[key]


def read_pytorch_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch zip-format `.bin`/`.pt` state dict, as numpy arrays, without PyTorch.

    Raises:
        ValueError: `path` is not a zip-format state dict of tensors, names anything else, or is damaged.
    """
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            zip_start = f.read(2) == b"PK"
        if zip_start:  # a zip archive whose end is missing
            raise ValueError(f"{path!r} is a truncated or damaged zip archive; download or copy it again.")
        raise ValueError(
            f"{path!r} is not a zip-format PyTorch file (the legacy format of PyTorch < 1.6 is not read); re-save it "
            "with a current PyTorch or as model.safetensors."
        )
    try:
        return _read_archive(path)
    except (zipfile.BadZipFile, EOFError, KeyError, OSError, UnicodeDecodeError, zlib.error, struct.error,
            NotImplementedError) as error:
        raise ValueError(f"{path!r} is damaged ({type(error).__name__}: {error}); download or copy it again.") from None


def _read_archive(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path!r} has {len(pickles)} data.pkl entries; expected 1 in a PyTorch state dict.")
        prefix = pickles[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path!r} was saved big-endian; re-save it on a little-endian machine.")
        with archive.open(pickles[0]) as file:
            try:
                state = _StateDictUnpickler(file, archive, prefix).load()
            except pickle.UnpicklingError as error:  # a user error, reported as one (tfbert.cli.USER_ERRORS)
                raise ValueError(str(error)) from error
    if not isinstance(state, Mapping) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path!r} does not hold a flat state dict of tensors.")
    return dict(state)


def _read_json(checkpoint: str, name: str) -> dict | None:
    path = os.path.join(checkpoint, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _vocabulary(checkpoint: str, tokenizer_spec: dict | None) -> list[str]:
    vocab_txt = os.path.join(checkpoint, "vocab.txt")
    if os.path.isfile(vocab_txt):
        with open(vocab_txt, encoding="utf-8") as f:
            return f.read().splitlines()
    if tokenizer_spec is None:
        raise FileNotFoundError(
            f"{checkpoint!r} has neither vocab.txt nor tokenizer.json; a BERT vocabulary is needed."
        )
    tokenizer_json = os.path.join(checkpoint, "tokenizer.json")
    model = tokenizer_spec["model"]
    if model.get("type") != "WordPiece":
        raise ValueError(f"{tokenizer_json} is a {model.get('type')} tokenizer; BERT needs WordPiece.")
    by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ValueError(f"{tokenizer_json}'s WordPiece ids are not 0..{len(by_id) - 1} without gaps.")
    return [token for token, _ in by_id]


def _checkpoint_lowercase(checkpoint: str, tokenizer_spec: dict | None) -> bool | None:
    value = (_read_json(checkpoint, "tokenizer_config.json") or {}).get("do_lower_case")
    if value is not None:
        return bool(value)
    normalizer = (tokenizer_spec or {}).get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer" and "lowercase" in normalizer:
        return bool(normalizer["lowercase"])
    return None


@dataclasses.dataclass(frozen=True)
class HuggingFaceBert:
    """What a Hugging Face BERT directory holds, read and checked."""

    config: dict
    weights: str
    vocabulary: list[str]
    lowercase: bool


def read_checkpoint(checkpoint: str, lowercase: bool | None = None) -> HuggingFaceBert:
    """Read and check `checkpoint`; `lowercase` None takes the checkpoint's case setting.

    Raises:
        FileNotFoundError: a required file is missing.
        ValueError: not a BERT checkpoint, no case setting anywhere, or a vocabulary that disagrees with the
            weights.
    """
    config_path = os.path.join(checkpoint, "config.json")
    config = _read_json(checkpoint, "config.json")
    if config is None:
        raise FileNotFoundError(f"{checkpoint!r} has no config.json; pass a Hugging Face BERT checkpoint directory.")
    if config.get("model_type") != "bert":
        raise ValueError(f"{config_path} says model_type {config.get('model_type')!r}; only 'bert' is supported.")
    present = [os.path.join(checkpoint, n) for n in WEIGHT_FILES if os.path.isfile(os.path.join(checkpoint, n))]
    if not present:
        raise FileNotFoundError(f"{checkpoint!r} has none of {', '.join(WEIGHT_FILES)}.")
    tokenizer_spec = _read_json(checkpoint, "tokenizer.json")  # read once: vocabulary and case setting
    vocabulary = _vocabulary(checkpoint, tokenizer_spec)
    if len(vocabulary) != config.get("vocab_size"):
        raise ValueError(
            f"The vocabulary of {checkpoint!r} has {len(vocabulary)} tokens but config.json says vocab_size "
            f"{config.get('vocab_size')}; they must match the embedding rows."
        )
    if lowercase is None:
        lowercase = _checkpoint_lowercase(checkpoint, tokenizer_spec)
        if lowercase is None:
            raise ValueError(
                f"{checkpoint!r} does not say whether its vocabulary is cased; pass --lowercase for an uncased "
                "vocabulary or --no-lowercase for a cased one."
            )
    if not lowercase and not any(len(t) == 1 and "A" <= t <= "Z" for t in vocabulary):
        logger.warning(
            "The tokenizer is cased but the vocabulary has no capital letters, so every word with a capital reads "
            "as [UNK]. Pass --lowercase unless that is intended."
        )
    return HuggingFaceBert(config, present[0], vocabulary, lowercase)  # model.safetensors first: copied as is


def import_checkpoint(checkpoint: str, output_dir: str, lowercase: bool | None = None) -> str:
    """Write `checkpoint` (a Hugging Face BERT dir) to `output_dir` as config.json, model.safetensors, vocab.txt
    and tokenizer_config.json, the form `train.py --preset` and `pretrain.py --init-from` read.

    Args:
        checkpoint: str. A directory with config.json (model_type bert), model.safetensors or pytorch_model.bin,
            and vocab.txt or tokenizer.json.
        output_dir: str. Created if needed; the four files are overwritten.
        lowercase: bool | None. The tokenizer's case setting; None takes the checkpoint's.

    Returns:
        `output_dir`.

    Raises:
        FileNotFoundError, ValueError: see `read_checkpoint`; also an `output_dir` that is the checkpoint.
    """
    from safetensors.numpy import save_file

    bert = read_checkpoint(checkpoint, lowercase)
    if os.path.realpath(output_dir) == os.path.realpath(checkpoint):
        raise ValueError(f"--output-dir {output_dir!r} is the checkpoint itself; choose a new directory.")
    os.makedirs(output_dir, exist_ok=True)
    if bert.weights.endswith(".bin"):
        save_file(read_pytorch_state_dict(bert.weights), os.path.join(output_dir, "model.safetensors"))
    else:
        shutil.copyfile(bert.weights, os.path.join(output_dir, "model.safetensors"))
    with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(bert.config, f, indent=2)
    with open(os.path.join(output_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in bert.vocabulary))
    with open(os.path.join(output_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": bert.lowercase, "tokenizer_class": "BertTokenizer"}, f, indent=2)
    logger.info("Imported %s (%s, %d tokens, lowercase %s) to %s.", checkpoint, os.path.basename(bert.weights),
                len(bert.vocabulary), bert.lowercase, output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> int:
    from tfbert.cli import run_script
    from tfbert.config import ConvertConfig

    def body(config: ConvertConfig) -> None:
        import_checkpoint(config.checkpoint, config.output_dir, config.lowercase)

    return run_script(ConvertConfig, argv, __doc__, body)


if __name__ == "__main__":
    sys.exit(main())
