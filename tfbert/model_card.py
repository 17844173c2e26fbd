"""The model card every export carries: `assets.extra/README.md`.

What a person deciding whether to serve a model needs, in one file beside
it: the task and labels, the checkpoint it started from and that
checkpoint's licence, the exact data (names, sizes, SHA-256) and split,
BERT's and the baseline's validation metrics, the command line, the library
versions, and the serving signatures as the SavedModel declares them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
from typing import Any

KERAS_HUB_LICENCE = "Apache-2.0 (Google's BERT weights, as keras-hub publishes them)"
SCRATCH_LICENCE = "none: no pretrained weights; BERT was trained from scratch on the data below"
LIBRARIES = ("tensorflow", "tensorflow-text", "keras", "keras-hub", "tfbert")


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file the model learned from: its name, size and SHA-256."""

    name: str
    size: int
    sha256: str

    @classmethod
    def of(cls, path: str) -> DataFile:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return cls(os.path.basename(path), os.path.getsize(path), digest.hexdigest())


def base_licence(preset: str | None, directory: str | None) -> str:
    """The licence of the checkpoint fine-tuning started from, as far as it can be known offline.

    `directory` is the preset's local directory, if it has one: its README's
    `license:` line (Hugging Face front matter, or a tfbert checkpoint's card) is the answer.
    """
    if not preset:
        return SCRATCH_LICENCE
    if directory:
        readme = os.path.join(directory, "README.md")
        if os.path.isfile(readme):
            with open(readme, encoding="utf-8", errors="replace") as f:
                match = re.search(r"^\s*licen[cs]e:\s*(.+)$", f.read(), re.IGNORECASE | re.MULTILINE)
            if match:
                return match.group(1).strip()
        return "unknown: the checkpoint's directory states none; check where it came from"
    return KERAS_HUB_LICENCE


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """Everything the card says except the signatures, which are read from the written SavedModel."""

    model_name: str
    task: dict[str, Any]
    base: str
    base_licence: str
    data: tuple[DataFile, ...]
    split: str
    metrics: dict[str, Any]
    command: str
    versions: dict[str, str]

    def render(self, signatures: dict[str, dict[str, dict[str, str]]]) -> str:
        lines = [f"# {self.model_name}", "", "Exported by tfbert. Everything below was recorded by the run.", "",
                 "## Task", "", f"- task: {self.task.get('task')}"]
        if self.task.get("label_names"):
            lines.append(f"- labels: {', '.join(self.task['label_names'])}")
        lines += [f"- settings: `{json.dumps(self.task, ensure_ascii=False)}`", "",
                  "## Base checkpoint", "", f"- {self.base}", f"- licence: {self.base_licence}", "",
                  "## Data", "", "| file | bytes | SHA-256 |", "|---|---|---|"]
        lines += [f"| {f.name} | {f.size:,} | `{f.sha256}` |" for f in self.data]
        lines += ["", f"Split: {self.split}", "", "## Validation metrics", ""] + self._metrics() + [
            "", "## Command", "", "```bash", self.command, "```", "", "## Versions", ""]
        lines += [f"- {name} {version}" for name, version in self.versions.items()]
        lines += ["", "## Signatures", ""] + _signature_lines(signatures)
        return "\n".join(lines) + "\n"

    def _metrics(self) -> list[str]:
        scalars = lambda m: {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}  # noqa: E731
        exported = scalars(self.metrics)
        rows = [("exported model" + (" (BERT + baseline ensemble)" if "bert" in self.metrics else ""), exported)]
        if "bert" in self.metrics:
            rows.append(("BERT alone", scalars(self.metrics["bert"])))
        if "baseline" in self.metrics:
            rows.append(("TF-IDF baseline", scalars(self.metrics["baseline"])))
        names = [name for name in exported if name != "train_seconds"]
        lines = ["| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for label, values in rows:
            lines.append(f"| {label} | " + " | ".join(_number(values.get(name)) for name in names) + " |")
        return lines


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _signature_lines(signatures: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    lines = []
    for name, io in sorted(signatures.items()):
        lines.append(f"- `{name}`")
        for kind in ("inputs", "outputs"):
            lines.append(f"  - {kind}: " + ", ".join(f"`{k}` {v}" for k, v in sorted(io[kind].items())))
    return lines
