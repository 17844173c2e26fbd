"""TF Serving readiness: signatures as saved_model_cli reports them, portable ops, warmup, REST client."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbert.scripts import predict_main
from tests.tf_serving_standin import StandIn
from tfbert import export as export_lib
from tfbert.export import SERVING_TF_TEXT_OPS, WARMUP_FILE, export_saved_model
from tfbert.serving import LocalModel, RemoteModel
from tfbert.tasks import ClassificationTask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TASK = ClassificationTask(("negative", "positive"))

pytestmark = pytest.mark.slow
TEXTS = ["这个手机很好", "快递太差了，退货", "great", "", "😀" * 3]

















@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_rest_client_against_stand_in(trained, request_format, capsys):
    local = LocalModel(trained.export_path)
    with StandIn({"reviews": {1: trained.export_path}}) as server:
        remote = RemoteModel(server.url, "reviews", request_format=request_format)
        np.testing.assert_allclose(remote.predict(TEXTS, batch_size=2).scores, local.predict(TEXTS).scores, atol=1e-6)
        assert remote.label_names == local.label_names
        sent = server.requests[-1]
        assert sent["signature_name"] == "serving_default"
        assert ("instances" in sent) == (request_format == "row") and ("inputs" in sent) == (request_format == "columnar")
        capsys.readouterr()
        assert predict_main(["--server", server.url, "--model-name", "reviews", "--request-format", request_format, *TEXTS[:3]]) == 0
        remote_out = capsys.readouterr().out
    assert predict_main(["--model", trained.export_path, *TEXTS[:3]]) == 0
    assert capsys.readouterr().out == remote_out


def test_rest_client_errors_are_clear(trained, capsys):
    with StandIn({"reviews": {1: trained.export_path}}) as server:
        assert predict_main(["--server", server.url, "--model-name", "nope", "x"]) == 2
        assert "TF Serving answered 404" in capsys.readouterr().err
        url = server.url
    assert predict_main(["--server", url, "--model-name", "reviews", "x"]) == 2
    assert "Cannot reach TF Serving" in capsys.readouterr().err








@pytest.mark.parametrize("name", ["multi_label", "regression_pairs"])
@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_rest_and_grpc_clients_print_what_the_local_model_prints(task_runs, name, request_format, capsys):
    """predict.py --server (REST), serving/grpc_client.py's records and predict.py --model: the same lines."""
    import importlib.util

    path = task_runs[name].export_path
    inputs = ["很好价格\t书", "差快递\t书"] if name.endswith("pairs") else ["很好价格", "差快递"]
    assert predict_main(["--model", path, *inputs]) == 0
    local = capsys.readouterr().out
    with StandIn({name: {1: path}}) as server:
        assert predict_main(["--server", server.url, "--model-name", name, "--request-format", request_format,
                             *inputs]) == 0
        assert capsys.readouterr().out == local
    spec = importlib.util.spec_from_file_location("grpc_client", os.path.join(ROOT, "serving", "grpc_client.py"))
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    from tfbert.serving import predict_request

    texts = [t.split("\t")[0] for t in inputs]
    request = predict_request(name, [tuple(t.split("\t")) for t in inputs] if name.endswith("pairs") else texts)
    out = tf.saved_model.load(path).signatures["serving_default"](
        **{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    protos = {k: tf.make_tensor_proto(v.numpy()) for k, v in out.items()}
    grpc_lines = [json.dumps(r, ensure_ascii=False) for r in client.records(texts, protos)]
    local_lines = [json.loads(line) for line in local.splitlines()]
    for line, expected in zip(grpc_lines, local_lines):
        expected.pop("text_pair", None)
        assert json.loads(line) == expected
