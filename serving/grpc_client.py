"""Example gRPC client for the exported model served by TF Serving (port 8500).

    python serving/grpc_client.py --host localhost:8500 --model-name snownlp_sentiment 很好 太差了

Prints one JSON object per text, as `predict.py` does, for every task. Needs
`tensorflow-serving-api` (a tfbert dependency) and `grpcio`.
"""

import argparse
import json
import sys

import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfbert.serving import Answers, predict_request


def records(texts, outputs) -> list[dict]:
    """predict.py's records from a PredictResponse's outputs (name -> TensorProto)."""
    arrays = {name: tf.make_ndarray(proto) for name, proto in outputs.items()}
    names = [n.decode("utf-8") for n in arrays["label_names"][0]] if "label_names" in arrays else []
    return [{"text": text, **answer} for text, answer in zip(texts, Answers.from_outputs(arrays).records(names))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="localhost:8500")
    parser.add_argument("--model-name", default="snownlp_sentiment")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("texts", nargs="+")
    args = parser.parse_args(argv)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(args.host))
    response = stub.Predict(predict_request(args.model_name, args.texts), args.timeout)
    for record in records(args.texts, response.outputs):
        print(json.dumps(record, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
