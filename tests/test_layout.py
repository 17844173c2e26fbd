"""The codebase's own rules, checked: one home per concern, Keras internals in one module, small functions.

These read the source, so a change that breaks a rule fails here instead of in review.
"""

import ast
import configparser
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tfbert")
MODULES = sorted(name[:-3] for name in os.listdir(PACKAGE) if name.endswith(".py") and name != "__init__.py")
SCRIPTS = ["train.py", "evaluate.py", "predict.py", "pretrain.py"]
BENCH = [os.path.join("bench", name) for name in sorted(os.listdir(os.path.join(ROOT, "bench"))) if name.endswith(".py")]
SOURCES = [os.path.join("tfbert", f"{name}.py") for name in MODULES] + SCRIPTS + BENCH
# What only tfbert/keras_compat.py may touch: private Keras / keras-hub / TensorFlow code and state.
INTERNALS = re.compile(r"keras\.src|keras_hub\.src|_flatten_layers|types\.MethodType|StatelessScope|"
                       r"_trainable_variables|_autocast|_masked_softmax|_in_multi_worker_mode|tensorflow\.python|"
                       r"learner_lib|_backend_update_step|\"pooled_dense\"|transformer_layer_")
DIARY = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b|\bcommit [0-9a-f]{7,}\b|(?<!\w)#\d{1,}\b|\bissue \d+", re.I)


def _source(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def _functions(path):
    for node in ast.walk(ast.parse(_source(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
            yield node, node.end_lineno - node.lineno + 1, len([n for n in names if n not in ("self", "cls")])


@pytest.mark.parametrize("path", SOURCES)
def test_functions_are_short_with_few_parameters(path):
    long = [(node.name, lines, params) for node, lines, params in _functions(path) if lines > 60 or params > 7]
    assert not long, f"{path}: functions over 60 lines or 7 parameters: {long}"


@pytest.mark.parametrize("path", [p for p in SOURCES if p != os.path.join("tfbert", "keras_compat.py")])
def test_keras_internals_live_in_keras_compat_only(path):
    found = sorted({m.group(0) for m in INTERNALS.finditer(_source(path))})
    assert not found, f"{path} reaches into {found}; that belongs in tfbert/keras_compat.py"


@pytest.mark.parametrize("path", SOURCES)
def test_comments_say_why_not_when(path):
    text = _source(path)
    notes = [line.strip() for line in text.splitlines() if "#" in line or line.strip().startswith(('"', "'"))]
    docstrings = [ast.get_docstring(node) or "" for node in ast.walk(ast.parse(text))
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    dated = [line for line in notes + docstrings if DIARY.search(line)]
    assert not dated, f"{path}: dates, commit ids or issue numbers in comments: {dated[:3]}"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_its_test_file(module):
    assert os.path.isfile(os.path.join(ROOT, "tests", f"test_{module}.py")), f"tests/test_{module}.py is missing"


def test_the_package_never_imports_the_scripts():
    for module in MODULES:
        tree = ast.parse(_source(os.path.join("tfbert", f"{module}.py")))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"train", "evaluate", "predict", "pretrain"}, module


def test_scripts_are_not_installed_as_top_level_modules():
    """`pip install` must not put a module named `evaluate` on sys.path (it would shadow the `evaluate` package)."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    assert "py_modules" not in config["options"]
    scripts = config["options.entry_points"]["console_scripts"]
    assert all(line.split("=")[1].strip().startswith("tfbert.") for line in scripts.strip().splitlines())


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_thin_shims(script):
    functions = list(_functions(script))
    assert not functions and len(_source(script).splitlines()) <= 10, f"{script} holds code; it belongs in tfbert/"
