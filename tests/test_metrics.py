import numpy as np
import pytest

from tfbert.metrics import classification_metrics, format_confusion_matrix, log_loss, loss_and_accuracy


def test_log_loss_golden():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [1.0, 0.0]])
    assert log_loss(np.array([0, 1, 1]), probs) == pytest.approx(-np.mean(np.log([0.9, 0.6, 1e-7])))
    assert np.isnan(log_loss(np.array([], np.int64), np.zeros((0, 2))))


def test_metrics_follow_the_given_average_and_scores():
    y = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 2, 1]] * 0.8 + 0.2 / 3
    m = classification_metrics(y, probs, np.array([0, 1, 2, 1]), ["a", "b", "c"], "macro", probs)
    assert m["accuracy"] == 0.75 and m["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["roc_auc"] == pytest.approx((1 + 2.5 / 3 + 3 / 4) / 3)  # one-vs-rest, ties count half


def test_confusion_matrix_text():
    text = format_confusion_matrix([[3, 1], [0, 2]], ["neg", "pos"])
    assert text.splitlines()[1].split() == ["neg", "3", "1"]


def test_the_articles_line():
    assert loss_and_accuracy({"loss": 0.41864, "accuracy": 0.82291}) == \
        "Validation Loss: 0.4186, Validation Accuracy: 0.8229"
