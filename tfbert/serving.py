"""Answer texts from an export: a local SavedModel, or TF Serving over REST.

`evaluate.py` and `predict.py` share this, so they see the model exactly as
TF Serving does: raw strings in, `probabilities`, `label` and `label_names`
out. Imports only tensorflow + tensorflow_text (never keras or keras_hub);
the gRPC request builder imports tensorflow-serving-api's protos lazily.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

from tfbert.config import REQUEST_FORMATS

logger = logging.getLogger(__name__)

ASSETS_EXTRA = "assets.extra"
SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class ExportMetadata:
    """What an export records in `assets.extra/config.json`, and every reader reads back.

    Args:
        model_name: the name TF Serving serves it under.
        task: the task type (classification, multi_label or regression).
        label_names: the probability columns, in order (none for regression).
        text_column, label_column, text_pair_column: the training file's columns (evaluate.py's defaults).
        label_separator, label_columns: how the training file wrote multi-label sets (evaluate.py's defaults).
        task_config: the task's settings (`tfbert.tasks.Task.to_config`): threshold, target mean and std, ...
        dataset: the training data's name (its file stem, or the default corpus's).
        learning_rate: the peak learning rate the run used.
        run_dir: the run's TensorBoard directory.
        config: the resolved TrainConfig.
    """

    model_name: str
    task: str
    label_names: tuple[str, ...]
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    label_separator: str = ","
    label_columns: tuple[str, ...] = ()
    task_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset: str = ""
    learning_rate: float | None = None
    run_dir: str = ""
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def read(cls, version_dir: str) -> ExportMetadata | None:
        """The metadata of an export; None when it has no config.json."""
        path = os.path.join(version_dir, ASSETS_EXTRA, "config.json")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        known = {field.name for field in dataclasses.fields(cls)}
        values["label_names"] = tuple(values.get("label_names", ()))
        values["label_columns"] = tuple(values.get("label_columns", ()))
        return cls(**{name: value for name, value in values.items() if name in known})


def version_numbers(base_dir: str, servable_only: bool = False) -> list[int]:
    """Integer version directories under `base_dir`, ascending (TF Serving ignores other names).

    With `servable_only`, only those holding a saved_model.pb.
    """
    if not os.path.isdir(base_dir):
        return []
    versions = []
    for name in os.listdir(base_dir):
        path = os.path.join(base_dir, name)
        if name.isdigit() and os.path.isdir(path) and (not servable_only or os.path.isfile(os.path.join(path, "saved_model.pb"))):
            versions.append(int(name))
    return sorted(versions)


def resolve_version_dir(path: str) -> str:
    """A version dir as is, or the newest integer version under a model dir.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is neither an export version nor a model dir holding one.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"--model {path!r} does not exist. Point it at <export-dir>/<model-name>.")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = version_numbers(path, servable_only=True)
    if not versions:
        raise ValueError(
            f"--model {path!r} is not a tfbert export: expected saved_model.pb in it, or integer version "
            "dirs holding one (as train.py writes to <export-dir>/<model-name>/<version>/)."
        )
    return os.path.join(path, str(versions[-1]))


@dataclasses.dataclass(frozen=True)
class Answers:
    """What a model answered for n texts: the serving outputs of its task (the others are None).

    Args:
        probabilities: (n, num_labels) float: classification and multi_label.
        label: (n,) str, the predicted label: classification.
        labels: (n, num_labels) bool, the predicted set: multi_label.
        prediction: (n,) float: regression.
    """

    probabilities: np.ndarray | None = None
    label: np.ndarray | None = None
    labels: np.ndarray | None = None
    prediction: np.ndarray | None = None

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any]) -> Answers:
        """From a signature's outputs (numpy arrays or nested lists; label_names and ensemble parts ignored)."""
        values = {}
        for field in dataclasses.fields(cls):
            if outputs.get(field.name) is not None:
                value = np.asarray(outputs[field.name])
                values[field.name] = np.char.decode(value.astype(bytes), "utf-8") if value.dtype.kind in "SO" else value
        return cls(**values)

    @classmethod
    def concat(cls, parts: Sequence[Answers]) -> Answers:
        values = {}
        for field in dataclasses.fields(cls):
            arrays = [getattr(part, field.name) for part in parts]
            if arrays and arrays[0] is not None:
                values[field.name] = np.concatenate(arrays)
        return cls(**values)

    @property
    def scores(self) -> np.ndarray:
        """(n, width): the probabilities, or the predictions as one column."""
        return self.probabilities if self.probabilities is not None else self.prediction.reshape(-1, 1)

    def __len__(self) -> int:
        return len(self.scores)

    def records(self, label_names: Sequence[str]) -> list[dict[str, Any]]:
        """One JSON-ready dict per text: `label` and `probabilities` ({name: p}); `labels` (a list of names) and
        `probabilities`; or `prediction`."""
        records = [{} for _ in range(len(self))]
        for i, record in enumerate(records):
            if self.label is not None:
                record["label"] = str(self.label[i])
            if self.labels is not None:
                record["labels"] = [name for name, on in zip(label_names, self.labels[i]) if on]
            if self.probabilities is not None:
                record["probabilities"] = {name: round(float(p), 6)
                                           for name, p in zip(label_names, self.probabilities[i])}
            if self.prediction is not None:
                record["prediction"] = round(float(self.prediction[i]), 6)
        return records


