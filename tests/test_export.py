"""The SavedModel export: signatures, portable ops, warmup records, atomic versions, the serving boundary."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import CHARS
from tfbert import export as export_lib
from tfbert.export import SERVING_TF_TEXT_OPS, WARMUP_FILE, export_saved_model
from tfbert.tasks import ClassificationTask

TASK = ClassificationTask(("negative", "positive"))
TEXTS = ["这个手机很好", "快递太差了，退货", "great", "", "我们的酒店服务质量价格" * 20, "😀" * 3]

@settings(max_examples=10, deadline=None)
@given(texts=st.lists(st.text(alphabet=CHARS, min_size=0, max_size=120), min_size=1, max_size=20),
       chunk_size=st.sampled_from([None, 1, 3, 8, 16]))
def test_length_sorted_chunks_give_the_padded_batch_outputs_in_order(tiny_model, preprocessors, texts, chunk_size):
    """The serving graph's length-sorted, per-chunk trimmed run equals one call on the padded batch, row for row."""
    from tfbert.export import run_by_length, serving_chunk

    assert serving_chunk(tiny_model) == 8  # float32 default (tfbert.export.SERVING_CHUNK)
    features = preprocessors[128](tf.constant(texts))
    whole = np.asarray(tiny_model(features, training=False))
    chunked = tf.function(lambda f: run_by_length(tiny_model, f, chunk_size))(features).numpy()
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_serving_boundary_takes_any_bytes(served, batch):
    out = served(text=tf.constant(batch, tf.string))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(batch), 2) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_serving_boundary_edge_cases(served):
    cases = {
        "empty": [""],
        "huge": ["好" * 100_000],
        "invalid utf-8": [b"\xff\xfe\xc3(", b"ok\x80"],
        "emoji": ["😀👍🏽🎉"],
        "batch of 1000": ["这个手机很好"] * 1000,
        "empty batch": [],
    }
    for name, batch in cases.items():
        probs = served(text=tf.constant(batch, tf.string, shape=[len(batch)]))["probabilities"].numpy()
        assert probs.shape == (len(batch), 2) and np.isfinite(probs).all(), name
    # Invalid bytes are dropped the way U+FFFD is: "ok\x80" answers like "ok".
    a = served(text=tf.constant([b"ok\x80"]))["probabilities"].numpy()
    b = served(text=tf.constant(["ok"]))["probabilities"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.fixture(scope="module")
def served(trained):
    return tf.saved_model.load(trained.export_path).signatures["serving_default"]


def test_versions_count_up_and_never_overwrite(trained, tmp_path):
    base = str(tmp_path / "m")
    first = export_saved_model(trained.model, trained.task, base, extra_files={"labels.txt": "a\nb\n"})
    second = export_saved_model(trained.model, trained.task, base)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    with pytest.raises(ValueError, match="already exists and is never overwritten"):
        export_saved_model(trained.model, trained.task, base, version=1)
    assert sorted(os.listdir(base)) == ["1", "2"]


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


def test_an_export_of_the_reloaded_best_checkpoint_answers_the_same(trained, tmp_path):
    """best.keras carries its preprocessor: exported from the file alone, it serves what train.py exported."""
    import keras

    from tfbert.model import load_classifier

    model = load_classifier(os.path.join(trained.run_dir, "checkpoints", "best.keras"))
    path = export_saved_model(model, trained.task, str(tmp_path / "m"))
    out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(TEXTS))
    expected = tf.saved_model.load(trained.export_path).signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected["probabilities"].numpy(), atol=1e-6)


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
        export_saved_model(trained.model, trained.task, str(base))
    assert os.listdir(base) == []  # no version dir, no temporary dir


def test_version_appears_in_one_rename(trained, tmp_path, monkeypatch):
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(export_lib.os, "rename", lambda a, b: (renames.append((a, b)), real_rename(a, b)))
    path = export_saved_model(trained.model, trained.task, str(tmp_path / "m"))
    [(source, target)] = renames
    assert target == path and os.path.basename(source).startswith(f".export.tmp-{os.getpid()}-")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))


