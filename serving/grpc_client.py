"""Example gRPC client for the exported model served by TF Serving (port 8500).

    python serving/grpc_client.py --host localhost:8500 --model-name snownlp_sentiment 很好 太差了

Needs `tensorflow-serving-api` (a tfbert dependency) and `grpcio`.
"""

import argparse
import sys

import grpc
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfbert.serving import predict_request


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="localhost:8500")
    parser.add_argument("--model-name", default="snownlp_sentiment")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("texts", nargs="+")
    args = parser.parse_args(argv)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(args.host))
    response = stub.Predict(predict_request(args.model_name, args.texts), args.timeout)
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    labels = tf.make_ndarray(response.outputs["label"])
    for text, label, row in zip(args.texts, labels, probabilities):
        print(text, label.decode("utf-8"), row.round(4).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
