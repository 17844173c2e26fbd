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
    assert config["max_seq_length"] == 32 and config["label_names"] == ["negative", "positive"]
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
