"""predict.py on files: read rows in batches, ask the model, write each row with its answer.

Memory stays bounded whatever the file's size: rows are read, answered and
written `batch_size` at a time. The output keeps every input column and adds
the model's answer (`tfbert.serving.Answers.records`): `label` and
`probabilities` for classification, `labels` and `probabilities` for
multi-label, `prediction` for regression. An answer field whose name an
input column already has (a file with its true `label`, say) is written as
`predicted_<name>`. In CSV/TSV, lists and {name: p} maps are JSON text.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Iterator

from tfbert import files

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FileColumns:
    """Which columns of the input file hold the text and the text pair."""

    text: str = "text"
    pair: str | None = None


def _texts(batch: list[files.Row], columns: FileColumns, path: str) -> tuple[list[str], list[str] | None]:
    texts, pairs = [], [] if columns.pair else None
    for row in batch:
        for column in [columns.text] + ([columns.pair] if columns.pair else []):
            if column not in row.values:
                raise ValueError(f"{path}: line {row.line} has no column {column!r}; columns found: "
                                 f"{', '.join(map(str, row.values))}. Pass --text-column / --text-pair-column NAME.")
        texts.append("" if row.values[columns.text] is None else str(row.values[columns.text]))
        if pairs is not None:
            pairs.append("" if row.values[columns.pair] is None else str(row.values[columns.pair]))
    return texts, pairs


class _Writer:
    """JSON lines on stdout or to a .jsonl file, or a CSV / TSV file with one column per field."""

    def __init__(self, path: str | None):
        self.path = path
        self.kind = os.path.splitext(path)[1].lower() if path else ".jsonl"
        self.file = open(path, "w", encoding="utf-8", newline="") if path else sys.stdout
        self.csv: csv.DictWriter | None = None

    def write(self, record: dict) -> None:
        if self.kind == ".jsonl":
            self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        if self.csv is None:
            self.csv = csv.DictWriter(self.file, fieldnames=list(record), delimiter="\t" if self.kind == ".tsv" else ",",
                                      extrasaction="ignore")
            self.csv.writeheader()
        self.csv.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                           for k, v in record.items()})

    def close(self) -> None:
        if self.file is not sys.stdout:
            self.file.close()


def _merged(values: dict, answer: dict) -> dict:
    return {**values, **{(f"predicted_{k}" if k in values else k): v for k, v in answer.items()}}


def predict_file(model, path: str, columns: FileColumns, output: str | None, batch_size: int = 64,
                 options: files.ReadOptions = files.ReadOptions()) -> int:
    """Answer every row of `path` with `model` (a LocalModel or RemoteModel); return the number of rows.

    Raises:
        ValueError: a row lacks the text column, or the model wants pairs and no pair column is given.
    """
    if model.pair and not columns.pair:
        raise ValueError(f"{model.path!r} is a sentence-pair model: pass --text-pair-column NAME (or, in a .txt "
                         "file, text<TAB>text_pair).")
    writer, progress = _Writer(output), _Progress()
    try:
        for batch in files.batched(files.iter_rows(path, options), batch_size):
            texts, pairs = _texts(batch, columns, path)
            answers = model.predict(texts, pairs, batch_size=batch_size).records(model.label_names)
            for row, answer in zip(batch, answers):
                writer.write(_merged(row.values, answer))
            progress.update(len(batch))
    finally:
        writer.close()
    progress.done()
    return progress.count


class _Progress:
    """Rows answered and rows/s on stderr: a live line on a terminal, a log line every 30 s otherwise."""

    def __init__(self):
        self.count, self.start, self.last = 0, time.monotonic(), 0.0
        self.live = sys.stderr.isatty()

    def update(self, rows: int) -> None:
        self.count += rows
        elapsed = time.monotonic() - self.start
        line = f"{self.count} rows, {self.count / max(elapsed, 1e-9):.0f} rows/s"
        if self.live:
            sys.stderr.write(f"\r{line}")
            sys.stderr.flush()
        elif elapsed - self.last >= 30:
            self.last = elapsed
            logger.info("%s", line)

    def done(self) -> None:
        if self.live:
            sys.stderr.write("\n")
        logger.info("Answered %d rows in %.1f s.", self.count, time.monotonic() - self.start)
