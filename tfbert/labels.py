"""Label values as files write them, read the way each task needs them.

- classification: the value as a string, surrounding whitespace removed. A
  number with an integer value is one label however it is spelled (`1`,
  `"1"`, `" 1.0 "`, `1e0` are all label `1`). Labels that differ only in
  letter case (`Pos`, `pos`) are refused: the rule cannot tell whether they
  are one class. A list is refused: it is multi-label.
- multi_label: a JSON list (JSONL), a cell of labels joined by the separator
  (CSV/TSV; `"a|b"` with `--label-separator "|"`; a cell holding a JSON list
  is read as one), or the wide form, one 0/1 column per label. Each label is
  stripped, duplicates are merged, and an empty cell or list is the empty set.
- regression: a finite number in any spelling `float()` reads (`" 2.50 "`,
  `1e3`); anything else is an error that names the line.

A missing value (an absent key, JSON null, an empty classification or
regression cell) returns None: the row is dropped and counted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

WIDE_TRUE = {"1", "1.0", "true"}
WIDE_FALSE = {"0", "0.0", "false", ""}


def _is_list_text(value: str) -> bool:
    value = value.strip()
    if not (value.startswith("[") and value.endswith("]")):
        return False
    try:
        return isinstance(json.loads(value), list)
    except json.JSONDecodeError:
        return False


def classification_label(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list) or (isinstance(value, str) and _is_list_text(value)):
        raise ValueError(f"{where}: the label {value!r} is a list of labels; for several labels per text pass "
                         "--task multi_label.")
    text = value.strip() if isinstance(value, str) else str(value)
    return _integer_spelling(text) or None


def _integer_spelling(text: str) -> str:
    """`text`, or the plain integer it spells (`"1.0"` -> `"1"`)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def multi_label_set(value: Any, separator: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) and _is_list_text(value):
        value = json.loads(value)
    if isinstance(value, list):
        names = [str(item).strip() for item in value if item is not None]
    elif isinstance(value, dict):
        raise ValueError(f"{where}: the label is a JSON object; a multi-label row takes a list of labels.")
    else:
        names = str(value).split(separator)
    return tuple(sorted({name for name in (n.strip() for n in names) if name}))


def wide_set(values: dict, columns: tuple[str, ...], where: str) -> tuple[str, ...] | None:
    chosen = []
    for column in columns:
        value = values.get(column)
        if value is None:
            return None
        text = str(value).strip().lower()
        if text in WIDE_TRUE:
            chosen.append(column)
        elif text not in WIDE_FALSE:
            raise ValueError(f"{where}: column {column!r} holds {value!r}; --label-columns take 0 or 1 per label.")
    return tuple(sorted(chosen))


def regression_target(value: Any, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise ValueError(f"{where}: the label {value!r} is not a number; --task regression takes one number per text.")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"{where}: the label {value!r} is not a number; --task regression takes one number per "
                         "text (for classes, pass --task classification).") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: the label {value!r} is not a finite number; fix or drop that row.")
    return number


@dataclasses.dataclass(frozen=True)
class LabelFormat:
    """How a file writes its labels.

    Args:
        task: classification, multi_label or regression (`--task`).
        separator: multi_label: the separator of labels joined in one CSV/TSV cell (`--label-separator`).
        columns: multi_label's wide form: one 0/1 column per label (`--label-columns`); the label column is unused.
    """

    task: str = "classification"
    separator: str = ","
    columns: tuple[str, ...] = ()

    @property
    def stratified(self) -> bool:
        """Whether a split can be stratified by these labels (single labels only)."""
        return self.task == "classification"

    def check(self, labels: list, source: str) -> None:
        """Refuse classification labels the rules cannot read: scores (many or fractional numbers), case variants."""
        if self.task != "classification":
            return
        distinct = set(labels)
        by_case: dict[str, set[str]] = {}
        for label in distinct:
            by_case.setdefault(label.casefold(), set()).add(label)
        clash = next((sorted(spellings) for spellings in by_case.values() if len(spellings) > 1), None)
        if clash:
            raise ValueError(f"{source}: the labels {', '.join(map(repr, clash))} differ only in letter case; write "
                             "each label one way (tfbert does not guess whether they are one class).")
        try:
            numbers = [float(label) for label in distinct]
        except ValueError:
            return
        if len(distinct) >= 50 or any(not number.is_integer() for number in numbers):
            raise ValueError(
                f"{source}: the label column holds {len(distinct)} distinct numbers (e.g. "
                f"{', '.join(sorted(distinct)[:3])}), which looks like a score per text, not classes. Pass --task "
                "regression for a number per text; keep --task classification only if each number is a class."
            )

    def parse(self, values: dict, label_column: str, where: str):
        """The label of a row (`values`: column -> value) as this task reads it; None when missing."""
        if self.columns:
            return wide_set(values, self.columns, where)
        return _READERS[self.task](values.get(label_column), self, where)


_READERS = {
    "classification": lambda value, fmt, where: classification_label(value, where),
    "multi_label": lambda value, fmt, where: multi_label_set(value, fmt.separator, where),
    "regression": lambda value, fmt, where: regression_target(value, where),
}
