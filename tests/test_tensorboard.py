"""TensorBoard end to end: train a tiny model, serve its logs with the real `tensorboard`, read them over HTTP.

The HTTP routes are the ones TensorBoard's own frontend calls (`/data/runs`,
`/data/plugin/<plugin>/...`), so what passes here is what a person sees.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tfbert.scripts import train_main
from tests.conftest import TINY_FLAGS, synthetic_rows, write_csv
from tfbert.presets import learning_rate_for
from tfbert.tensorboard import config_hparams
from tfbert.cli import parse_config
from tfbert.config import TrainConfig

RUN = "tiny"
# Not a divisor of the ~13 steps per epoch: epoch summaries must survive Keras' leftover
# record_if (tfbert.callbacks.TensorBoard).
LOG_EVERY = 5
READY_SECONDS = 60  # TensorBoard's start (it imports TensorFlow) plus its first pass over the logs
TRAIN_TAGS = {"batch_loss", "batch_accuracy", "batch_learning_rate", "batch_examples_per_second",
              "epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_examples_per_second"}
VALIDATION_TAGS = {"epoch_loss", "epoch_accuracy", "epoch_auc", "epoch_precision", "epoch_recall", "epoch_f1"}
FINAL_TAGS = {f"final/val_{m}" for m in ("loss", "accuracy", "auc", "precision", "recall", "f1")}
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoardClient:
    """GET/POST JSON against a local TensorBoard, never through a proxy."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str, raw: bool = False, **params):
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with self._opener.open(url, timeout=10) as response:
            body = response.read()
        return body if raw else json.loads(body)

    def post(self, path: str, body: dict):
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with self._opener.open(request, timeout=10) as response:
            return json.loads(response.read())

    def poll(self, fetch, ready, seconds: float = 30):
        """`fetch()` until `ready(result)` or time runs out; returns the last result either way."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                result = fetch()
            except OSError:  # not listening yet
                result = None
            if (result is not None and ready(result)) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tensorboard")
    data = write_csv(tmp / "reviews.csv", synthetic_rows(240, seed=3))
    argv = ["--data", data, "--epochs", "2", "--log-every", str(LOG_EVERY), "--profile-batch", "2,3",
            "--log-dir", str(tmp / "logs"), "--run-name", RUN, "--export-dir", str(tmp / "saved_models"), *TINY_FLAGS]
    assert train_main(argv) == 0
    return tmp / "logs"


@pytest.fixture(scope="module")
def tensorboard(logdir):
    binary = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    port = _free_port()
    log = open(logdir.parent / "tensorboard.log", "w")
    server = subprocess.Popen([binary, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        client = TensorBoardClient(port)
        runs = client.poll(lambda: client.get("/data/runs"),
                           lambda r: {RUN, f"{RUN}/train", f"{RUN}/validation"} <= set(r), READY_SECONDS)
        if server.poll() is not None or runs is None:
            pytest.fail(f"TensorBoard did not come up:\n{(logdir.parent / 'tensorboard.log').read_text()[-3000:]}")
        yield client
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_runs_and_scalars(tensorboard):
    assert {RUN, f"{RUN}/train", f"{RUN}/validation"} <= set(tensorboard.get("/data/runs"))
    tags = tensorboard.poll(lambda: tensorboard.get("/data/plugin/scalars/tags"),
                            lambda t: VALIDATION_TAGS <= set(t.get(f"{RUN}/validation", {})))
    assert TRAIN_TAGS <= set(tags[f"{RUN}/train"])
    assert VALIDATION_TAGS <= set(tags[f"{RUN}/validation"])
    assert FINAL_TAGS <= set(tags[RUN])

    def series(run, tag):
        return tensorboard.get("/data/plugin/scalars/scalars", run=run, tag=tag)  # [[wall_time, step, value]]

    f1 = series(f"{RUN}/validation", "epoch_f1")
    assert [step for _, step, _ in f1] == [0, 1] and all(0 <= v <= 1 for *_, v in f1)
    rate = series(f"{RUN}/train", "batch_learning_rate")
    assert rate and all(step % LOG_EVERY == 0 for _, step, _ in rate)
    assert all(0 <= v <= 5e-3 for *_, v in rate)  # never above the peak (--learning-rate 5e-3)
    assert all(v > 0 for *_, v in series(f"{RUN}/train", "batch_examples_per_second"))


@pytest.mark.slow
def test_hparams_lists_the_run_with_its_config_and_final_metrics(tensorboard):
    experiment = tensorboard.post("/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True})
    assert {"learning_rate", "num_layers", "batch_size", "epochs"} <= {h["name"] for h in experiment["hparamInfos"]}
    assert FINAL_TAGS == {m["name"]["tag"] for m in experiment["metricInfos"]}
    groups = tensorboard.post("/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 10, "allowedStatuses": ALL_STATUSES,
        "includeMetrics": True})["sessionGroups"]
    assert [g["name"] for g in groups] == [RUN]
    hparams = groups[0]["hparams"]
    assert hparams["learning_rate"] == 5e-3 and hparams["num_layers"] == 1 and hparams["bucket_by_length"] is True
    assert "log_dir" not in hparams
    metrics = {m["name"]["tag"]: m["value"] for m in groups[0]["metricValues"]}
    assert set(metrics) == FINAL_TAGS and all(np.isfinite(v) for v in metrics.values())


@pytest.mark.slow
def test_validation_images_are_pngs(tensorboard):
    tags = tensorboard.get("/data/plugin/images/tags")[f"{RUN}/validation"]
    assert {"confusion_matrix", "pr_curve", "roc_curve"} <= set(tags)
    for tag in ("confusion_matrix", "pr_curve", "roc_curve"):
        entries = tensorboard.get("/data/plugin/images/images", run=f"{RUN}/validation", tag=tag, sample=0)
        assert [e["step"] for e in entries] == [0, 1]  # one per epoch
        png = tensorboard.get("/data/plugin/images/individualImage?" + entries[-1]["query"], raw=True)
        assert png.startswith(b"\x89PNG") and len(png) > 5000


@pytest.mark.slow
def test_mistakes_table(tensorboard):
    assert "worst_mistakes" in tensorboard.get("/data/plugin/text/tags")[f"{RUN}/validation"]
    entries = tensorboard.get("/data/plugin/text/text", run=f"{RUN}/validation", tag="worst_mistakes")
    assert [e["step"] for e in entries] == [0, 1]
    html = entries[-1]["text"]
    assert "validation texts misclassified" in html and "<table>" in html
    for header in ("text", "true label", "predicted label", "probability"):
        assert f"<th>{header}</th>" in html


@pytest.mark.slow
def test_graphs_and_profile(tensorboard, logdir):
    info = tensorboard.get("/data/plugin/graphs/info")
    assert info[f"{RUN}/train"]["tags"]["keras"]["conceptual_graph"]  # Keras' layer graph
    assert info[f"{RUN}/validation"]["run_graph"]  # the op graph of the validation forward pass
    profiles = list((logdir / RUN / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert profiles, "--profile-batch 2,3 wrote no profiler trace"






def test_config_hparams_are_flat_and_log_the_rate_trained_with():
    config = TrainConfig(run_name="x", max_train_samples=10, scale_lr=True)
    hparams = {h.name: v for h, v in config_hparams(config, 2 * learning_rate_for(None, None)).items()}
    assert hparams["learning_rate"] == 1e-3 and hparams["num_layers"] == 2 and hparams["max_train_samples"] == 10
    assert "model" not in hparams and "log_dir" not in hparams and "run_name" not in hparams


def test_profile_batch_parses():
    assert parse_config(TrainConfig, ["--profile-batch", "10,20"], "").profile_steps == (10, 20)
    assert TrainConfig().profile_steps is None


def _tags(directory) -> set[str]:
    """Every summary tag in the event files directly in `directory`."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = set()
    for name in os.listdir(directory):
        if name.startswith("events.out.tfevents"):
            for record in tf.data.TFRecordDataset(os.path.join(directory, name)):
                tags |= {value.tag for value in event_pb2.Event.FromString(record.numpy()).summary.value}
    return tags


