"""Device check: train the default model for a few steps under a strategy, with and without mixed precision / XLA.

    python bench/device_check.py                       # auto strategy, 30 timed steps per variant
    python bench/device_check.py --strategy mirrored --steps 100 --batch-size 128
    python bench/device_check.py --num-layers 12 --hidden-dim 768 --num-heads 12 --intermediate-dim 3072  # BERT-base size

Variants: keras_hub:<precision> trains keras-hub stock (BertTextClassifier of the same size with its own
preprocessor, fixed padding) on the same card in the same run, the anchor tfbert's ratio is taken against.
tfbert's variants: fp32, mixed (what `--mixed-precision` trains in: mixed_float16 on a
GPU, mixed_bfloat16 elsewhere) and bf16 (mixed_bfloat16 everywhere: H100/H200
tensor cores run bf16 at fp16's rate without loss scaling), each optionally
+xla. Prints one line per variant with examples/s, real tokens/s and MFU, then
one JSON object. On a machine without GPUs it says so and still runs on the
CPU. Steps before timing (warmup) compile the graph and are not counted, nor
is the timed `fit` call's first step or its teardown (`measure.fit_seconds`).

MFU: model FLOPs on the real (non-pad) tokens of the timed batches
(`measure.training_flops`, counted in those very batches: the stream is
deterministic) per second, over the rate of a square matmul in the variant's
compute dtype measured on one device right after the timed call, times the
replica count. The matmul is a chain of [8192, 8192] ones on a GPU (a 2048
one is ~20 us on an H200 and would measure launch overhead; see `_gpu_anchor`)
and bench.py's [2048, 2048] on a CPU.

Under XLA each (batch, length) shape compiles once, and length bucketing
makes 32 of them (4-token buckets up to 128): with `--bucket` the first
epoch of an XLA variant is mostly compiling, so time XLA with `--no-bucket`
(one shape; `mfu_all_tokens` then says what the device computed, padding
included) or warm up over a whole epoch. README "Scaling out" has the GPU
command (BERT-base size, batch 32, 128 tokens).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import measure  # noqa: E402

logger = logging.getLogger("device_check")


def _gpu_anchor(dtype: str, n: int = 8192, chain: int = 8):
    """The GPU's matmul rate: `chain` dependent [n, n] matmuls per call, returning one element.

    measure.anchor_matmul returns its whole product, and `sustained_rates` copies
    it to the host: 128 MB per call, longer than an H200's ~1 ms [8192, 8192]
    bf16 matmul itself. Here each product feeds the next (so no matmul can be
    dropped or merged) and only one element comes back. The operand is scaled
    by 1/sqrt(n) so the chain's values stay in range. Returns (function, FLOPs).
    """
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)) / n**0.5, dtype)

    @tf.function
    def run():
        x = a
        for _ in range(chain):
            x = tf.matmul(x, a)
        return x[0, 0]

    return run, chain * 2 * n**3


def _variant(args, strategy, texts, labels, precision: str, jit: bool) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from tfbert.config import ModelConfig
    from tfbert.distribute import set_precision
    from tfbert.keras_compat import use_fast_layers
    from tfbert.model import build_backbone, build_classifier
    from tfbert.optimization import build_optimizer
    from tfbert.pipeline import EpochPlan, make_training_dataset
    from tfbert.preprocessor import TextPreprocessor
    from tfbert.vocabulary import learn_vocabulary

    keras.utils.set_random_seed(0)
    if precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        policy = "mixed_bfloat16"
    else:
        policy = set_precision(precision == "mixed")
    vocab = learn_vocabulary(texts[:5000], 8000)
    config = ModelConfig(num_layers=args.num_layers, hidden_dim=args.hidden_dim, num_heads=args.num_heads,
                         intermediate_dim=args.intermediate_dim)
    with strategy.scope():
        pre = TextPreprocessor(vocab, args.max_seq_length)
        backbone = build_backbone(config, len(vocab), args.max_seq_length)
        model = use_fast_layers(build_classifier(backbone, 1, "sigmoid", preprocessor=pre))
        model.compile(optimizer=build_optimizer(5e-4, 10_000, 0.1, 0.01), loss="binary_crossentropy", jit_compile=jit)
    ds, _ = make_training_dataset(pre, texts, labels, plan=EpochPlan(args.batch_size, 0, bucket=args.bucket))
    model.fit(ds, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)  # compile + warm caches
    # Each fit call starts a new iterator at the same deterministic stream, so the
    # timed steps (all but the first) are these batches.
    masks = [np.asarray(f["padding_mask"]) for f, _ in ds.skip(1).take(args.steps - 1)]
    lengths = np.concatenate([np.sum(mask, axis=1) for mask in masks])
    padded = np.concatenate([np.full(len(mask), mask.shape[1]) for mask in masks])
    seconds = measure.fit_seconds(model, ds, args.steps)
    keras.mixed_precision.set_global_policy("float32")
    gpu = bool(tf.config.list_logical_devices("GPU"))
    dtype = "float32" if policy == "float32" else policy.removeprefix("mixed_")
    (anchor,) = measure.sustained_rates([_gpu_anchor(dtype) if gpu else measure.anchor_matmul(dtype)])
    replicas = strategy.num_replicas_in_sync
    flops_per_s = measure.training_flops(backbone, lengths) / seconds
    return {"policy": policy, "jit_compile": jit, "replicas": replicas,
            "examples_per_s": round((args.steps - 1) * args.batch_size / seconds, 1),
            "real_tokens_per_s": round(float(lengths.sum()) / seconds, 1), "seconds": round(seconds, 2),
            "model_tflops": round(flops_per_s / 1e12, 3), "matmul_tflops_per_device": round(anchor / 1e12, 3),
            "mfu_real_tokens": round(flops_per_s / (anchor * replicas), 3),
            # What the device computed, [PAD] included: with --no-bucket most of the gap to the real-token MFU.
            "mfu_all_tokens": round(measure.training_flops(backbone, padded) / seconds / (anchor * replicas), 3)}


def _keras_hub_variant(args, strategy, texts, labels, precision: str) -> dict:
    """keras-hub stock on the same card: BertTextClassifier of the same size, its own preprocessor, fixed padding."""
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    from tfbert.config import ModelConfig
    from tfbert.distribute import set_precision
    from tfbert.vocabulary import learn_vocabulary

    keras.utils.set_random_seed(0)
    policy = "mixed_bfloat16" if precision == "bf16" else set_precision(precision == "mixed")
    keras.mixed_precision.set_global_policy(policy)
    vocab = learn_vocabulary(texts[:5000], 8000)
    config = ModelConfig(num_layers=args.num_layers, hidden_dim=args.hidden_dim, num_heads=args.num_heads,
                         intermediate_dim=args.intermediate_dim)
    with strategy.scope():
        pre = keras_hub.models.BertTextClassifierPreprocessor(keras_hub.models.BertTokenizer(vocab),
                                                               sequence_length=args.max_seq_length)
        backbone = keras_hub.models.BertBackbone(len(vocab), config.num_layers, config.num_heads, config.hidden_dim,
                                                 config.intermediate_dim, max_sequence_length=args.max_seq_length)
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=pre)
    ds = tf.data.Dataset.from_tensor_slices((list(texts), labels[:, 0].astype("int32"))).repeat().batch(args.batch_size)
    model.fit(ds, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)
    timed = [t.numpy().tolist() for t, _ in ds.skip(1).take(args.steps - 1)]
    lengths = np.concatenate([np.sum(pre(batch)["padding_mask"], axis=1) for batch in timed])
    seconds = measure.fit_seconds(model, ds, args.steps)
    keras.mixed_precision.set_global_policy("float32")
    gpu = bool(tf.config.list_logical_devices("GPU"))
    dtype = "float32" if policy == "float32" else policy.removeprefix("mixed_")
    (anchor,) = measure.sustained_rates([_gpu_anchor(dtype) if gpu else measure.anchor_matmul(dtype)])
    flops_per_s = measure.training_flops(backbone, lengths) / seconds
    return {"policy": policy, "jit_compile": "auto", "replicas": strategy.num_replicas_in_sync,
            "examples_per_s": round((args.steps - 1) * args.batch_size / seconds, 1),
            "real_tokens_per_s": round(float(lengths.sum()) / seconds, 1), "seconds": round(seconds, 2),
            "model_tflops": round(flops_per_s / 1e12, 3), "matmul_tflops_per_device": round(anchor / 1e12, 3),
            "mfu_real_tokens": round(flops_per_s / (anchor * strategy.num_replicas_in_sync), 3),
            "mfu_all_tokens": round(measure.training_flops(backbone, np.full(len(lengths), args.max_seq_length))
                                    / seconds / (anchor * strategy.num_replicas_in_sync), 3)}


VARIANT_HELP = "comma-separated: fp32, mixed or bf16, each +xla or not, or keras_hub:<precision> (keras-hub stock)"


def _check_variant(name: str) -> bool:
    if name.startswith("keras_hub:"):
        return name.removeprefix("keras_hub:") in ("fp32", "mixed", "bf16")
    return name.split("+")[0] in ("fp32", "mixed", "bf16") and name.split("+")[1:] in ([], ["xla"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--steps", type=int, default=30, help="timed steps (the first is not counted); at least 2")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--intermediate-dim", type=int, default=1024)
    parser.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--variants", default="fp32,mixed,fp32+xla,mixed+xla,keras_hub:mixed", help=VARIANT_HELP)
    args = parser.parse_args(argv)
    for name in args.variants.split(","):
        if not _check_variant(name):
            parser.error(f"--variants: {name!r} is not one of fp32, mixed, bf16, each optionally +xla, "
                         "or keras_hub:<one of those precisions>")
    if args.steps < 2:
        parser.error(f"--steps {args.steps}: the first timed step is not counted, so at least 2 are needed")
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
        if name.startswith("keras_hub:"):
            measured = _keras_hub_variant(args, strategy, corpus.texts, labels, name.removeprefix("keras_hub:"))
        else:
            measured = _variant(args, strategy, corpus.texts, labels, name.split("+")[0], "xla" in name)
        result = {"variant": name, **measured}
        print(f"{name:>10}: {result['examples_per_s']:8.1f} examples/s, {result['real_tokens_per_s']:9.0f} real "
              f"tokens/s, {result['model_tflops']:.3f} model TFLOP/s = {result['mfu_real_tokens']:.1%} of "
              f"{result['matmul_tflops_per_device']:.3f} TFLOP/s x {result['replicas']} replica(s) "
              f"({result['mfu_all_tokens']:.1%} counting [PAD]; {result['policy']})")
        results.append(result)
    stock = [r["examples_per_s"] for r in results if r["variant"].startswith("keras_hub:")]
    ours = [r["examples_per_s"] for r in results if not r["variant"].startswith("keras_hub:")]
    vs_stock = round(max(ours) / max(stock), 2) if stock and ours else None
    print(json.dumps({"gpus": len(gpus), "best_vs_keras_hub": vs_stock, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