def _weight_casts_in_loops(graph_def) -> int:
    """Casts of a variable's value inside while-loop bodies (the serving chunk loop)."""
    count = 0
    for function in graph_def.library.function:
        if "while_body" not in function.signature.name:
            continue
        reads = {n.name for n in function.node_def if n.op == "ReadVariableOp"}
        count += sum(n.op == "Cast" and n.input[0].split(":")[0] in reads for n in function.node_def)
    return count


def test_mixed_precision_export_casts_each_weight_once(tiny_tokenizer, tmp_path, monkeypatch):
    import keras

    from tests.conftest import TINY_VOCAB, synthetic_rows
    from tfbert.config import ModelConfig
    from tfbert.keras_compat import half_precision_copies, use_fast_layers
    from tfbert.model import build_backbone, build_classifier
    from tfbert.preprocessor import TextPreprocessor

    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, 32)

    def classifier():
        keras.utils.set_random_seed(1)
        return use_fast_layers(build_classifier(build_backbone(ModelConfig(num_layers=2, hidden_dim=16, num_heads=2,
                                                                           intermediate_dim=32), len(TINY_VOCAB), 32),
                                                1, "sigmoid", preprocessor=pre))

    assert half_precision_copies(classifier()) == []  # float32: nothing to copy, export unchanged
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = classifier()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    copies = half_precision_copies(model)
    copied = {id(weight) for weight, _ in copies}
    # Kernels, biases and embeddings the bf16 layers autocast; never LayerNorm's float32 gamma/beta or the float32 head.
    assert all(copy.dtype == tf.bfloat16 for _, copy in copies)
    assert any("kernel" in weight.path for weight, _ in copies)
    assert not any("layer_norm" in weight.path for weight, _ in copies)
    assert not copied & {id(w) for w in model.get_layer("probability").weights}
    for weight, copy in copies:
        np.testing.assert_array_equal(copy.numpy(), tf.cast(weight.value, tf.bfloat16).numpy())

    texts = tf.constant([row["text"] for row in synthetic_rows(40, seed=5)] + TEXTS)
    per_read = tf.function(lambda t: export_lib._outputs(model, TASK, pre(t)))  # Keras' cast at every read
    reference = per_read(t=texts)["probabilities"].numpy()
    assert _weight_casts_in_loops(per_read.get_concrete_function(texts).graph.as_graph_def()) > 0

    # Too big to freeze: the export reads the copies, cast once at export instead of once per chunk:
    # bit-identical outputs, no casts left in the loop.
    monkeypatch.setattr(export_lib, "FROZEN_WEIGHTS_LIMIT", 0)
    signatures = tf.saved_model.load(export_saved_model(model, TASK, str(tmp_path / "sm"))).signatures
    np.testing.assert_array_equal(signatures["serving_default"](text=texts)["probabilities"].numpy(), reference)
    np.testing.assert_array_equal(signatures["serve_token_ids"](**pre(texts))["probabilities"].numpy(), reference)
    for name in ("serving_default", "serve_token_ids"):
        assert _weight_casts_in_loops(signatures[name].graph.as_graph_def()) == 0, name

    # Frozen (the default): the 16-bit weights are constants, read by no op; the same model to bf16 rounding.
    monkeypatch.undo()
    path = export_saved_model(model, TASK, str(tmp_path / "frozen"))
    signatures = tf.saved_model.load(path).signatures
    np.testing.assert_allclose(signatures["serving_default"](text=texts)["probabilities"].numpy(), reference, atol=2e-3)
    np.testing.assert_allclose(signatures["serve_token_ids"](**pre(texts))["probabilities"].numpy(), reference,
                               atol=2e-3)
    for name in ("serving_default", "serve_token_ids"):
        graph = signatures[name].graph.as_graph_def()
        assert not [n for f in graph.library.function for n in f.node_def if n.op == "ReadVariableOp"], name
    def stored(export):
        return set(tf.train.load_checkpoint(os.path.join(export, "variables", "variables")).get_variable_to_dtype_map().values())

    assert tf.bfloat16 in stored(str(tmp_path / "sm" / "1")) and tf.bfloat16 not in stored(path)  # not stored twice


