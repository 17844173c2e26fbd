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


from tfbert.tasks import MultiLabelTask, RegressionTask, for_training, from_config  # noqa: E402

TAGS = MultiLabelTask(("delivery", "positive", "price"))


def test_multi_label_targets_and_weights():
    labels = [("positive",), (), ("delivery", "positive"), ("positive",)]
    task = MultiLabelTask.from_labels(labels, balanced=True)
    assert task.label_names == ("delivery", "positive")
    assert task.targets(labels).tolist() == [[0, 1], [0, 0], [1, 1], [0, 1]]
    assert task.positive_weights == (3.0, 1 / 3)  # negatives / positives per label
    assert (task.output_units, task.activation) == (2, "sigmoid")
    with pytest.raises(ValueError, match="training never saw: 'price'"):
        task.check_labels([("price",)], "v.jsonl")


def test_multi_label_metrics_golden():
    truth = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    probabilities = np.array([[0.9, 0.2, 0.4], [0.1, 0.7, 0.6], [0.2, 0.1, 0.3]])
    m = TAGS.evaluate(truth, probabilities)
    # Predicted sets: {delivery}, {positive, price}, {}: 2 of 3 true labels found, 1 false alarm.
    assert m["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert m["subset_accuracy"] == pytest.approx(1 / 3) and m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["per_label"]["price"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1,
                                       "roc_auc": pytest.approx(0.5)}
    assert m["per_label"]["delivery"]["roc_auc"] == 1.0
    assert TAGS.evaluate(truth, probabilities, threshold=0.35)["micro_f1"] == pytest.approx(6 / 7)  # 3 found, 1 false
    answers = TAGS.answers(probabilities)
    assert answers.records(TAGS.label_names)[1]["labels"] == ["positive", "price"]


def test_regression_standardizes_and_answers_in_units():
    task = RegressionTask.from_labels([1.0, 3.0, 5.0], "huber")
    assert (task.mean, task.std) == (3.0, pytest.approx(np.std([1.0, 3.0, 5.0])))
    np.testing.assert_allclose(task.targets([1.0, 5.0])[:, 0], [-1.2247449, 1.2247449], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(task.scores(np.array([[0.0], [1.0]]))), [[3.0], [3.0 + task.std]])
    assert RegressionTask.from_labels([2.0, 2.0]).std == 1.0  # constant targets: nothing to scale
    m = task.evaluate(np.array([1.0, 3.0, 5.0]), np.array([[1.5], [3.0], [4.5]]))
    assert m["rmse"] == pytest.approx(np.sqrt(0.5 / 3)) and m["mae"] == pytest.approx(1 / 3)
    assert m["pearson"] == pytest.approx(1.0) and m["spearman"] == pytest.approx(1.0)
    assert task.answers(np.array([[2.5]])).records(())[0] == {"prediction": 2.5}


@pytest.mark.parametrize("task", [BINARY, THREE, TAGS, RegressionTask(2.0, 0.5, "huber"),
                                  ClassificationTask(("a", "b"), 0.3, (2.0, 0.5)),
                                  MultiLabelTask(("x",), 0.7, (4.0,))])
def test_tasks_round_trip_through_the_export_config(task):
    assert from_config(task.to_config()) == task


def test_threshold_override_from_the_export_config():
    assert from_config(TAGS.to_config(), threshold=0.3).threshold == 0.3
    assert from_config(RegressionTask().to_config(), threshold=0.3) == RegressionTask()


def test_for_training_picks_the_task():
    assert isinstance(for_training("classification", ["a", "b"]), ClassificationTask)
    assert isinstance(for_training("multi_label", [("a",), ()]), MultiLabelTask)
    assert for_training("regression", [1.0, 2.0], loss="huber").loss_name == "huber"
    weights = for_training("classification", ["a", "a", "a", "b"], balanced=True).class_weights
    assert weights == (pytest.approx(4 / 6), pytest.approx(2.0))


@pytest.mark.parametrize("task,metric,expected", [
    (BINARY, "loss", ("val_loss", "min")), (BINARY, "roc_auc", ("val_auc", "max")),
    (TAGS, "hamming_loss", ("val_hamming_loss", "min")), (TAGS, "macro_f1", ("val_macro_f1", "max")),
    (RegressionTask(), "rmse", ("val_rmse", "min")), (RegressionTask(), "r2", ("val_r2", "max")),
])
def test_monitor_direction(task, metric, expected):
    assert task.monitor(metric) == expected


def test_the_exported_label_follows_the_binary_threshold():
    import tensorflow as tf

    probabilities = tf.constant([[0.7, 0.3], [0.45, 0.55]])
    names = tf.constant(["negative", "positive"])
    at_half = BINARY.serving_outputs(probabilities, names)["label"].numpy().tolist()
    at_quarter = ClassificationTask(("negative", "positive"), 0.25).serving_outputs(probabilities, names)["label"]
    assert at_half == [b"negative", b"positive"] and at_quarter.numpy().tolist() == [b"positive", b"positive"]
    three = THREE.serving_outputs(tf.constant([[0.2, 0.5, 0.3]]), tf.constant(["a", "b", "c"]))["label"]
    assert three.numpy().tolist() == [b"b"]
