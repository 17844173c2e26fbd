"""Scaling out on a CPU-only machine: 2 mirrored replicas, 2 workers, TPU wiring, mixed precision, resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs train.py's main in a fresh process and records the trained weights:
# logical devices must be configured before TensorFlow starts, and each worker
# of a cluster is its own process.
RUNNER = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
replicas = int(os.environ.get("LOGICAL_CPUS", "1"))
if replicas > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
from tfbert.scripts import train_main
from tfbert import training
real_train = training.train
def spy(config):
    result = real_train(config)
    np.save(os.environ["WEIGHTS_OUT"], np.concatenate([w.ravel() for w in result.model.get_weights()]))
    json.dump(result.metrics["loss"], open(os.environ["WEIGHTS_OUT"] + ".loss.json", "w"))
    return result
training.train = spy
sys.exit(train_main(sys.argv[1:]))
"""


def _run(argv, env_extra, timeout=240, **popen):
    env = {**os.environ, "PYTHONPATH": ROOT, **env_extra}
    return subprocess.Popen([sys.executable, "-c", RUNNER, *argv], env=env, cwd=ROOT, **popen)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("dist") / "reviews.csv", synthetic_rows(240))


def _argv(csv, out, *extra):
    # dropout 0 and no bucketing: the runs being compared then see identical, full batches.
    return ["--data", csv, "--export-dir", str(out / "sm"), "--log-dir", str(out / "logs"), "--run-name", "r",
            *TINY_FLAGS, "--dropout", "0", "--no-bucket-by-length", "--max-train-samples", "128", *extra]


def test_mirrored_two_replicas_match_one(small_csv, tmp_path):
    """2 replicas x 8 == 1 replica x 16, up to float summation order."""
    results = {}
    for name, strategy in (("one", "default"), ("two", "mirrored")):
        out = tmp_path / name
        proc = _run(_argv(small_csv, out, "--strategy", strategy, "--epochs", "2"),
                    {"LOGICAL_CPUS": "2", "WEIGHTS_OUT": str(out) + ".npy"}, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        summary = json.load(open(out / "logs" / "r" / "run_summary.json"))
        results[name] = (np.load(str(out) + ".npy"), summary["history"]["loss"], err)
    assert "strategy MirroredStrategy, 2 replica(s)" in results["two"][2]
    one, two = results["one"], results["two"]
    assert two[1][-1] < two[1][0]  # loss falls
    # Same data, seed and global batch: the gradient of the mean over 16 equals the
    # mean of two 8-example means; only all-reduce summation order differs (~1e-7
    # per step), amplified a little by Adam over 16 steps.
    np.testing.assert_allclose(two[1], one[1], rtol=1e-3)
    np.testing.assert_allclose(two[0], one[0], atol=2e-3)


def test_two_workers_train_in_lockstep(small_csv, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        out = tmp_path / f"w{index}"
        procs.append(_run(_argv(small_csv, tmp_path, "--strategy", "multiworker", "--epochs", "3"),
                          {"TF_CONFIG": tf_config, "WEIGHTS_OUT": str(out) + ".npy"},
                          stderr=subprocess.PIPE, text=True))
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        errors.append(err)
        assert proc.returncode == 0, err[-3000:]
    w0, w1 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")
    np.testing.assert_array_equal(w0, w1)
    summary = json.load(open(tmp_path / "logs" / "r" / "run_summary.json"))  # the chief's
    losses = summary["history"]["loss"]
    assert losses[-1] < losses[0]
    assert "2 worker(s)" in errors[0]
    assert sorted(os.listdir(tmp_path / "sm" / "reviews")) == ["1"]  # only the chief exported


def test_tpu_wiring(monkeypatch):
    import tensorflow as tf

    from tfbert.distribute import get_strategy

    seen = {}

    class Resolver:
        def __init__(self, tpu):
            seen["tpu"] = tpu

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Resolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda r: seen.setdefault("connected", r))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda r: seen.setdefault("initialized", r))

    class Strategy:
        num_replicas_in_sync = 8

        def __init__(self, resolver):
            seen["strategy"] = resolver

    monkeypatch.setattr(tf.distribute, "TPUStrategy", Strategy)
    strategy = get_strategy("tpu", tpu="grpc://10.0.0.2:8470")
    assert isinstance(strategy, Strategy)
    assert seen["tpu"] == "grpc://10.0.0.2:8470"
    assert seen["connected"] is seen["initialized"] is seen["strategy"]




