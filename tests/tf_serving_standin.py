"""A stand-in for TF Serving's REST API on 127.0.0.1, answering from a loaded SavedModel.

TF Serving's server binary is not on PyPI or Debian, so the REST client is
tested against this: the same URLs and the same JSON request/response
shapes as https://www.tensorflow.org/tfx/serving/api_rest (predict: row
"instances" -> "predictions", columnar "inputs" -> "outputs"; metadata).
Test infrastructure only: loopback, stopped by its user; single-threaded
unless asked (`threaded=True`, for the load test).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401

URL = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<verb>:predict|/metadata)$")


def _jsonable(value: np.ndarray):
    if value.dtype.kind in ("S", "O"):
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value).tolist() if value.size else value.tolist()
    return value.tolist()


class StandIn:
    """Serve `{name: {version: saved_model_dir}}` on a free loopback port."""

    def __init__(self, models: dict[str, dict[int, str]], threaded: bool = False):
        self.loaded = {name: {v: tf.saved_model.load(path) for v, path in versions.items()} for name, versions in models.items()}
        self.requests: list[dict] = []
        # threaded: one thread per connection, as TF Serving answers concurrent clients (bench/load_test.py).
        self.server = (ThreadingHTTPServer if threaded else HTTPServer)(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _model(self, name, version):
        versions = self.loaded[name]
        return versions[int(version) if version else max(versions)]

    def _metadata(self, model):
        sigs = {}
        for key, fn in model.signatures.items():
            inputs = {n: {"dtype": "DT_" + spec.dtype.name.upper(), "name": n} for n, spec in fn.structured_input_signature[1].items()}
            outputs = {n: {"dtype": "DT_" + spec.dtype.name.upper(), "name": n} for n, spec in fn.structured_outputs.items()}
            sigs[key] = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
        return {"metadata": {"signature_def": {"signature_def": sigs}}}

    def _predict(self, model, body):
        fn = model.signatures[body.get("signature_name", "serving_default")]
        names = list(fn.structured_input_signature[1])
        if "instances" in body:
            rows = body["instances"]
            columns = {n: [r[n] if isinstance(r, dict) else r for r in rows] for n in names}
        else:
            inputs = body["inputs"]
            columns = inputs if isinstance(inputs, dict) else {names[0]: inputs}
        dtypes = {n: spec.dtype for n, spec in fn.structured_input_signature[1].items()}
        out = fn(**{n: tf.constant(v, dtypes[n]) for n, v in columns.items()})
        out = {k: _jsonable(v.numpy()) for k, v in out.items()}
        if len(out) == 1:  # TF Serving answers a single output bare, without its name
            (value,) = out.values()
            return {"predictions": value} if "instances" in body else {"outputs": value}
        if "instances" in body:
            return {"predictions": [dict(zip(out, values)) for values in zip(*out.values())]}
        return {"outputs": out}

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code, payload):
                data = json.dumps(payload).encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, body=None):
                match = URL.match(self.path)
                if not match or match["name"] not in standin.loaded:
                    return self._answer(404, {"error": f"Servable not found for request: {self.path}"})
                model = standin._model(match["name"], match["version"])
                try:
                    if match["verb"] == "/metadata":
                        return self._answer(200, standin._metadata(model))
                    standin.requests.append(body)
                    return self._answer(200, standin._predict(model, body))
                except Exception as error:  # TF Serving answers 400 with {"error": ...}
                    return self._answer(400, {"error": str(error)})

            def do_GET(self):
                self._route()

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                self._route(json.loads(self.rfile.read(length).decode("utf-8")))

            def log_message(self, *args):
                pass

        return Handler
