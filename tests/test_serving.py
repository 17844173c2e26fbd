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

TASK = ClassificationTask(("negative", "positive"))

pytestmark = pytest.mark.slow
TEXTS = ["这个手机很好", "快递太差了，退货", "great", "", "😀" * 3]

















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






