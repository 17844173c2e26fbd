"""Flags generated from the config dataclasses, and the scripts' error boundary.

A field `max_seq_length: int` becomes `--max-seq-length INT`; a nested
dataclass field (`TrainConfig.model`) contributes its own fields flat
(`--num-layers`); `bool` fields get `--flag/--no-flag`; a field whose
metadata has `nargs` is positional. So the dataclasses stay the single
source of truth and `--help` can never disagree with the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tfbert import console

logger = logging.getLogger(__name__)
C = TypeVar("C")

# Errors a user can cause and fix. Anything else is our bug and keeps its traceback.
USER_ERRORS = (
    ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, UnicodeDecodeError,
    ConnectionError,
)


def _base_type(annotation: Any) -> Any:
    """`int | None` -> int, `tuple[str, ...]` -> str."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is tuple:
        return typing.get_args(annotation)[0]
    return annotation


def _field_help(f: dataclasses.Field, kind: Any) -> str:
    """The field's help, its choices, and its default (every flag shows one)."""
    text = f.metadata.get("help", "")
    if "choices" in f.metadata:
        text += f" Choices: {', '.join(map(str, f.metadata['choices']))}."
    default = f.default if f.default is not dataclasses.MISSING else None
    if kind is bool:
        flag = f.name.replace("_", "-")
        return text + f" (default: --{flag if default else 'no-' + flag})"
    if default is not None:
        return text + f" (default: {default})"
    return text if "Default" in text or "default" in text else text + " (default: none)"


def _groups(parser: argparse.ArgumentParser, cls: type) -> dict[str, Any]:
    """Field name -> the argument group it shows under in --help (a config's `flag_groups`), in their order."""
    groups = {}
    for title, names in getattr(cls, "flag_groups", {}).items():
        group = parser.add_argument_group(title)
        groups.update(dict.fromkeys(names, group))
    return groups


def _add_fields(parser: argparse.ArgumentParser, cls: type, target: Any = None) -> None:
    hints = typing.get_type_hints(cls)
    groups = _groups(parser, cls) if target is None else {}
    for f in dataclasses.fields(cls):
        kind = _base_type(hints[f.name])
        where = target or groups.get(f.name, parser)
        if dataclasses.is_dataclass(kind):
            _add_fields(parser, kind, where if where is not parser else parser.add_argument_group(
                f"{f.name} ({kind.__name__})"))
            continue
        help_text = _field_help(f, kind)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if "nargs" in f.metadata:
            where.add_argument(f.name, nargs=f.metadata["nargs"], type=kind, help=f.metadata.get("help", ""))
            continue
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            where.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                               help=help_text)
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            where.add_argument(flag, dest=f.name, type=kind, default=default, required=not has_default,
                               metavar=kind.__name__.upper(), help=help_text)


def build_parser(cls: type, description: str) -> argparse.ArgumentParser:
    """An argparse parser whose flags are `cls`'s fields (see module docstring)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_fields(parser, cls)
    return parser


def _construct(cls: type[C], values: dict[str, Any]) -> C:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        kind = _base_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = _construct(kind, values)
        elif f.name in values:
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def parse_config(cls: type[C], argv: Sequence[str] | None, description: str) -> C:
    """Parse `argv` into a validated `cls` instance (validation errors are ValueError)."""
    namespace = build_parser(cls, description).parse_args(argv)
    return _construct(cls, vars(namespace))


def setup_logging(debug: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


def run_script(cls: type[C], argv: Sequence[str] | None, description: str, body: Callable[[C], int | None]) -> int:
    """Parse flags, run `body(config)` and turn user errors into one stderr line + exit status 2.

    `--debug` re-raises so the full traceback shows. Ctrl-C exits with 130.
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    setup_logging(debug)
    try:
        config = parse_config(cls, argv, description)
        console.quiet_startup(getattr(config, "verbose", False))
        return body(config) or 0
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
