import numpy as np
import pytest

from tfbert.tasks import ClassificationTask, sorted_label_names

BINARY = ClassificationTask(("neg", "pos"))
THREE = ClassificationTask(("a", "b", "c"))


def test_label_names_order():
    assert sorted_label_names(["10", "2", "1", "2"]) == ("1", "2", "10")
    assert sorted_label_names(["pos", "neg"]) == ("neg", "pos")
    assert ClassificationTask.from_labels(["pos", "neg", "pos"]).label_names == ("neg", "pos")


def test_one_class_is_rejected():
    with pytest.raises(ValueError, match=r"only 1 class \('x'\); a classifier needs at least 2"):
        ClassificationTask(("x",))


def test_unknown_labels_are_named():
    BINARY.check_labels(["pos", "neg"], "v.csv")
    with pytest.raises(ValueError, match="v.csv has labels that training never saw: 'neutral'"):
        BINARY.check_labels(["pos", "neutral"], "v.csv")


def test_targets_head_and_loss_per_task():
    assert BINARY.targets(["pos", "neg"]).tolist() == [[1.0], [0.0]] and BINARY.targets(["pos"]).dtype == np.float32
    assert (BINARY.output_units, BINARY.activation) == (1, "sigmoid")
    assert THREE.targets(["c", "a"]).tolist() == [2, 0] and THREE.targets(["c"]).dtype == np.int32
    assert (THREE.output_units, THREE.activation) == (3, "softmax")
    assert type(BINARY.loss()).__name__ == "BinaryCrossentropy"
    assert type(THREE.loss()).__name__ == "SparseCategoricalCrossentropy"


def test_binary_outputs_become_two_columns():
    np.testing.assert_allclose(np.asarray(BINARY.probabilities(np.array([[0.25]], np.float32))), [[0.75, 0.25]])
    probs = np.array([[0.2, 0.5, 0.3]])
    assert THREE.probabilities(probs) is probs


def test_binary_golden():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.8, 0.4])
    m = BINARY.evaluate(y, np.stack([1 - p1, p1], 1))
    assert m["accuracy"] == 0.5 and m["average"] == "binary" and m["threshold"] == 0.5
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["roc_auc"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.4])))


def test_threshold_moves_decisions():
    y = np.array([0, 1])
    p1 = np.array([0.3, 0.4])
    probs = np.stack([1 - p1, p1], 1)
    assert BINARY.evaluate(y, probs)["accuracy"] == 0.5
    assert BINARY.evaluate(y, probs, threshold=0.35)["accuracy"] == 1.0
    assert ClassificationTask(("a", "b"), threshold=0.35).evaluate(y, probs)["accuracy"] == 1.0


def test_multiclass_macro_and_missing_label():
    y = np.array([0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    m = THREE.evaluate(y, probs)
    assert m["average"] == "macro" and "threshold" not in m
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["roc_auc"] is None  # label "c" absent: undefined, not a crash
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_report_names_every_label():
    y = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 2, 1]]
    report = THREE.report(y, probs)
    assert all(name in report for name in THREE.label_names) and "Confusion matrix" in report
    assert report.splitlines()[-1].split() == ["c", "0", "1", "1"]


def test_curve_labels():
    assert BINARY.curve_labels == [1] and THREE.curve_labels == [0, 1, 2]
