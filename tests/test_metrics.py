import numpy as np
import pytest

from tfbert.metrics import classification_metrics, format_confusion_matrix


def test_binary_golden():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.8, 0.4])
    m = classification_metrics(y, np.stack([1 - p1, p1], 1), ["neg", "pos"])
    assert m["accuracy"] == 0.5
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["roc_auc"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.4])))


def test_threshold_moves_decisions():
    y = np.array([0, 1])
    p1 = np.array([0.3, 0.4])
    probs = np.stack([1 - p1, p1], 1)
    assert classification_metrics(y, probs, ["a", "b"])["accuracy"] == 0.5
    assert classification_metrics(y, probs, ["a", "b"], threshold=0.35)["accuracy"] == 1.0


def test_multiclass_macro_and_missing_label():
    y = np.array([0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["average"] == "macro"
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["roc_auc"] is None  # label "c" absent: undefined, not a crash
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_confusion_matrix_text():
    text = format_confusion_matrix([[3, 1], [0, 2]], ["neg", "pos"])
    assert text.splitlines()[1].split() == ["neg", "3", "1"]


def test_baseline_learns_the_synthetic_task():
    from tests.conftest import synthetic_rows
    from tfbert.baseline import tfidf_baseline

    rows = synthetic_rows(400)
    ids = np.array([int(r["label"] == "positive") for r in rows])
    texts = [r["text"] for r in rows]
    m, _, _ = tfidf_baseline(texts[:300], ids[:300], texts[300:], ids[300:], ["negative", "positive"])
    assert m["accuracy"] > 0.9 and "report" not in m and m["num_examples"] == 100
