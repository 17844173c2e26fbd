"""The docs cannot drift: every train/evaluate/predict/pretrain command in README.md and docs/ parses with the real
flag parsers, into a config that validates, and the cheap ones run (`--help`; predict and evaluate on a tiny export).
"""

from __future__ import annotations

import glob
import os
import re
import shlex

import pytest

from tfbert.cli import parse_config
from tfbert.config import EvaluateConfig, PredictConfig, PretrainConfig, TrainConfig
from tfbert.scripts import evaluate_main, predict_main, pretrain_main, train_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
PROGRAMS = {
    "train": (TrainConfig, train_main), "evaluate": (EvaluateConfig, evaluate_main),
    "predict": (PredictConfig, predict_main), "pretrain": (PretrainConfig, pretrain_main),
}
START = re.compile(r"^(?:python3? (train|evaluate|predict|pretrain)\.py|tfbert-(train|evaluate|predict|pretrain))$")
FENCE = re.compile(r"```(?:bash|sh|shell|console)?\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"`((?:python3? |tfbert-)(?:train|evaluate|predict|pretrain)[^`]*)`")


def _segments(line: str) -> list[list[str]]:
    """The simple commands of one shell line (split at unquoted &&, ||, ;, |), as words, comments dropped."""
    parts, current, quote = [], "", None
    for char in line:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "|&;":
            parts.append(current)
            current = ""
            continue
        current += char
    segments = []
    for part in parts + [current]:
        try:
            words = shlex.split(part, comments=True)
        except ValueError:  # an unbalanced quote in prose: not a command
            continue
        if words:
            segments.append(words)
    return segments


def documented_commands() -> list[tuple[str, int, str, list[str]]]:
    """(page, line number, program, argv) of every documented command, shell blocks and inline code alike."""
    found = []
    for page in PAGES:
        text = open(page, encoding="utf-8").read()
        blocks = [(m.start(1), m.group(1).replace("\\\n", " ")) for m in FENCE.finditer(text)]
        blocks += [(m.start(1), m.group(1)) for m in INLINE.finditer(text)]
        for offset, block in blocks:
            for i, line in enumerate(block.splitlines()):
                for words in _segments(line):
                    for start in range(len(words)):
                        match = START.match(" ".join(words[start:start + 2])) or START.match(words[start])
                        if match:
                            width = 2 if words[start].startswith("python") else 1
                            number = text[:offset].count("\n") + i + 1
                            found.append((os.path.relpath(page, ROOT), number, match.group(1) or match.group(2),
                                          words[start + width:]))
                            break
    return found


COMMANDS = documented_commands()


def test_the_docs_document_every_program():
    assert {program for _, _, program, _ in COMMANDS} == set(PROGRAMS)


@pytest.mark.parametrize("page, line, program, argv", COMMANDS,
                         ids=[f"{page}:{line}" for page, line, *_ in COMMANDS])
def test_documented_command_parses(page, line, program, argv):
    config_class, main = PROGRAMS[program]
    if "--help" in argv or "-h" in argv:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        return
    parse_config(config_class, argv, "")  # raises (SystemExit or ValueError) on a flag or value the code rejects


LOCAL = [(page, line, program, argv) for page, line, program, argv in COMMANDS
         if program in ("predict", "evaluate") and "--server" not in argv and "--help" not in argv]


@pytest.mark.slow
@pytest.mark.parametrize("page, line, program, argv", LOCAL, ids=[f"{page}:{line}" for page, line, *_ in LOCAL])
def test_documented_predict_and_evaluate_commands_run(page, line, program, argv, trained, review_csv, tmp_path,
                                                      monkeypatch):
    """Run with the documented flags against a tiny export: its --model, --data and --file swapped in."""
    swaps = {"--model": os.path.dirname(trained.export_path), "--data": str(review_csv)}
    argv = list(argv)
    for i, word in enumerate(argv[:-1]):
        if word in swaps:
            argv[i + 1] = swaps[word]
        elif word in ("--file",):
            texts = tmp_path / "texts.txt"
            texts.write_text("很好\n太差了\n", encoding="utf-8")
            argv[i + 1] = str(texts)
        elif word in ("--output", "--json", "--predictions"):
            argv[i + 1] = str(tmp_path / os.path.basename(argv[i + 1]))
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("很好\n"))
    assert PROGRAMS[program][1](argv) == 0


PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python API example, verbatim, in a directory holding a reviews.csv."""
    from tests.conftest import synthetic_rows, write_csv

    (example,) = PYTHON.findall(open(PAGES[0], encoding="utf-8").read())
    write_csv(tmp_path / "reviews.csv", synthetic_rows(120))
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()[-2:]  # the example's two prints, after fit's progress lines
    accuracy, baseline = map(float, printed[0].split())
    assert 0 <= accuracy <= 1 and 0 <= baseline <= 1
    assert printed[1].startswith("[{'label': ") and "'probabilities': {" in printed[1]
    assert os.path.isfile(tmp_path / "saved_models" / "reviews" / "1" / "assets.extra" / "README.md")


DATED = re.compile(r"\b20\d\d-\d\d-\d\d\b")
ISSUE = re.compile(r"(?:issue|pull request|PR)\s*#?\d+|(?<![\w/&])#\d+\b", re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_pages_are_manuals_not_notebooks(page):
    """No issue numbers anywhere; a date only in a table row."""
    for number, line in enumerate(open(page, encoding="utf-8"), 1):
        assert not ISSUE.search(line), f"{page}:{number}: {line.strip()}"
        if not line.lstrip().startswith("|"):
            assert not DATED.search(line), f"{page}:{number}: {line.strip()}"


def test_the_readme_is_short():
    assert sum(1 for _ in open(PAGES[0], encoding="utf-8")) <= 250
