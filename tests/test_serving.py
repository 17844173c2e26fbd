"""TF Serving readiness: signatures as saved_model_cli reports them, portable ops, warmup, REST client."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import predict
from tests.tf_serving_standin import StandIn
from tfbert import export as export_lib
from tfbert.export import SERVING_TF_TEXT_OPS, WARMUP_FILE, export_saved_model
from tfbert.serving import LocalModel, RemoteModel

pytestmark = pytest.mark.slow
TEXTS = ["这个手机很好", "快递太差了，退货", "great", "", "😀" * 3]

LIST_OPS = r"""
import json, sys
import tensorflow as tf  # deliberately no tensorflow_text: its ops must show up as non-core
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
sm = saved_model_pb2.SavedModel()
sm.ParseFromString(open(sys.argv[1] + "/saved_model.pb", "rb").read())
ops, functions = set(), set()
for graph in sm.meta_graphs:
    ops |= {n.op for n in graph.graph_def.node}
    for f in graph.graph_def.library.function:
        functions.add(f.signature.name)
        ops |= {n.op for n in f.node_def}
print(json.dumps(sorted(op for op in ops - functions if op_def_registry.get(op) is None)))
"""


def _saved_model_cli_show(path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True, check=True).stdout
    signatures = {}
    for block in re.split(r"\nsignature_def\['", out)[1:]:
        name = block.split("'", 1)[0]
        entries = re.findall(r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", block)
        signatures[name] = {f"{kind}:{key}": (dtype, shape) for kind, key, dtype, shape in entries}
    return signatures


def test_signatures_as_saved_model_cli_shows_them(trained):
    signatures = _saved_model_cli_show(trained.export_path)
    outputs = {
        "outputs:probabilities": ("DT_FLOAT", "(-1, 2)"),
        "outputs:label": ("DT_STRING", "(-1)"),
        "outputs:label_names": ("DT_STRING", "(-1, 2)"),
    }
    assert signatures["serving_default"] == {"inputs:text": ("DT_STRING", "(-1)"), **outputs}
    assert signatures["serve_token_ids"] == {
        "inputs:token_ids": ("DT_INT32", "(-1, -1)"),
        "inputs:segment_ids": ("DT_INT32", "(-1, -1)"),
        "inputs:padding_mask": ("DT_INT32", "(-1, -1)"),
        **outputs,
    }


def _non_core_ops(path):
    out = subprocess.run([sys.executable, "-c", LIST_OPS, path], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_only_ops_tf_serving_links(trained):
    non_core = _non_core_ops(trained.export_path)
    assert non_core, "tokenization should be inside the graph"
    assert non_core <= SERVING_TF_TEXT_OPS, f"ops TF Serving may not link: {sorted(non_core - SERVING_TF_TEXT_OPS)}"


def test_warmup_requests_run_against_the_signature(trained):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(trained.export_path, "assets.extra", WARMUP_FILE)
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
    assert [len(tf.make_ndarray(r.predict_log.request.inputs["text"])) for r in records] == [1, 8]
    serve = tf.saved_model.load(trained.export_path).signatures["serving_default"]
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.signature_name == "serving_default" and request.model_spec.name == "reviews"
        out = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        assert out["probabilities"].shape[0] == len(tf.make_ndarray(request.inputs["text"]))


def test_failed_export_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    class HalfWritten:
        def write_out(self, path, **kwargs):
            os.makedirs(os.path.join(path, "variables"))
            open(os.path.join(path, "saved_model.pb"), "wb").write(b"half")
            raise OSError("disk full")

    monkeypatch.setattr(export_lib, "build_archive", lambda *args: HalfWritten())
    base = tmp_path / "m"
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(trained.model, trained.preprocessor, trained.label_names, str(base))
    assert os.listdir(base) == []  # no version dir, no temporary dir


def test_version_appears_in_one_rename(trained, tmp_path, monkeypatch):
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(export_lib.os, "rename", lambda a, b: (renames.append((a, b)), real_rename(a, b)))
    path = export_saved_model(trained.model, trained.preprocessor, trained.label_names, str(tmp_path / "m"))
    [(source, target)] = renames
    assert target == path and os.path.basename(source).startswith(".tmp-")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))


@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_rest_client_against_stand_in(trained, request_format, capsys):
    local = LocalModel(trained.export_path)
    with StandIn({"reviews": {1: trained.export_path}}) as server:
        remote = RemoteModel(server.url, "reviews", request_format=request_format)
        np.testing.assert_allclose(remote.predict(TEXTS, batch_size=2), local.predict(TEXTS), atol=1e-6)
        assert remote.label_names == local.label_names
        sent = server.requests[-1]
        assert sent["signature_name"] == "serving_default"
        assert ("instances" in sent) == (request_format == "row") and ("inputs" in sent) == (request_format == "columnar")
        capsys.readouterr()
        assert predict.main(["--server", server.url, "--model-name", "reviews", "--request-format", request_format, *TEXTS[:3]]) == 0
        remote_out = capsys.readouterr().out
    assert predict.main(["--model", trained.export_path, *TEXTS[:3]]) == 0
    assert capsys.readouterr().out == remote_out


def test_rest_client_errors_are_clear(trained, capsys):
    with StandIn({"reviews": {1: trained.export_path}}) as server:
        assert predict.main(["--server", server.url, "--model-name", "nope", "x"]) == 2
        assert "TF Serving answered 404" in capsys.readouterr().err
        url = server.url
    assert predict.main(["--server", url, "--model-name", "reviews", "x"]) == 2
    assert "Cannot reach TF Serving" in capsys.readouterr().err


def _weight_casts_in_loops(graph_def) -> int:
    """Casts of a variable's value inside while-loop bodies (the serving chunk loop)."""
    count = 0
    for function in graph_def.library.function:
        if "while_body" not in function.signature.name:
            continue
        reads = {n.name for n in function.node_def if n.op == "ReadVariableOp"}
        count += sum(n.op == "Cast" and n.input[0].split(":")[0] in reads for n in function.node_def)
    return count


