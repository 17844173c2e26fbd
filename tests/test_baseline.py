"""The TF-IDF baseline rebuilt in TensorFlow ops (GraphBaseline) against scikit-learn, and the ensemble export."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings, strategies as st

from tfbert.scripts import evaluate_main
from tfbert.scripts import train_main
from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert.baseline import ICU_LOWERCASE_GAP, GraphBaseline, fit_baseline, normalize
from tfbert.data import joined_texts
from tfbert.export import SERVING_TF_TEXT_OPS, export_saved_model
from tfbert.tasks import ClassificationTask

BINARY = ClassificationTask(("negative", "positive"))
THREE = ClassificationTask(("a", "b", "c"))
TASKS = {2: BINARY, 3: THREE}
ESTIMATOR = BINARY.baseline_estimator


def baseline_probabilities(model, texts, num_labels):
    return TASKS[num_labels].baseline_scores(model, texts)

# Chinese, both cases of Latin and Greek (final sigma is context-dependent),
# every kind of whitespace sklearn collapses (Python's Unicode \s, not RE2's
# ASCII one), NUL, an emoji outside the BMP, a character lowercasing lengthens.
ALPHABET = list("好差很这个手机书酒店服务是的了") + list("aAbBcCzZ") + list("ΣσςΑα") + [
    " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\x00", "😀", "İ", "ß"]
TEXTS = st.text(alphabet=st.sampled_from(ALPHABET), max_size=30)


def _corpus(n=600, seed=0):
    """Synthetic reviews plus noise texts over ALPHABET, so the vocabulary holds whitespace and case n-grams."""
    rng = np.random.default_rng(seed)
    rows = synthetic_rows(n // 2, seed)
    texts = [r["text"] for r in rows] + ["".join(rng.choice(ALPHABET, size=rng.integers(0, 25))) for _ in range(n // 2)]
    labels = [int(r["label"] == "positive") for r in rows] + list(rng.integers(0, 3, size=n // 2))
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def fitted():
    texts, labels = _corpus()
    binary = fit_baseline(texts, labels.clip(0, 1), ESTIMATOR())
    three = fit_baseline(texts, labels, ESTIMATOR())
    return {2: (binary, tf.function(GraphBaseline(binary, BINARY))), 3: (three, tf.function(GraphBaseline(three, THREE)))}


def test_the_vocabulary_covers_the_tricky_ngrams(fitted):
    vocabulary = fitted[2][0][0].vocabulary_
    assert {" ", "σ", "ς", "\u3000", "ab"} <= set(vocabulary) and "A" not in vocabulary and "\x00" not in vocabulary


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=6), num_labels=st.sampled_from([2, 3]))
def test_graph_matches_sklearn(fitted, texts, num_labels):
    model, graph = fitted[num_labels]
    expected = baseline_probabilities(model, texts, num_labels)
    np.testing.assert_allclose(graph(tf.constant(texts)).numpy(), expected, atol=1e-5)


def test_graph_matches_sklearn_on_pairs_and_edge_texts(fitted):
    model, graph = fitted[2]
    texts, pairs = ["", "ΑΣ", "好  \u3000 差", "\x00很好", "A" * 500], ["差", "", "很好", "ab", "ς"]
    np.testing.assert_allclose(graph(tf.constant(texts)).numpy(), baseline_probabilities(model, texts, 2), atol=1e-5)
    np.testing.assert_allclose(graph(tf.constant(texts), tf.constant(pairs)).numpy(),
                               baseline_probabilities(model, joined_texts(texts, pairs), 2), atol=1e-5)
    # No known n-gram: the row is all zeros, so only the intercept speaks, in both.
    empty = graph(tf.constant(["", "龘"])).numpy()
    np.testing.assert_allclose(empty[0], empty[1], atol=1e-7)


def test_graph_takes_any_bytes(fitted):
    _, graph = fitted[2]
    probabilities = graph(tf.constant([b"\xff\xfe\xc3(", b"ok\x80", b""])).numpy()
    assert probabilities.shape == (3, 2) and np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_lowercasing_differs_from_python_only_at_the_known_code_points():
    points = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    # A trailing "x" keeps each string non-empty: numpy drops trailing NULs from bytes.
    lowered = tf.strings.lower(tf.constant([chr(c).encode() + b"x" for c in points]), encoding="utf-8").numpy()
    differ = {c for c, low in zip(points, lowered) if normalize(chr(c) + "x").encode() != low}
    assert differ == ICU_LOWERCASE_GAP


def test_other_vectorizer_settings_are_refused():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = _corpus(100)
    model = make_pipeline(TfidfVectorizer(analyzer="word"), LogisticRegression()).fit(texts, labels.clip(0, 1))
    with pytest.raises(ValueError, match="reproduces fit_baseline's TfidfVectorizer settings only"):
        GraphBaseline(model, BINARY)


@pytest.mark.slow
def test_ensemble_training_run_exports_what_it_reports(tmp_path, capsys):
    """train.py --ensemble-baseline end to end: printed metrics, the export's outputs, and evaluate.py agree."""
    rows = synthetic_rows(300, seed=3)
    train_csv, val_csv = write_csv(tmp_path / "tr.csv", rows[:220]), write_csv(tmp_path / "va.csv", rows[220:])
    assert train_main(["--data", train_csv, "--validation-data", val_csv, "--epochs", "1", "--ensemble-baseline",
                       "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert "BERT alone: Validation Loss:" in printed
    assert "Ensemble (BERT + baseline, equal weights, as exported)" in printed
    export = os.path.join(tmp_path, "sm", "tr", "1")
    metrics = json.load(open(os.path.join(export, "assets.extra", "metrics.json")))
    assert {"bert", "baseline"} <= set(metrics) and metrics["num_examples"] == 80

    loaded = tf.saved_model.load(export)
    assert set(loaded.signatures) == {"serving_default"}  # token ids cannot feed the TF-IDF half
    texts = [r["text"] for r in rows[220:]]
    out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](text=tf.constant(texts)).items()}
    assert {"bert_probabilities", "baseline_probabilities", "probabilities", "label", "label_names"} == set(out)
    mean = (out["bert_probabilities"] + out["baseline_probabilities"]) / 2
    np.testing.assert_allclose(out["probabilities"], mean, atol=1e-6)
    ids = np.array([int(r["label"] == "positive") for r in rows[:220]])
    sklearn = baseline_probabilities(fit_baseline([r["text"] for r in rows[:220]], ids, ESTIMATOR()), texts, 2)
    np.testing.assert_allclose(out["baseline_probabilities"], sklearn, atol=1e-5)

    assert evaluate_main(["--model", export, "--data", val_csv, "--json", str(tmp_path / "m.json")]) == 0
    evaluated = json.load(open(tmp_path / "m.json"))
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"], abs=1 / 80 + 1e-9)
    assert evaluated["loss"] == pytest.approx(metrics["loss"], abs=1e-3)


