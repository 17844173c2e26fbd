"""Data files as they come: long fields, bad rows, quoting, line endings, duplicate columns, invalid bytes."""

import logging

import pytest

from tfbert.files import ReadOptions, iter_rows, read_rows


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.jsonl"])
def test_multi_megabyte_fields_are_ordinary(tmp_path, name):
    text = "很好" * 1_500_000  # 9 MB of UTF-8
    content = {"d.csv": f"text,label\n{text},1\n", "d.tsv": f"text\tlabel\n{text}\t1\n",
               "d.jsonl": f'{{"text": "{text}", "label": 1}}\n'}[name]
    path = _write(tmp_path, name, content)
    assert read_rows(path)[0].values["text"] == text
    assert next(iter_rows(path)).values["text"] == text


def test_rows_with_the_wrong_number_of_fields_are_named_or_skipped(tmp_path, caplog):
    path = _write(tmp_path, "d.csv", "text,label\na,1\nb,1,extra\nc\nd,0\n")
    with pytest.raises(ValueError, match=r"d.csv: 2 rows do not have the header's 2 fields \(lines 3, 4\)\. .*"
                                         r"--skip-bad-rows"):
        read_rows(path)
    with caplog.at_level(logging.WARNING):
        rows = read_rows(path, ReadOptions(skip_bad_rows=True))
    assert [r.values["text"] for r in rows] == ["a", "d"] and [r.line for r in rows] == [2, 5]
    assert "skipped 2 rows" in caplog.text
    with pytest.raises(ValueError, match="lines 3\\)"):  # streaming stops at the first bad row
        list(iter_rows(path))


def test_an_unclosed_quote_is_refused_with_its_line(tmp_path):
    path = _write(tmp_path, "d.csv", 'text,label\nfine,1\n"opens and never closes,0\nlast,1\n')
    with pytest.raises(ValueError, match=r"d.csv: line \d+: .*a quote that opens a field must close it"):
        read_rows(path)


def test_quoted_fields_and_mixed_line_endings(tmp_path):
    path = _write(tmp_path, "d.csv", 'text,label\r\n"a, ""b""\nc",1\nd,0\r\ne,1\n')
    rows = read_rows(path)
    assert [r.values["text"] for r in rows] == ['a, "b"\nc', "d", "e"] and [r.line for r in rows] == [3, 4, 5]


def test_a_repeated_column_name_is_refused(tmp_path):
    path = _write(tmp_path, "d.csv", "text,label,text\na,1,b\n")
    with pytest.raises(ValueError, match="the header names 'text' more than once"):
        read_rows(path)


def test_invalid_bytes_count_the_lines_and_offer_replacement(tmp_path, caplog):
    lines = ["text,label", "好,1", "ok \xff\xfe,0", "坏,0", "bad \xc3(,1"]
    raw = "\n".join(lines).encode("utf-8").replace("\xff\xfe".encode("utf-8"), b"\xff\xfe").replace(
        "\xc3(".encode("utf-8"), b"\xc3(")
    path = _write(tmp_path, "d.csv", raw)
    with pytest.raises(ValueError) as refused:
        read_rows(path)
    message = str(refused.value)
    assert "2 lines are not valid UTF-8 (the first is line 3)" in message and "--encoding-errors replace" in message
    assert "GBK" not in message  # these bytes are not GBK either: no misleading hint
    with caplog.at_level(logging.WARNING):
        rows = read_rows(path, ReadOptions(encoding_errors="replace"))
    assert [r.values["text"] for r in rows] == ["好", "ok \ufffd\ufffd", "坏", "bad \ufffd("]
    assert "replaced invalid UTF-8 bytes with U+FFFD in 2 lines (first: line 3)" in caplog.text
    streamed = [r.values["text"] for r in iter_rows(path, ReadOptions(encoding_errors="replace"))]
    assert streamed == [r.values["text"] for r in rows]


def test_the_gbk_hint_only_when_the_file_is_gbk(tmp_path):
    path = _write(tmp_path, "d.csv", "text,label\n很好,1\n太差了,0\n".encode("gbk"))
    with pytest.raises(ValueError, match="The whole file decodes as GBK: convert it with `iconv -f GBK"):
        read_rows(path)


def test_an_excel_bom_is_dropped(tmp_path):
    path = _write(tmp_path, "d.csv", b"\xef\xbb\xbftext,label\na,1\n")
    assert read_rows(path)[0].values == {"text": "a", "label": "1"}
    assert next(iter_rows(path)).values == {"text": "a", "label": "1"}