def test_head_tail_truncation_is_exported(tiny_tokenizer, tmp_path):
    # The export must cut overlong raw texts exactly as training did, with ops TF Serving links.
    import keras

    from tests.conftest import TINY_VOCAB
    from tfbert.config import ModelConfig
    from tfbert.model import build_backbone, build_classifier
    from tfbert.preprocessor import TextPreprocessor

    keras.utils.set_random_seed(1)
    head_tail = TextPreprocessor.from_tokenizer(tiny_tokenizer, 8, truncation="head_tail")
    model = build_classifier(build_backbone(ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32),
                                            len(TINY_VOCAB), 8), 1, "sigmoid", preprocessor=head_tail)
    texts = tf.constant(["这个手机很好推荐，质量不错", "太差了", "快递很慢，但是手机很好"])
    path = export_saved_model(model, TASK, str(tmp_path / "sm"))
    serving = tf.saved_model.load(path).signatures
    from_text = serving["serving_default"](text=texts)["probabilities"].numpy()
    np.testing.assert_allclose(from_text, serving["serve_token_ids"](**head_tail(texts))["probabilities"].numpy(),
                               rtol=1e-6)
    head_only = serving["serve_token_ids"](**TextPreprocessor.from_tokenizer(tiny_tokenizer, 8)(texts))["probabilities"].numpy()
    assert not np.allclose(from_text[[0, 2]], head_only[[0, 2]])  # the long texts: a different cut, other outputs
    np.testing.assert_allclose(from_text[1], head_only[1], rtol=1e-6)  # the short one: unchanged
    assert _non_core_ops(path) <= SERVING_TF_TEXT_OPS


TASK_OUTPUTS = {
    "multi_label": {"outputs:probabilities": ("DT_FLOAT", "(-1, 4)"), "outputs:labels": ("DT_BOOL", "(-1, 4)"),
                    "outputs:label_names": ("DT_STRING", "(-1, 4)")},
    "regression_pairs": {"outputs:prediction": ("DT_FLOAT", "(-1)")},
}


@pytest.mark.parametrize("name", sorted(TASK_OUTPUTS))
def test_every_task_has_both_signatures_portable_ops_and_warmup(task_runs, name):
    from tensorflow_serving.apis import prediction_log_pb2

    path = task_runs[name].export_path
    signatures = _saved_model_cli_show(path)
    pair = {"inputs:text_pair": ("DT_STRING", "(-1)")} if name.endswith("pairs") else {}
    assert signatures["serving_default"] == {"inputs:text": ("DT_STRING", "(-1)"), **pair, **TASK_OUTPUTS[name]}
    assert set(signatures["serve_token_ids"]) - set(TASK_OUTPUTS[name]) == {
        "inputs:token_ids", "inputs:segment_ids", "inputs:padding_mask"}
    assert _non_core_ops(path) <= SERVING_TF_TEXT_OPS
    warmup = os.path.join(path, "assets.extra", WARMUP_FILE)
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert len(records) == 2
    for record in records:
        out = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in record.predict_log.request.inputs.items()})
        assert next(iter(out.values())).shape[0] == len(tf.make_ndarray(record.predict_log.request.inputs["text"]))


