"""End to end: train -> SavedModel -> evaluate.py / predict.py, on a tiny model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbert.scripts import evaluate_main
from tfbert.scripts import predict_main
from tests.conftest import TINY_FLAGS
from tfbert.export import export_saved_model

pytestmark = pytest.mark.slow
TEXTS = ["这个手机很好", "快递太差了，退货", "great", "", "我们的酒店服务质量价格" * 20]

LOADER = r"""
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401  the only imports a TF Serving client has
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
assert "tfbert" not in sys.modules and "keras_hub" not in sys.modules
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "label": [x.decode() for x in out["label"].numpy()]}))
"""


def test_layout_and_assets(trained):
    path = trained.export_path
    assert path.endswith(os.path.join("reviews", "1"))
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    extra = os.path.join(path, "assets.extra")
    assert open(os.path.join(extra, "labels.txt"), encoding="utf-8").read() == "negative\npositive\n"
    config = json.load(open(os.path.join(extra, "config.json"), encoding="utf-8"))
    assert config["config"]["max_seq_length"] == 32 and config["label_names"] == ["negative", "positive"]
    assert config["task"] == "classification" and config["task_config"]["threshold"] == 0.5
    metrics = json.load(open(os.path.join(extra, "metrics.json")))
    assert {"loss", "accuracy", "f1", "roc_auc", "confusion_matrix"} <= set(metrics)
    assert os.path.isfile(os.path.join(trained.run_dir, "checkpoints", "best.keras"))
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp")]


def test_tiny_model_learns(trained):
    # The label is decided by one sentiment word: a working pipeline learns it.
    assert trained.metrics["accuracy"] >= 0.8


def test_savedmodel_matches_keras_in_a_fresh_process(trained):
    keras_probs = np.asarray(trained.task.probabilities(trained.model(trained.preprocessor(tf.constant(TEXTS)), training=False)))
    out = subprocess.run([sys.executable, "-c", LOADER, trained.export_path, json.dumps(TEXTS)],
                         capture_output=True, text=True, check=True)
    served = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["probabilities"], keras_probs, atol=1e-5)
    assert served["label"] == [trained.label_names[i] for i in keras_probs.argmax(1)]




















def test_baseline_reported_beside_bert(trained):
    assert trained.metrics["baseline"]["accuracy"] > 0.8  # TF-IDF learns the one-word rule too




def test_vocabulary_from_scratch_covers_both_texts_of_a_pair():
    from tfbert.config import ModelConfig, TrainConfig
    from tfbert.data import Examples
    from tfbert.tasks import ClassificationTask
    from tfbert.training import build_model

    config = TrainConfig(text_pair_column="b", model=ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32))
    train_set = Examples(texts=["这个手机很好"] * 3, labels=["1"] * 3, pairs=["推荐购买"] * 3)
    preprocessor = build_model(config, train_set, ClassificationTask(("0", "1"))).preprocessor
    ids = preprocessor(tf.constant(["这个手机很好"]), tf.constant(["推荐购买"]))["token_ids"].numpy()[0]
    unknown = preprocessor.vocabulary.index("[UNK]")
    assert int(ids.sum()) > 0 and unknown not in ids.tolist()


@pytest.mark.slow
def test_same_seed_same_metrics(review_csv, tmp_path):
    from tfbert.cli import parse_config
    from tfbert.config import TrainConfig
    from tfbert.training import train as train_fn

    metrics = []
    for run in ("a", "b"):
        argv = ["--data", review_csv, "--epochs", "2", "--export-dir", str(tmp_path / run), "--log-dir", str(tmp_path / run),
                "--run-name", "r", *TINY_FLAGS]
        metrics.append(train_fn(parse_config(TrainConfig, argv, "")).metrics)
    for key in ("loss", "accuracy", "f1", "roc_auc"):
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-6), key


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_FIELDS = {"multi_label": {"labels", "probabilities"}, "multi_label_wide_pairs": {"labels", "probabilities"},
               "regression_pairs": {"prediction"}}


def _script(tmp_path, *argv):
    """A fresh process, as a user runs it (`python predict.py ...` from the checkout)."""
    out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", sorted(TASK_FIELDS))
def test_each_task_learns_exports_and_answers_in_a_fresh_process(task_runs, task_files, name, tmp_path):
    from tests.conftest import TASK_RUNS

    result = task_runs[name]
    metrics = result.metrics
    if result.task.name == "multi_label":
        # A 1-layer, 16-wide BERT after 4 epochs: the topic words are learnt, the sentiment word partly.
        assert metrics["micro_f1"] > 0.7 and set(metrics["per_label"]) == {"delivery", "positive", "price", "service"}
    else:
        assert metrics["pearson"] > 0.7 and metrics["rmse"] < 1.0
    data = task_files[TASK_RUNS[name][TASK_RUNS[name].index("--data") + 1]]
    answers = tmp_path / "answers.jsonl"
    _script(tmp_path, "predict.py", "--model", result.export_path, "--file", data, "--output", str(answers))
    records = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 400 and TASK_FIELDS[name] <= set(records[0])
    assert "text" in records[0] and ("pair" in records[0]) == name.endswith("pairs")  # input columns kept
    # The fresh process answers what the trained model computes.
    texts = [r["text"] for r in records[:16]]
    pairs = [r["pair"] for r in records[:16]] if name.endswith("pairs") else None
    features = result.preprocessor(tf.constant(texts), *([tf.constant(pairs)] if pairs else []))
    expected = np.asarray(result.task.scores(result.model(features, training=False)))
    served = [r.get("prediction") for r in records[:16]] if "prediction" in records[0] else \
        [list(r["probabilities"].values()) for r in records[:16]]
    np.testing.assert_allclose(np.asarray(served, np.float64).reshape(expected.shape), expected, atol=1e-4)
    report = tmp_path / "m.json"
    _script(tmp_path, "evaluate.py", "--model", result.export_path, "--data", data, "--json", str(report))
    evaluated = json.loads(report.read_text())
    assert evaluated["task"] == result.task.name and evaluated["num_examples"] == 400


def test_multi_label_threshold_is_exported_and_applied(task_runs, tmp_path):
    result = task_runs["multi_label"]
    signature = tf.saved_model.load(result.export_path).signatures["serving_default"]
    out = signature(text=tf.constant(["很好价格", "差快递"]))
    np.testing.assert_array_equal(out["labels"].numpy(), out["probabilities"].numpy() >= result.task.threshold)
    assert out["labels"].dtype == tf.bool and out["labels"].shape == (2, 4)
    config = json.load(open(os.path.join(result.export_path, "assets.extra", "config.json")))
    assert config["task_config"]["threshold"] == 0.5 and config["task"] == "multi_label"


def test_regression_answers_in_the_targets_units(task_runs):
    result = task_runs["regression_pairs"]
    task = result.task
    assert 1.5 < task.mean < 3.5 and task.std > 0.5  # the synthetic scores' own scale
    signature = tf.saved_model.load(result.export_path).signatures["serving_default"]
    out = signature(text=tf.constant(["很好", "差"]), text_pair=tf.constant(["书", "书"]))
    assert set(out) == {"prediction"} and out["prediction"].shape == (2,)
    assert out["prediction"].numpy()[0] > out["prediction"].numpy()[1]  # positive scores higher


@pytest.mark.parametrize("argv,message", [
    (["--task", "regression"], "is not a number; --task regression takes one number per text"),
    (["--task", "classification"], "is a list of labels; for several labels per text pass --task multi_label"),
])
def test_the_task_is_never_guessed(task_files, tmp_path, capsys, argv, message):
    from tfbert.scripts import train_main

    data = task_files["tags.jsonl"]
    assert train_main(["--data", data, *argv, "--export-dir", str(tmp_path), "--log-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "tags.jsonl: line 1" in err


def test_numbers_under_classification_name_the_flag(task_files, tmp_path, capsys):
    from tfbert.scripts import train_main

    assert train_main(["--data", task_files["scores.csv"], "--export-dir", str(tmp_path),
                       "--log-dir", str(tmp_path)]) == 2
    assert "Pass --task regression" in capsys.readouterr().err


def test_class_weights_are_in_the_run_summary(review_csv, tmp_path):
    from tfbert.cli import parse_config
    from tfbert.config import TrainConfig
    from tfbert.training import train

    argv = ["--data", review_csv, "--epochs", "1", "--class-weight", "balanced", "--metric-for-best-model", "f1",
            "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), "--run-name", "w", *TINY_FLAGS]
    result = train(parse_config(TrainConfig, argv, ""))
    summary = json.load(open(os.path.join(result.run_dir, "run_summary.json")))
    weights = summary["task"]["class_weights"]
    assert len(weights) == 2 and all(w > 0 for w in weights)
    best = json.load(open(os.path.join(result.run_dir, "checkpoints", "best.json")))
    assert best["monitor"] == "val_f1"


def test_the_kept_epochs_validation_loss_is_the_final_one(trained):
    # The epoch logs come from the one validation pass per epoch; the kept weights must score the same afterwards.
    summary = json.load(open(os.path.join(trained.run_dir, "run_summary.json")))
    history = summary["history"]
    kept = int(np.argmin(history["val_loss"]))
    assert history["val_loss"][kept] == pytest.approx(trained.metrics["loss"], abs=1e-4)
    assert history["val_accuracy"][kept] == pytest.approx(trained.metrics["accuracy"], abs=1e-6)


def test_the_model_card_records_the_run(trained, review_csv):
    card = open(os.path.join(trained.export_path, "assets.extra", "README.md"), encoding="utf-8").read()
    assert "- labels: negative, positive" in card and "none (BERT from scratch)" in card
    assert f"| {os.path.basename(review_csv)} | {os.path.getsize(review_csv):,} |" in card
    assert f"{trained.metrics['accuracy']:.4f}" in card and "| TF-IDF baseline |" in card
    # The signatures are read back from the SavedModel as written.
    assert "- `serving_default`" in card and "`text` string [None]" in card and "`probabilities` float32 [None, 2]" in card
    for library in ("tensorflow", "keras", "keras-hub", "tfbert"):
        assert f"- {library} " in card