class _Served:
    """What LocalModel and RemoteModel share: `label_names`, `pair` and batched `predict`."""

    label_names: list[str]
    pair: bool
    path: str

    def _predict_batch(self, texts: Sequence[str], pairs: Sequence[str] | None) -> Answers:
        raise NotImplementedError

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64) -> Answers:
        """The model's answers for `texts`, `batch_size` texts per request."""
        if self.pair and pairs is None:
            raise ValueError(f"{self.path!r} is a sentence-pair model; give a text_pair for every text.")
        if not self.pair and pairs is not None:
            raise ValueError(f"{self.path!r} takes single texts, not pairs.")
        if not len(texts):
            raise ValueError("No text to answer: the input is empty.")
        return Answers.concat([
            self._predict_batch(texts[i : i + batch_size], None if pairs is None else pairs[i : i + batch_size])
            for i in range(0, len(texts), batch_size)
        ])


class LocalModel(_Served):
    """A loaded export; `predict(texts)` answers as TF Serving would."""

    def __init__(self, path: str):
        self.path = resolve_version_dir(path)
        labels_path = os.path.join(self.path, ASSETS_EXTRA, "labels.txt")
        if not os.path.isfile(labels_path):
            raise ValueError(f"{self.path!r} has no {ASSETS_EXTRA}/labels.txt; it was not exported by tfbert.")
        with open(labels_path, encoding="utf-8") as f:
            self.label_names = [line.rstrip("\n") for line in f if line.rstrip("\n")]
        self.metadata = ExportMetadata.read(self.path)
        self._loaded = tf.saved_model.load(self.path)
        self._serve = self._loaded.signatures[SIGNATURE]
        self.pair = "text_pair" in self._serve.structured_input_signature[1]
        logger.info("Loaded %s (%s)", self.path, ", ".join(self.label_names) or "regression")

    def _predict_batch(self, texts: Sequence[str], pairs: Sequence[str] | None) -> Answers:
        inputs = {name: tf.constant(values, tf.string) for name, values in _inputs(texts, pairs).items()}
        return Answers.from_outputs({name: value.numpy() for name, value in self._serve(**inputs).items()})


def _inputs(texts: Sequence[str], pairs: Sequence[str] | None) -> dict[str, list[str]]:
    inputs = {"text": list(texts)}
    if pairs is not None:
        inputs["text_pair"] = list(pairs)
    return inputs


def predict_request(model_name: str, texts: Sequence[str] | Sequence[tuple[str, str]], signature: str = SIGNATURE):
    """A TF Serving gRPC `PredictRequest` for raw texts (or (text, text_pair) tuples)."""
    from tensorflow_serving.apis import predict_pb2

    pairs = None
    if texts and isinstance(texts[0], tuple):
        texts, pairs = [t for t, _ in texts], [p for _, p in texts]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, values in _inputs(texts, pairs).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=tf.string))
    return request


class RemoteModel(_Served):
    """A model served by TF Serving, over its REST API (`POST /v1/models/NAME:predict`).

    Args:
        server: base URL, e.g. http://localhost:8501.
        model_name: the served model's name (`--model_name` / models.config).
        version: a specific version, or None for the newest.
        request_format: "row" (`instances`) or "columnar" (`inputs`), TF Serving's two JSON formats.
    """

    def __init__(self, server: str, model_name: str, version: int | None = None, request_format: str = "row", timeout: float = 60.0):
        if request_format not in REQUEST_FORMATS:
            raise ValueError(f"--request-format {request_format!r} is not one of {', '.join(REQUEST_FORMATS)}.")
        self.path = f"{server.rstrip('/')}/v1/models/{model_name}" + (f"/versions/{version}" if version else "")
        self.request_format = request_format
        self.timeout = timeout
        self.label_names: list[str] = []
        inputs = self._call(self.path + "/metadata")["metadata"]["signature_def"]["signature_def"][SIGNATURE]["inputs"]
        self.pair = "text_pair" in inputs

    def _call(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise ValueError(f"TF Serving answered {error.code} for {url}: {detail[:500]}") from None
        except urllib.error.URLError as error:
            raise ConnectionError(
                f"Cannot reach TF Serving at {url} ({error.reason}). Is the server running? See README 'Serving'."
            ) from None

    def _predict_batch(self, texts: Sequence[str], pairs: Sequence[str] | None) -> Answers:
        inputs = _inputs(texts, pairs)
        if self.request_format == "row":
            rows = [dict(zip(inputs, values)) for values in zip(*inputs.values())]
            predictions = self._call(self.path + ":predict", {"signature_name": SIGNATURE, "instances": rows})["predictions"]
            # One output only: TF Serving's row format then answers the bare value per row.
            rows_out = [p if isinstance(p, dict) else {"prediction": p} for p in predictions]
            outputs = {name: [row[name] for row in rows_out] for name in rows_out[0]}
        else:
            outputs = self._call(self.path + ":predict", {"signature_name": SIGNATURE, "inputs": inputs})["outputs"]
            outputs = outputs if isinstance(outputs, dict) else {"prediction": outputs}
        if outputs.get("label_names"):
            self.label_names = list(outputs["label_names"][0])
        return Answers.from_outputs(outputs)
