"""predict.py on files: streaming, columns kept, CSV or JSONL out, with any model that answers."""

import csv
import json

import numpy as np
import pytest

from tfbert.prediction import FileColumns, predict_file
from tfbert.serving import Answers


class FakeModel:
    """Answers like a two-label classifier: P(positive) = 0.9 for texts containing 好, counting every call."""

    label_names = ["negative", "positive"]
    path = "fake"

    def __init__(self, pair=False):
        self.pair, self.calls = pair, []

    def predict(self, texts, pairs=None, batch_size=64):
        self.calls.append(len(texts))
        p = np.array([0.9 if "好" in t else 0.2 for t in texts])
        probabilities = np.stack([1 - p, p], axis=1)
        return Answers(probabilities=probabilities, label=np.where(p >= 0.5, "positive", "negative"))


def test_csv_in_jsonl_out_keeps_every_column(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,text,label\n1,很好,positive\n2,太差,negative\n3,好吧,negative\n", encoding="utf-8")
    model = FakeModel()
    count = predict_file(model, str(source), FileColumns("text"), str(tmp_path / "out.jsonl"), batch_size=2)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert count == 3 and model.calls == [2, 1]  # streamed in batches
    assert records[0] == {"id": "1", "text": "很好", "label": "positive", "predicted_label": "positive",
                          "probabilities": {"negative": pytest.approx(0.1), "positive": pytest.approx(0.9)}}
    assert [r["predicted_label"] for r in records] == ["positive", "negative", "positive"]


def test_jsonl_in_csv_out(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"review": "好", "n": 1}\n\n{"review": "差", "n": 2}\n', encoding="utf-8")
    predict_file(FakeModel(), str(source), FileColumns("review"), str(tmp_path / "out.csv"))
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["review"] for r in rows] == ["好", "差"] and rows[0]["label"] == "positive"
    assert json.loads(rows[1]["probabilities"])["negative"] == pytest.approx(0.8)


def test_txt_lines_and_pairs(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("很好\t书\n\n差\t书\n", encoding="utf-8")
    model = FakeModel(pair=True)
    with pytest.raises(ValueError, match="sentence-pair model: pass --text-pair-column"):
        predict_file(model, str(source), FileColumns("text"), str(tmp_path / "o.jsonl"))
    assert predict_file(model, str(source), FileColumns("text", "text_pair"), str(tmp_path / "o.tsv")) == 2
    lines = (tmp_path / "o.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["text", "text_pair", "label", "probabilities"] and len(lines) == 3


def test_a_missing_column_names_the_line_and_the_flag(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("review\n好\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"in.csv: line 2 has no column 'text'; columns found: review. Pass --text-column"):
        predict_file(FakeModel(), str(source), FileColumns("text"), None)


@pytest.mark.parametrize("name", ["in.xlsx", "missing.csv"])
def test_unreadable_files_are_refused(tmp_path, name):
    if name.endswith("xlsx"):
        (tmp_path / name).write_text("x")
    with pytest.raises((ValueError, FileNotFoundError), match="Unknown data format '.xlsx'|--file .* does not exist"):
        predict_file(FakeModel(), str(tmp_path / name), FileColumns(), None)