@pytest.mark.parametrize("name,images,scalars,final", [
    ("multi_label", {"pr_curve"}, {"epoch_micro_f1", "epoch_macro_f1", "epoch_samples_f1", "epoch_subset_accuracy",
                                   "epoch_hamming_loss"}, {"final/val_micro_f1", "final/val_hamming_loss"}),
    ("regression_pairs", {"predicted_vs_true", "residuals"}, {"epoch_rmse", "epoch_mae", "epoch_r2", "epoch_pearson",
                                                              "epoch_spearman"}, {"final/val_rmse", "final/val_r2"}),
])
def test_each_task_writes_its_scalars_images_and_hparams(task_runs, name, images, scalars, final):
    run_dir = task_runs[name].run_dir
    validation = _tags(os.path.join(run_dir, "validation"))
    assert images <= validation and scalars <= validation
    assert "worst_mistakes" not in validation  # a table of misclassified texts is a classification view
    session = _tags(run_dir)
    assert final <= session and "_hparams_/session_start_info" in session


class CountingPasses:
    """A dataset wrapper that counts the passes made over it."""

    def __init__(self, dataset):
        self.dataset, self.passes = dataset, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.dataset)


def test_one_validation_pass_per_epoch_gives_keras_logs(tiny_model, preprocessors):
    """`fit` without validation_data: the summaries' single pass yields val_loss / val_accuracy as Keras computes them."""
    import keras

    from tfbert.pipeline import make_dataset
    from tfbert.tasks import ClassificationTask
    from tfbert.tensorboard import ValidationSet, ValidationSummaries

    task = ClassificationTask(("negative", "positive"))
    rows = synthetic_rows(48, seed=3)
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    targets = task.targets(labels)
    pre = preprocessors[32]
    indexed = make_dataset(pre, texts, np.arange(len(texts)), None, 16, bucket=True)
    counted = CountingPasses(indexed)
    tiny_model.compile(optimizer="adam", loss=task.loss(), metrics=task.training_metrics())
    summaries = ValidationSummaries(counted, ValidationSet(task.truth(labels), targets, texts), task, "", write=False)
    train = make_dataset(pre, texts, targets, None, 16, bucket=False)
    history = tiny_model.fit(train, epochs=2, callbacks=[summaries], verbose=0)
    assert counted.passes == 2  # one pass over the validation set per epoch, no more
    expected = tiny_model.evaluate(make_dataset(pre, texts, targets, None, 16, bucket=False), return_dict=True, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(expected["loss"], rel=1e-4)
    assert history.history["val_accuracy"][-1] == pytest.approx(expected["accuracy"])
    assert {"val_f1", "val_auc", "val_precision", "val_recall"} <= set(history.history)
    keras.backend.clear_session()