# Exports trained.run_dir's best checkpoint to a base directory in a fresh process (killed or limited by the tests).
EXPORTER = r"""
import resource, sys
from tfbert.export import export_saved_model
from tfbert.model import load_classifier
from tfbert.tasks import ClassificationTask
model = load_classifier(sys.argv[1])
limit = int(sys.argv[3])
if limit:  # after loading: reading a .keras file unpacks it to temporary files
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
extra = {"labels.txt": "negative\npositive\n"}
try:
    print(export_saved_model(model, ClassificationTask(("negative", "positive")), sys.argv[2], extra_files=extra),
          flush=True)
except ValueError as error:
    print("error:", error, file=sys.stderr)
    sys.exit(2)
"""


def _exporter(trained, base, limit=0, **popen):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkpoint = os.path.join(trained.run_dir, "checkpoints", "best.keras")
    return subprocess.Popen([sys.executable, "-c", EXPORTER, checkpoint, str(base), str(limit)], cwd=root,
                            env={**os.environ, "PYTHONPATH": root}, **popen)


def _servable(base) -> list[str]:
    """The version directories TF Serving would load, each checked complete."""
    versions = sorted(name for name in os.listdir(base) if name.isdigit())
    for name in versions:
        assert os.path.isfile(os.path.join(base, name, "saved_model.pb")), name
        assert os.path.isfile(os.path.join(base, name, "assets.extra", "labels.txt")), name
    return versions


@pytest.mark.slow
def test_sigkill_mid_export_leaves_the_base_servable_and_the_next_export_cleans_up(trained, tmp_path):
    import shutil
    import signal
    import time

    base = tmp_path / "m"
    shutil.copytree(trained.export_path, base / "1")
    leftovers = 0
    for delay in (4.0, 6.0, 8.0):  # TF's import alone takes seconds: these land in loading, tracing, writing
        proc = _exporter(trained, base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert "1" in _servable(base)  # every visible version is complete, whenever the kill came
        leftovers += len([n for n in os.listdir(base) if n.startswith(".")])
    path = export_saved_model(trained.model, trained.task, str(base), extra_files={"labels.txt": "negative\npositive\n"})
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert not [n for n in os.listdir(base) if n.startswith(".")]  # the killed exports' leftovers are gone
    _servable(base)


@pytest.mark.slow
def test_a_full_disk_during_an_export_is_clear_and_keeps_earlier_versions(trained, tmp_path):
    import shutil

    base = tmp_path / "m"
    shutil.copytree(trained.export_path, base / "1")
    proc = _exporter(trained, base, limit=20_000, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, err[-2000:]
    assert "stopped: File too large" in err and "earlier versions are intact" in err, err[-2000:]
    assert os.listdir(base) == ["1"] and _servable(base) == ["1"]


@pytest.mark.slow
def test_two_exports_at_once_get_two_complete_versions(trained, tmp_path):
    base = tmp_path / "m"
    procs = [_exporter(trained, base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    paths = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        paths.append(out.strip().splitlines()[-1])
    assert sorted(os.path.basename(p) for p in paths) == ["1", "2"] and _servable(base) == ["1", "2"]


def test_a_version_taken_while_writing_moves_to_the_next(trained, tmp_path, monkeypatch):
    """Two writers that picked the same next version: the second rename fails and takes the next free one."""
    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_text("the other export's")
    answers = iter([1, 2])
    monkeypatch.setattr(export_lib, "next_version", lambda base_dir: next(answers))
    path = export_saved_model(trained.model, trained.task, str(base))
    assert path.endswith(os.path.join("m", "2")) and (base / "1" / "saved_model.pb").read_text() == "the other export's"


def test_stale_staging_directories_of_dead_processes_only_are_removed(tmp_path):
    from tfbert import atomic

    dead = tmp_path / ".export.tmp-999999999-abc"
    alive = tmp_path / f".export.tmp-{os.getpid()}-def"
    dead.mkdir()
    alive.mkdir()
    (tmp_path / "1").mkdir()
    assert atomic.remove_stale(str(tmp_path)) == [dead.name]
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, "1"])