def test_ensemble_export_uses_only_ops_tf_serving_links(trained, tmp_path):
    from tests.test_export import _non_core_ops

    texts = [r["text"] for r in synthetic_rows(200)]
    ids = np.array([int(r["label"] == "positive") for r in synthetic_rows(200)])
    baseline = GraphBaseline(fit_baseline(texts, ids, ESTIMATOR()), BINARY)
    path = export_saved_model(trained.model, trained.task, str(tmp_path / "e"),
                              baseline=baseline)
    assert _non_core_ops(path) <= SERVING_TF_TEXT_OPS


def test_baseline_learns_the_synthetic_task():
    from tests.conftest import synthetic_rows
    from tfbert.baseline import tfidf_baseline
    from tfbert.data import Examples, Splits

    rows = synthetic_rows(400)
    examples = Examples([r["text"] for r in rows], [r["label"] for r in rows])
    task = ClassificationTask(("negative", "positive"))
    result = tfidf_baseline(task, Splits(examples.subset(range(300)), examples.subset(range(300, 400)), "s"))
    assert result.metrics["accuracy"] > 0.9 and result.metrics["num_examples"] == 100
    assert result.scores.shape == (100, 2)


@pytest.mark.parametrize("kind", ["multi_label", "regression"])
def test_the_graph_baseline_matches_sklearn_for_every_task(kind):
    """The in-graph twin the ensemble export uses, for one-vs-rest logistic regressions and for ridge regression."""
    from tests.conftest import synthetic_task_rows
    from tfbert.tasks import MultiLabelTask, RegressionTask

    rows = synthetic_task_rows(200, seed=4)
    texts = [r["text"] for r in rows]
    if kind == "multi_label":
        task = MultiLabelTask(("delivery", "positive", "price", "service", "never"))  # one label no row has
        targets = task.baseline_targets([tuple(r["tags"]) for r in rows])
    else:
        task = RegressionTask(2.0, 1.0)
        targets = task.baseline_targets([r["score"] for r in rows])
    model = fit_baseline(texts[:150], targets[:150], task.baseline_estimator())
    graph = tf.function(GraphBaseline(model, task))
    expected = task.baseline_scores(model, texts[150:])
    np.testing.assert_allclose(graph(tf.constant(texts[150:])).numpy(), expected, atol=1e-4)
