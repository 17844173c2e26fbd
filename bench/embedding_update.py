"""One training step of an embedding table alone: the lookup, AdamW's weight decay and its sparse update.

    python bench/embedding_update.py                  # BERT's 30,522 x 384 token table, 32 x 64 tokens a step

A sparse op (ResourceGather, ResourceScatterUpdate) puts a TensorFlow variable in copy-on-read mode, where
every dense read copies the whole table first: the next step's lookup and the weight decay would each copy it.
tfbert's AdamW turns the mode off after its sparse update (`keras_compat._sparse_adam`). The bench times that
step as tfbert runs it, and again with a sparse write of one row's own values after each step, which leaves
the mode on as it was before; the two alternate call by call. Prints milliseconds per step and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def embedding_step(rows: int, width: int, batch: int, length: int, copy_on_read: bool):
    """A tf.function running one lookup + AdamW step on a fresh `rows` x `width` table."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfbert.keras_compat import AdamW, _tf_variable

    table = keras.layers.Embedding(rows, width)
    table.build((None,))
    optimizer = AdamW(learning_rate=1e-4, weight_decay=0.01)
    ids = tf.constant(np.random.default_rng(0).integers(0, rows, (batch, length)), tf.int32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(table(ids)))
        gradients = tape.gradient(loss, table.trainable_variables)
        optimizer.apply_gradients(zip(gradients, table.trainable_variables))
        if copy_on_read:  # row 0 written back unchanged: a sparse op, so the table stays in copy-on-read mode
            variable = _tf_variable(table.embeddings)
            variable.scatter_update(tf.IndexedSlices(tf.gather(variable, [0]), tf.constant([0])))

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rows", type=int, default=30_522)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    steps = {name: embedding_step(args.rows, args.width, args.batch_size, args.length, copy_on_read)
             for name, copy_on_read in (("tfbert", False), ("copy_on_read", True))}
    milliseconds = {name: [] for name in steps}
    for repeat in range(args.repeats + 1):
        for name, step in (steps.items() if repeat % 2 else reversed(steps.items())):
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            if repeat:  # the first round traces and warms up
                milliseconds[name].append((time.perf_counter() - start) * 1000 / args.steps)
    result = {name: round(statistics.median(v), 2) for name, v in milliseconds.items()}
    for name, ms in result.items():
        print(f"{name:>13}: {ms:.2f} ms per step")
    print(json.dumps({"ms_per_step": result, "copy_on_read_vs_tfbert": round(result["copy_on_read"] / result["tfbert"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
