"""Data files as they come: CSV, TSV, JSON Lines and plain text, read into rows with their line numbers.

What tfbert accepts, and what it refuses with a message that names the line:
- UTF-8, with or without Excel's byte-order mark. A file with invalid bytes
  is refused with the count of affected lines and the first one; with
  `--encoding-errors replace` each invalid byte becomes U+FFFD (as pandas'
  `encoding_errors="replace"`) and the run logs how many lines changed. The
  message suggests a GBK conversion only when the whole file decodes as GBK.
- Fields of any length (truncation is the tokenizer's job), quoted fields
  that span lines, mixed line endings.
- A header row naming each column once (a repeated name is refused).
- Rows with the header's number of fields. Others are refused with their
  line numbers, or, with `--skip-bad-rows`, dropped and counted.
- Quotes that open and never close are refused (`csv` strict mode), since
  they silently swallow the rest of the file otherwise.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator

logger = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
STREAM_FORMATS = {**FORMATS, ".txt": "txt"}
ENCODING_ERRORS = ("strict", "replace")
BAD_LINES_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How forgiving reading a data file is: the `--encoding-errors` and `--skip-bad-rows` flags."""

    encoding_errors: str = dataclasses.field(
        default="strict",
        metadata={"help": f"Invalid UTF-8 bytes in a data file: {' or '.join(ENCODING_ERRORS)} (refuse the file, "
                          "naming the first bad line; or read each bad byte as U+FFFD and report the lines changed)."},
    )
    skip_bad_rows: bool = dataclasses.field(
        default=False,
        metadata={"help": "Drop CSV/TSV rows whose number of fields differs from the header's, and report the "
                          "count (default: refuse the file, naming the lines)."},
    )

    def __post_init__(self):
        if self.encoding_errors not in ENCODING_ERRORS:
            raise ValueError(f"--encoding-errors {self.encoding_errors!r} is not one of {', '.join(ENCODING_ERRORS)}.")


@dataclasses.dataclass(frozen=True)
class Row:
    """One record of a file and the line it ends on (for messages)."""

    line: int
    values: dict


def check_path(path: str, flag: str, formats: dict[str, str]) -> str:
    """The format of `path` (a key of `formats`' values), or the error a user can fix."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path!r} does not exist. Check the path.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{flag} {path!r} is a directory; pass a {', '.join(sorted(formats))} file.")
    ext = os.path.splitext(path)[1].lower()
    if ext not in formats:
        raise ValueError(
            f"Unknown data format {ext or '(no extension)'!r} for {path!r}: expected one of "
            f"{', '.join(sorted(formats))}. Rename the file to match its format."
        )
    return formats[ext]


def decode(raw: bytes, path: str, errors: str = "strict") -> str:
    """UTF-8 text of a file's bytes (see the module docstring for invalid bytes)."""
    if raw.startswith(b"\xef\xbb\xbf"):  # Excel writes a UTF-8 BOM
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        first = raw[: error.start].count(b"\n") + 1
    bad = [number for number, line in enumerate(raw.split(b"\n"), 1) if not _is_utf8(line)]
    if errors == "replace":
        logger.warning("%s: replaced invalid UTF-8 bytes with U+FFFD in %d lines (first: line %d).", path, len(bad),
                       first)
        return raw.decode("utf-8", errors="replace")
    raise ValueError(f"{path}: {len(bad)} lines are not valid UTF-8 (the first is line {first}). "
                     f"{_encoding_hint(raw, path)}")


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _encoding_hint(raw: bytes, path: str) -> str:
    try:
        raw.decode("gbk")
    except UnicodeDecodeError:
        return ("Pass --encoding-errors replace to read them with each invalid byte as U+FFFD (the run reports how "
                "many lines changed), or fix the file.")
    return (f"The whole file decodes as GBK: convert it with `iconv -f GBK -t UTF-8 {path} > utf8.csv`, or pass "
            "--encoding-errors replace.")


