"""Evaluate an export on a labelled file, exactly as TF Serving would answer it."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import numpy as np

from tfbert import data as data_lib
from tfbert import files, preflight
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
    """Metrics of the export at `config.model` on `config.data`, read and answered in batches.

    Columns and label forms are the ones named in `config`, else the ones training used (recorded in the export);
    the decision threshold is `config.threshold`, else the exported one. Memory holds the labels and the
    answers, never the file's texts.

    Raises:
        ValueError: the file has a label the model was not trained on, or is unusable.
    """
    preflight.evaluate(config)
    model = LocalModel(config.model)
    task = recorded_task(model, config.threshold)
    columns, labels = _reading(config, model, task)
    dropped, truth, scores = data_lib.Dropped(), [], []
    first, rows = files.peeked(files.iter_rows(config.data, config.reading, "Data file", files.FORMATS))
    data_lib.check_columns(config.data, first, data_lib.required_columns(columns, labels))
    writer = open(config.predictions, "w", encoding="utf-8") if config.predictions else None
    try:
        for batch in files.batched(data_lib.labelled(rows, columns, labels, config.data, dropped), config.batch_size):
            texts, pairs, values = (list(part) for part in zip(*batch))
            task.check_labels(values, config.data)
            batch_scores = model.predict(texts, pairs if columns.pair else None, config.batch_size).scores
            truth.append(task.truth(values))
            scores.append(batch_scores)
            if writer:
                _write_predictions(writer, texts, pairs if columns.pair else None, values, task, batch_scores)
    finally:
        if writer:
            writer.close()
    dropped.log(config.data)
    if not truth:
        raise ValueError(f"{config.data}: no usable rows (all {dropped.rows} had missing or blank values).")
    truth, scores = np.concatenate(truth), np.concatenate(scores)
    metrics = task.evaluate(truth, scores)
    return Evaluation({**metrics, "model": model.path, "data": config.data, "task": task.name,
                       "label_names": list(task.label_names)}, task.report(truth, scores))


def _reading(config: EvaluateConfig, model: LocalModel, task: Task) -> tuple[data_lib.Columns, LabelFormat]:
    """The file's columns and label form: the flags', else the ones training used (the export records them)."""
    recorded = model.metadata or ExportMetadata(model_name="", task=task.name, label_names=task.label_names)
    columns = data_lib.Columns(config.text_column or recorded.text_column, config.label_column or recorded.label_column,
                               config.text_pair_column or recorded.text_pair_column)
    labels = LabelFormat(task.name, config.label_separator or recorded.label_separator,
                         _columns(config.label_columns) or recorded.label_columns)
    return columns, labels


def _columns(value: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.split(",") if c.strip()) if value else ()


def write_json(metrics: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False)


def _write_predictions(writer, texts: list[str], pairs: list[str] | None, truth: list, task: Task, scores) -> None:
    """One JSON line per example: its text(s), the true label(s) as `truth`, and what the model answers."""
    for i, answer in enumerate(task.answers(scores).records(task.label_names)):
        record = {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {})}
        record["truth"] = list(truth[i]) if isinstance(truth[i], tuple) else truth[i]
        writer.write(json.dumps({**record, **answer}, ensure_ascii=False) + "\n")