def test_mixed_precision_export_casts_each_weight_once(tiny_tokenizer, tmp_path):
    import keras

    from tests.conftest import TINY_VOCAB, synthetic_rows
    from tfbert.config import ModelConfig
    from tfbert.model import build_backbone, build_classifier
    from tfbert.preprocessing import TextPreprocessor

    def classifier():
        keras.utils.set_random_seed(1)
        return build_classifier(build_backbone(ModelConfig(num_layers=2, hidden_dim=16, num_heads=2,
                                                           intermediate_dim=32), len(TINY_VOCAB), 32), 2)

    assert export_lib.half_precision_copies(classifier()) == []  # float32: nothing to copy, export unchanged
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = classifier()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    pre = TextPreprocessor(tiny_tokenizer, 32)
    copies = export_lib.half_precision_copies(model)
    copied = {id(weight) for weight, _ in copies}
    # Kernels, biases and embeddings the bf16 layers autocast; never LayerNorm's float32 gamma/beta or the float32 head.
    assert all(copy.dtype == tf.bfloat16 for _, copy in copies)
    assert any("kernel" in weight.path for weight, _ in copies)
    assert not any("layer_norm" in weight.path for weight, _ in copies)
    assert not copied & {id(w) for w in model.get_layer("probability").weights}
    for weight, copy in copies:
        np.testing.assert_array_equal(copy.numpy(), tf.cast(weight.value, tf.bfloat16).numpy())

    texts = tf.constant([row["text"] for row in synthetic_rows(40, seed=5)] + TEXTS)
    labels = tf.constant(["negative", "positive"])
    per_read = tf.function(lambda t: export_lib._outputs(model, pre(t), labels))  # Keras' cast at every read
    reference = per_read(t=texts)["probabilities"].numpy()
    assert _weight_casts_in_loops(per_read.get_concrete_function(texts).graph.as_graph_def()) > 0

    path = export_saved_model(model, pre, ["negative", "positive"], str(tmp_path / "sm"))
    signatures = tf.saved_model.load(path).signatures
    # Same values, cast once at export instead of once per chunk: bit-identical outputs, no casts left in the loop.
    np.testing.assert_array_equal(signatures["serving_default"](text=texts)["probabilities"].numpy(), reference)
    np.testing.assert_array_equal(signatures["serve_token_ids"](**pre(texts))["probabilities"].numpy(), reference)
    for name in ("serving_default", "serve_token_ids"):
        assert _weight_casts_in_loops(signatures[name].graph.as_graph_def()) == 0, name


def test_head_tail_truncation_is_exported(tiny_tokenizer, tmp_path):
    # The export must cut overlong raw texts exactly as training did, with ops TF Serving links.
    import keras

    from tests.conftest import TINY_VOCAB
    from tfbert.config import ModelConfig
    from tfbert.model import build_backbone, build_classifier
    from tfbert.preprocessing import TextPreprocessor

    keras.utils.set_random_seed(1)
    model = build_classifier(build_backbone(ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32),
                                            len(TINY_VOCAB), 8), 2)
    head_tail = TextPreprocessor(tiny_tokenizer, 8, truncation="head_tail")
    texts = tf.constant(["这个手机很好推荐，质量不错", "太差了", "快递很慢，但是手机很好"])
    path = export_saved_model(model, head_tail, ["negative", "positive"], str(tmp_path / "sm"))
    serving = tf.saved_model.load(path).signatures
    from_text = serving["serving_default"](text=texts)["probabilities"].numpy()
    np.testing.assert_allclose(from_text, serving["serve_token_ids"](**head_tail(texts))["probabilities"].numpy(),
                               rtol=1e-6)
    head_only = serving["serve_token_ids"](**TextPreprocessor(tiny_tokenizer, 8)(texts))["probabilities"].numpy()
    assert not np.allclose(from_text[[0, 2]], head_only[[0, 2]])  # the long texts: a different cut, other outputs
    np.testing.assert_allclose(from_text[1], head_only[1], rtol=1e-6)  # the short one: unchanged
    assert _non_core_ops(path) <= SERVING_TF_TEXT_OPS
