"""End to end: train -> SavedModel -> evaluate.py / predict.py, on a tiny model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import evaluate
import predict
from tfbert.export import export_saved_model
from tfbert.model import probabilities_per_label

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
    keras_probs = np.asarray(probabilities_per_label(trained.model(trained.preprocessor(tf.constant(TEXTS)), training=False)))
    out = subprocess.run([sys.executable, "-c", LOADER, trained.export_path, json.dumps(TEXTS)],
                         capture_output=True, text=True, check=True)
    served = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["probabilities"], keras_probs, atol=1e-5)
    assert served["label"] == [trained.label_names[i] for i in keras_probs.argmax(1)]


def test_predict_prints_json_lines(trained, capsys, tmp_path):
    assert predict.main(["--model", os.path.dirname(trained.export_path), "很好", "太差了"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["很好", "太差了"]
    for r in lines:
        assert set(r["probabilities"]) == {"negative", "positive"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    file = tmp_path / "texts.txt"
    file.write_text("很好\n\n太差了\n", encoding="utf-8")
    assert predict.main(["--model", trained.export_path, "--file", str(file)]) == 0
    assert [json.loads(x)["label"] for x in capsys.readouterr().out.splitlines()] == [r["label"] for r in lines]


def test_evaluate_prints_article_line_and_report(trained, review_csv, capsys, tmp_path):
    out_json = tmp_path / "m.json"
    assert evaluate.main(["--model", os.path.dirname(trained.export_path), "--data", review_csv, "--json", str(out_json)]) == 0
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
    assert evaluate.main(["--model", trained.export_path, "--data", renamed]) == 2
    err = capsys.readouterr().err
    assert "no text column 'text'; columns found: review, y. Pass --text-column NAME." in err
    original, other = tmp_path / "a.json", tmp_path / "b.json"
    assert evaluate.main(["--model", trained.export_path, "--data", review_csv, "--json", str(original)]) == 0
    assert evaluate.main(["--model", trained.export_path, "--data", renamed, "--text-column", "review",
                          "--label-column", "y", "--json", str(other)]) == 0
    a, b = json.loads(original.read_text()), json.loads(other.read_text())
    assert b["num_examples"] == 400 and a["confusion_matrix"] == b["confusion_matrix"]
    assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)


def test_versions_count_up_and_never_overwrite(trained, tmp_path):
    base = str(tmp_path / "m")
    first = export_saved_model(trained.model, trained.preprocessor, trained.label_names, base, extra_files={"labels.txt": "a\nb\n"})
    second = export_saved_model(trained.model, trained.preprocessor, trained.label_names, base)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    with pytest.raises(ValueError, match="already exists and is never overwritten"):
        export_saved_model(trained.model, trained.preprocessor, trained.label_names, base, version=1)
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_not_an_export(tmp_path, capsys):
    assert predict.main(["--model", str(tmp_path), "x"]) == 2
    assert "is not a tfbert export" in capsys.readouterr().err


def test_savedmodel_ignores_padding_and_batch_mates(trained):
    loaded = tf.saved_model.load(trained.export_path)
    serve = loaded.signatures["serving_default"]
    alone = serve(text=tf.constant(["很好"]))["probabilities"].numpy()
    batched = serve(text=tf.constant(["我们的酒店服务质量价格" * 9, "很好", "差"]))["probabilities"].numpy()
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)
    feats = trained.preprocessor(tf.constant(["很好"]))  # padded to 32
    by_ids = loaded.signatures["serve_token_ids"]
    for width in (4, 16, 32):
        out = by_ids(**{k: v[:, :width] for k, v in feats.items()})["probabilities"].numpy()
        np.testing.assert_allclose(out, alone, atol=1e-5)


def test_export_has_no_round_robin_trim(trained):
    graph = open(os.path.join(trained.export_path, "saved_model.pb"), "rb").read()
    assert b"RoundRobinTrim" not in graph  # TF Serving <= 2.19 does not link it
    assert b"FastWordpieceTokenizeWithOffsets" in graph  # tokenization is inside the graph


def test_pair_model_end_to_end(tmp_path, capsys):
    from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
    import train

    rows = [{"a": r["text"], "b": s["text"], "label": int(r["label"] == s["label"])}
            for r, s in zip(synthetic_rows(120, seed=1), synthetic_rows(120, seed=2))]
    path = write_csv(tmp_path / "pairs.csv", rows, fieldnames=("a", "b", "label"))
    argv = ["--data", path, "--text-column", "a", "--text-pair-column", "b", "--epochs", "1",
            "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]
    assert train.main(argv) == 0
    export = str(tmp_path / "sm" / "pairs" / "1")
    serve = tf.saved_model.load(export).signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"text", "text_pair"}
    out = serve(text=tf.constant(["很好"]), text_pair=tf.constant(["推荐"]))
    assert out["probabilities"].shape == (1, 2)
    capsys.readouterr()
    assert predict.main(["--model", export, "很好\t推荐"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == "很好" and record["text_pair"] == "推荐"
    np.testing.assert_allclose(list(record["probabilities"].values()), out["probabilities"].numpy()[0], atol=1e-5)
    assert evaluate.main(["--model", export, "--data", path]) == 0
    assert "Validation Accuracy" in capsys.readouterr().out


def test_evaluate_threshold_and_predictions_file(trained, review_csv, tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    assert evaluate.main(["--model", trained.export_path, "--data", review_csv, "--predictions", str(preds),
                          "--threshold", "0.999", "--json", str(tmp_path / "m.json")]) == 0
    records = [json.loads(line) for line in preds.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 400
    # With a threshold of 0.999 almost nothing is called positive.
    assert all(r["predicted"] == "negative" for r in records if r["probabilities"]["positive"] < 0.999)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["threshold"] == 0.999
    assert metrics["accuracy"] == pytest.approx(np.mean([r["predicted"] == r["label"] for r in records]))


def test_baseline_reported_beside_bert(trained):
    assert trained.metrics["baseline"]["accuracy"] > 0.8  # TF-IDF learns the one-word rule too


def test_export_with_a_preprocessor_never_called(trained, tmp_path):
    import keras_hub

    from tfbert.preprocessing import TextPreprocessor

    fresh = TextPreprocessor(keras_hub.models.BertTokenizer(vocabulary=trained.preprocessor.vocabulary, lowercase=True), 32)
    path = export_saved_model(trained.model, fresh, trained.label_names, str(tmp_path / "m"))
    out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["很好"]))
    expected = tf.saved_model.load(trained.export_path).signatures["serving_default"](text=tf.constant(["很好"]))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected["probabilities"].numpy(), atol=1e-6)


def test_vocabulary_from_scratch_covers_both_texts_of_a_pair():
    from tfbert.config import ModelConfig, TrainConfig
    from tfbert.data import Examples
    from tfbert.training import build_preprocessor_and_backbone

    config = TrainConfig(text_pair_column="b", model=ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32))
    train_set = Examples(texts=["这个手机很好"] * 3, labels=["1"] * 3, pairs=["推荐购买"] * 3)
    preprocessor, _ = build_preprocessor_and_backbone(config, train_set)
    ids = preprocessor(tf.constant(["这个手机很好"]), tf.constant(["推荐购买"]))["token_ids"].numpy()[0]
    unknown = preprocessor.vocabulary.index("[UNK]")
    assert int(ids.sum()) > 0 and unknown not in ids.tolist()
