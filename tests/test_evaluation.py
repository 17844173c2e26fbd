"""evaluate.py: metrics of an export on a labelled file."""

import json
import os

import numpy as np
import pytest

from tfbert.scripts import evaluate_main

pytestmark = pytest.mark.slow


def test_evaluate_prints_article_line_and_report(trained, review_csv, capsys, tmp_path):
    out_json = tmp_path / "m.json"
    assert evaluate_main(["--model", os.path.dirname(trained.export_path), "--data", review_csv, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("Validation Loss: ") and ", Validation Accuracy: " in first
    assert "precision" in out and "Confusion matrix" in out
    metrics = json.loads(out_json.read_text())
    assert metrics["num_examples"] == 400
    assert f"{metrics['accuracy']:.4f}" in first


def test_evaluate_takes_other_column_names(trained, review_csv, tmp_path, capsys):
    import csv

    from tests.conftest import write_csv

    with open(review_csv, encoding="utf-8") as f:
        rows = [{"review": r["text"], "y": r["label"]} for r in csv.DictReader(f)]
    renamed = write_csv(tmp_path / "renamed.csv", rows, fieldnames=("review", "y"))
    # Without flags the training columns are looked for, and the error names the flag that fixes it.
    assert evaluate_main(["--model", trained.export_path, "--data", renamed]) == 2
    err = capsys.readouterr().err
    assert "no text column 'text'; columns found: review, y. Pass --text-column NAME." in err
    original, other = tmp_path / "a.json", tmp_path / "b.json"
    assert evaluate_main(["--model", trained.export_path, "--data", review_csv, "--json", str(original)]) == 0
    assert evaluate_main(["--model", trained.export_path, "--data", renamed, "--text-column", "review",
                          "--label-column", "y", "--json", str(other)]) == 0
    a, b = json.loads(original.read_text()), json.loads(other.read_text())
    assert b["num_examples"] == 400 and a["confusion_matrix"] == b["confusion_matrix"]
    assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)


def test_evaluate_threshold_and_predictions_file(trained, review_csv, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    assert evaluate_main(["--model", trained.export_path, "--data", review_csv, "--predictions", str(preds),
                          "--threshold", "0.999", "--json", str(tmp_path / "m.json")]) == 0
    records = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 400
    # With a threshold of 0.999 almost nothing is called positive.
    assert all(r["label"] == "negative" for r in records if r["probabilities"]["positive"] < 0.999)
    assert all(r["label"] == "positive" for r in records if r["probabilities"]["positive"] >= 0.999)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["threshold"] == 0.999
    assert metrics["accuracy"] == pytest.approx(np.mean([r["label"] == r["truth"] for r in records]))
