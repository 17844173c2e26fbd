"""Device check: train the default model for a few steps under a strategy, with and without mixed precision / XLA.

    python bench/device_check.py                       # auto strategy, 30 timed steps per variant
    python bench/device_check.py --strategy mirrored --steps 100 --batch-size 128
    python bench/device_check.py --num-layers 12 --hidden-dim 768 --num-heads 12 --intermediate-dim 3072  # BERT-base size

Prints one line per variant (precision x XLA) with examples/s and the replica
count, then one JSON object. On a machine without GPUs it says so and still
runs on the CPU. Steps before timing (warmup) compile the graph and are not
counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger("device_check")


def _variant(args, strategy, texts, labels, mixed: bool, jit: bool) -> dict:
    import keras
    import keras_hub

    from tfbert.config import ModelConfig
    from tfbert.distribute import set_precision
    from tfbert.model import build_backbone, build_classifier
    from tfbert.optimization import build_optimizer
    from tfbert.preprocessing import TextPreprocessor, learn_vocabulary, make_training_dataset

    keras.utils.set_random_seed(0)
    policy = set_precision(mixed)
    vocab = learn_vocabulary(texts[:5000], 8000)
    config = ModelConfig(num_layers=args.num_layers, hidden_dim=args.hidden_dim, num_heads=args.num_heads,
                         intermediate_dim=args.intermediate_dim)
    with strategy.scope():
        pre = TextPreprocessor(keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True), args.max_seq_length)
        model = build_classifier(build_backbone(config, len(vocab), args.max_seq_length), 2)
        model.compile(optimizer=build_optimizer(5e-4, 10_000, 0.1, 0.01), loss="binary_crossentropy", jit_compile=jit)
    ds, _ = make_training_dataset(pre, texts, labels, batch_size=args.batch_size, seed=0, bucket=args.bucket)
    model.fit(ds, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)  # compile + warm caches
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    keras.mixed_precision.set_global_policy("float32")
    return {"policy": policy, "jit_compile": jit, "replicas": strategy.num_replicas_in_sync,
            "examples_per_s": round(args.steps * args.batch_size / seconds, 1), "seconds": round(seconds, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--intermediate-dim", type=int, default=1024)
    parser.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--variants", default="fp32,mixed,fp32+xla,mixed+xla")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    import numpy as np
    import tensorflow as tf

    from tfbert import data as data_lib
    from tfbert.distribute import get_strategy

    strategy = get_strategy(args.strategy)
    gpus = tf.config.list_logical_devices("GPU")
    print(f"GPUs: {len(gpus) or 'none -- running on the CPU'}; strategy {type(strategy).__name__}, "
          f"{strategy.num_replicas_in_sync} replica(s)")
    corpus = data_lib.deduplicate(data_lib.load_default_corpus())
    labels = np.array([[float(label == "positive")] for label in corpus.labels], np.float32)
    results = []
    for name in args.variants.split(","):
        result = {"variant": name, **_variant(args, strategy, corpus.texts, labels, "mixed" in name, "xla" in name)}
        print(f"{name:>10}: {result['examples_per_s']:8.1f} examples/s ({result['policy']}, {result['replicas']} replica(s))")
        results.append(result)
    print(json.dumps({"gpus": len(gpus), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