def read_rows(path: str, options: ReadOptions = ReadOptions()) -> list[Row]:
    """Every record of a labelled .csv / .tsv / .jsonl file, in memory (training data)."""
    kind = check_path(path, "Data file", FORMATS)
    with open(path, "rb") as f:
        text = decode(f.read(), path, options.encoding_errors)
    if not text.strip():
        raise ValueError(f"Data file {path!r} is empty.")
    if kind == "jsonl":
        # Split on "\n" only: str.splitlines() also breaks at U+2028/U+2029, \x85, \x0b,
        # ..., which `json.dumps(ensure_ascii=False)` leaves unescaped inside strings.
        return [Row(n, json_record(line, path, n)) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    # The csv module reads quoted fields that span lines, and needs the newlines
    # to do it (newline=""); str.splitlines() dropped them and also split at
    # U+2028, \x85, \x0c, ... inside a text.
    return list(csv_rows(io.StringIO(text, newline=""), kind, path, options))


def json_record(line: str, path: str, number: int) -> dict:
    try:
        values = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {number} is not valid JSON ({error.msg}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: line {number} is a JSON {type(values).__name__}, expected an object.")
    return values


def csv_rows(stream, kind: str, path: str, options: ReadOptions, streaming: bool = False) -> Iterator[Row]:
    """The records of a CSV / TSV stream, checked: one name per column, the header's number of fields per row.

    A row with another number of fields is dropped under `skip_bad_rows`; otherwise the error lists all such
    rows, or, `streaming`, stops at the first (before anything after it is answered).
    """
    csv.field_size_limit(sys.maxsize)  # texts of any length; the default limit is 128 KiB per field
    reader = csv.reader(stream, delimiter="\t" if kind == "tsv" else ",", strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise ValueError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once; give each "
                             "column its own name.")
        bad = []
        for fields in reader:
            if len(fields) == len(header):
                yield Row(reader.line_num, dict(zip(header, fields)))
            elif fields:  # a blank line is no row
                bad.append(reader.line_num)
                if streaming and not options.skip_bad_rows:
                    break
    except csv.Error as error:
        raise ValueError(f"{path}: line {reader.line_num}: {error} (a quote that opens a field must close it; "
                         "double a quote inside a quoted field).") from None
    _report_bad_rows(bad, len(header), path, options)


def _report_bad_rows(bad: list[int], width: int, path: str, options: ReadOptions) -> None:
    if not bad:
        return
    lines = ", ".join(map(str, bad[:BAD_LINES_SHOWN])) + (", ..." if len(bad) > BAD_LINES_SHOWN else "")
    if options.skip_bad_rows:
        logger.warning("%s: skipped %d rows whose number of fields is not the header's %d (lines %s).", path,
                       len(bad), width, lines)
        return
    raise ValueError(f"{path}: {len(bad)} rows do not have the header's {width} fields (lines {lines}). Quote "
                     "fields that contain the delimiter, or pass --skip-bad-rows to drop such rows.")


def iter_rows(path: str, options: ReadOptions = ReadOptions(), flag: str = "--file",
              formats: dict[str, str] = STREAM_FORMATS) -> Iterator[Row]:
    """The records of a .csv / .tsv / .jsonl file, or the lines of a .txt file (as `{"text": line}`), one at a time.

    Streams: memory stays bounded whatever the file's size. A .txt line may be `text<TAB>text_pair`
    (`{"text": ..., "text_pair": ...}`). Blank .txt and .jsonl lines are skipped.
    """
    kind = check_path(path, flag, formats)
    with open(path, encoding="utf-8-sig", errors=options.encoding_errors, newline="") as f:
        try:
            if kind in ("csv", "tsv"):
                yield from csv_rows(f, kind, path, options, streaming=True)
                return
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield Row(number, _line_record(line, kind, path, number))
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not valid UTF-8. Pass --encoding-errors replace to read invalid bytes as "
                             "U+FFFD, or fix the file.") from None


def _line_record(line: str, kind: str, path: str, number: int) -> dict:
    if kind == "txt":
        text, tab, pair = line.partition("\t")
        return {"text": text, "text_pair": pair} if tab else {"text": text}
    return json_record(line, path, number)


def batched(items, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last may be shorter), read lazily."""
    items = iter(items)
    while batch := list(itertools.islice(items, size)):
        yield batch


def peeked(rows: Iterator[Row]) -> tuple[list[Row], Iterator[Row]]:
    """The first row (or none) of `rows`, and an iterator over all of them, the first included."""
    first = list(itertools.islice(rows, 1))
    return first, itertools.chain(first, rows)
