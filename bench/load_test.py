"""Serving under load: concurrent REST clients against an export, through the TF Serving stand-in on 127.0.0.1.

    python bench/load_test.py --model saved_models/snownlp_sentiment --clients 8 --seconds 30

Each client sends batches of 1 to 32 texts for a fixed time: reviews, and
hostile strings (empty, 100,000 characters, invalid UTF-8 made printable
by the JSON encoder as U+FFFD, emoji). Every answer is checked against a
single-client answer for the same texts; the run fails on any error or
mismatch. Prints throughput and p50/p99 latency per request, then one JSON
line. The stand-in is Python's threaded HTTP server around the loaded
SavedModel, so the figures are the model's under concurrency, not TF
Serving's C++ server's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HOSTILE = ["", " ", "好" * 100_000, "\ufffd\ufffd(", "ok\x80", "😀👍🏽🎉", "\u2028\x00tab\there", "a" * 5000]


def texts_pool(count: int) -> list[str]:
    from tfbert import data as data_lib

    corpus = data_lib.load_default_corpus()
    rng = random.Random(0)
    return rng.sample(corpus.texts, count) + HOSTILE


def client(url: str, name: str, pool: list[str], expected: dict, deadline: float, seed: int, results: list) -> None:
    from tfbert.serving import RemoteModel

    rng = random.Random(seed)
    remote = RemoteModel(url, name, request_format=rng.choice(["row", "columnar"]))
    latencies, errors, texts_done = [], [], 0
    while time.time() < deadline:
        batch = rng.sample(range(len(pool)), rng.choice([1, 1, 2, 8, 32]))
        start = time.perf_counter()
        try:
            answers = remote.predict([pool[i] for i in batch], batch_size=len(batch)).scores
        except Exception as error:  # counted and reported: the run must see none
            errors.append(f"{type(error).__name__}: {error}")
            continue
        latencies.append(time.perf_counter() - start)
        texts_done += len(batch)
        for row, i in enumerate(batch):
            if max(abs(a - b) for a, b in zip(answers[row], expected[i])) > 1e-5:
                errors.append(f"text {i}: {answers[row].tolist()} != {expected[i]}")
    results.append((latencies, errors, texts_done))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an export: <export-dir>/<model-name> or a version dir")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--texts", type=int, default=200)
    args = parser.parse_args(argv)

    import numpy as np

    from tests.tf_serving_standin import StandIn
    from tfbert.serving import LocalModel, resolve_version_dir

    path = resolve_version_dir(args.model)
    pool = texts_pool(args.texts)
    local = LocalModel(path)
    expected = [row.tolist() for row in np.concatenate([local.predict([t]).scores for t in pool])]  # one by one
    results: list = []
    with StandIn({"m": {1: path}}, threaded=True) as server:
        deadline = time.time() + args.seconds
        threads = [threading.Thread(target=client, args=(server.url, "m", pool, expected, deadline, seed, results))
                   for seed in range(args.clients)]
        start = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.time() - start
    latencies = np.concatenate([np.array(r[0]) for r in results]) * 1000
    errors = [e for r in results for e in r[1]]
    texts = sum(r[2] for r in results)
    summary = {"clients": args.clients, "seconds": round(elapsed, 1), "requests": int(latencies.size),
               "texts_per_s": round(texts / elapsed, 1), "requests_per_s": round(latencies.size / elapsed, 1),
               "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
               "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1), "errors": len(errors)}
    for error in errors[:10]:
        print("error:", error)
    print(json.dumps(summary))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