def test_mixed_precision_exports_float32(small_csv, tmp_path):
    import keras
    import tensorflow as tf

    from tfbert.cli import parse_config
    from tfbert.config import TrainConfig
    from tfbert.training import train

    config = parse_config(TrainConfig, _argv(small_csv, tmp_path, "--mixed-precision", "--epochs", "1"), "")
    try:
        result = train(config)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert result.model.get_layer("probability").dtype_policy.name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    out = tf.saved_model.load(result.export_path).signatures["serving_default"](text=tf.constant(["很好"]))
    assert out["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(out["probabilities"].numpy().sum(), 1.0, atol=1e-5)


def test_sigkill_then_same_command_resumes(tmp_path):
    csv = write_csv(tmp_path / "reviews.csv", synthetic_rows(2400, seed=3))
    argv = ["--data", csv, "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs"),
            *TINY_FLAGS, "--epochs", "6", "--early-stopping-patience", "0"]
    env = {"WEIGHTS_OUT": str(tmp_path / "w.npy")}
    proc = _run(argv, env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    metadata = None
    while time.time() < deadline and proc.poll() is None:
        found = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "logs") for f in fs if f == "training_metadata.json"]
        if found and json.load(open(found[0]))["epoch"] >= 2:
            metadata = found[0]
            break
        time.sleep(0.05)
    assert metadata, "no backup appeared before the run ended"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = os.path.dirname(os.path.dirname(metadata))
    assert not os.path.exists(tmp_path / "sm")  # killed before exporting

    proc = _run(argv, env, stderr=subprocess.PIPE, text=True)  # the very same command
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert f"Resuming the unfinished run {os.path.basename(run_dir)}" in err
    summary = json.load(open(os.path.join(run_dir, "run_summary.json")))
    assert summary["epochs_run"][0] >= 2  # did not start from scratch
    assert summary["optimizer_steps"] == 6 * summary["steps_per_epoch"]  # as many steps as an uninterrupted run
    assert not os.path.exists(os.path.dirname(metadata))  # backup removed once training finished


def test_cpu_flags_reads_the_x86_flags_line(tmp_path):
    from tfbert.distribute import cpu_flags

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(str(x86)) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpu_flags(str(arm)) is None and cpu_flags(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("flags, warns", [({"avx512f", "avx512_vnni"}, True), ({"avx512f", "avx512_bf16"}, False),
                                          ({"amx_bf16"}, False), (None, False)])
def test_mixed_precision_warns_on_a_cpu_that_emulates_bf16(monkeypatch, caplog, flags, warns):
    import keras

    from tfbert import distribute

    monkeypatch.setattr(distribute, "cpu_flags", lambda: flags)
    try:
        assert distribute.set_precision(True) == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert ("no native bfloat16" in caplog.text) == warns
    caplog.clear()
    distribute.set_precision(False)
    assert "no native bfloat16" not in caplog.text


@pytest.mark.parametrize("flags, pays", [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True),
                                         ({"avx512f", "avx512_vnni"}, False), (None, False)])
def test_mixed_precision_pays_only_where_bf16_is_native(monkeypatch, flags, pays):
    """What bench/bench.py --precision auto picks: emulated or unknown bf16 keeps float32 (this suite has no GPU)."""
    from tfbert import distribute

    monkeypatch.setattr(distribute, "cpu_flags", lambda: flags)
    assert distribute.native_bfloat16_cpu() == (None if flags is None else pays)
    assert distribute.mixed_precision_pays() == pays










