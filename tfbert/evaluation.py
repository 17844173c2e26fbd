"""Evaluate an export on a labelled file, exactly as TF Serving would answer it."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from tfbert import data as data_lib
from tfbert import preflight
from tfbert import tasks as tasks_lib
from tfbert.config import EvaluateConfig
from tfbert.labels import LabelFormat
from tfbert.serving import ExportMetadata, LocalModel
from tfbert.tasks import Task

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """scikit-learn's metrics (with the model, data and label names) and the printed report."""

    metrics: dict[str, Any]
    report: str


def recorded_task(model: LocalModel, threshold: float | None = None) -> Task:
    """The task an export was trained for; single-label classification for exports that recorded none."""
    metadata = model.metadata
    if metadata is not None and metadata.task_config:
        return tasks_lib.from_config(metadata.task_config, threshold)
    return tasks_lib.ClassificationTask(tuple(model.label_names), 0.5 if threshold is None else threshold)


def evaluate(config: EvaluateConfig) -> Evaluation:
    """Metrics of the export at `config.model` on `config.data`.

    Columns and label forms are the ones named in `config`, else the ones training used (recorded in the export);
    the decision threshold is `config.threshold`, else the exported one.

    Raises:
        ValueError: the file has a label the model was not trained on, or is unusable.
    """
    preflight.evaluate(config)
    model = LocalModel(config.model)
    task = recorded_task(model, config.threshold)
    recorded = model.metadata or ExportMetadata(model_name="", task=task.name, label_names=task.label_names)
    labels = LabelFormat(task.name, config.label_separator or recorded.label_separator,
                         _columns(config.label_columns) or recorded.label_columns)
    examples = data_lib.load_examples(
        config.data,
        config.text_column or recorded.text_column,
        config.label_column or recorded.label_column,
        config.text_pair_column or recorded.text_pair_column,
        labels,
        config.read_options,
    )
    task.check_labels(examples.labels, config.data)
    truth = task.truth(examples.labels)
    scores = model.predict(examples.texts, examples.pairs, config.batch_size).scores
    metrics = task.evaluate(truth, scores)
    if config.predictions:
        _write_predictions(config.predictions, examples, task, scores)
    report = task.report(truth, scores)
    return Evaluation({**metrics, "model": model.path, "data": config.data, "task": task.name,
                       "label_names": list(task.label_names)}, report)


def _columns(value: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip()) if value else ()


def write_json(metrics: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False)


def _write_predictions(path: str, examples: data_lib.Examples, task: Task, scores) -> None:
    """One JSON line per example: its text(s), the true label(s) as `truth`, and what the model answers."""
    records = task.answers(scores).records(task.label_names)
    with open(path, "w", encoding="utf-8") as f:
        for i, answer in enumerate(records):
            record = {"text": examples.texts[i]}
            if examples.pairs is not None:
                record["text_pair"] = examples.pairs[i]
            truth = examples.labels[i]
            record["truth"] = list(truth) if isinstance(truth, tuple) else truth
            f.write(json.dumps({**record, **answer}, ensure_ascii=False) + "\n")
