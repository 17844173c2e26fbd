"""What the benches measure with: the CPU, matmul anchors, model FLOPs, timed `fit` calls, peak memory.

Shared by bench.py (tfbert against its peers), cost_curves.py (how cost grows
with length and batch) and device_check.py (a GPU).
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

# The flags that decide each peer's fastest precision on a CPU: bf16 is native with avx512_bf16 or AMX.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    """The CPU model (with its family and model numbers, which tell Zen 3, 4 and 5 apart), the flags of
    REPORTED_FLAGS it has, and the cores this process may use."""
    from tfbert.distribute import cpu_flags

    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name", "unknown")
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    flags = cpu_flags() or set()
    return {"model": model, "flags": [flag for flag in REPORTED_FLAGS if flag in flags],
            "cores": len(os.sched_getaffinity(0))}


def native_bf16() -> bool:
    """Whether this CPU runs bf16 natively, so each peer's bf16 configuration is worth timing."""
    from tfbert.distribute import native_bfloat16_cpu

    return native_bfloat16_cpu() is True


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resolve_precision(choice: str) -> bool:
    """--precision auto / mixed / fp32 -> whether tfbert trains and serves in mixed precision."""
    if choice == "auto":
        from tfbert.distribute import mixed_precision_pays

        return mixed_precision_pays()
    return choice == "mixed"


def anchor_matmul(dtype: str, n: int = 2048):
    """The roofline MFU is taken against: a dense [n, n] x [n, n] matmul in `dtype`. Returns (function, FLOPs)."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n), dtype=tf.float32), dtype)
    return tf.function(lambda: tf.matmul(a, a)), 2 * n**3


def model_matmuls(backbone, dtype: str, batch: int, length: int):
    """Exactly the matmuls of one training step of `backbone` at `batch` x `length` tokens. Returns (function, FLOPs).

    Per encoder layer: each dense kernel's forward x @ W and its two backward
    matmuls (dy @ W^T, x^T @ dy), and attention's two batched matmuls with their
    backward pairs -- the FLOPs `training_flops` counts, at the shapes
    the model runs them, with nothing in between. The model cannot run its
    matmuls faster than this, so its rate / the anchor's is the MFU ceiling of
    this model on this CPU.
    """
    import tensorflow as tf

    tokens, hidden, heads = batch * length, backbone.hidden_dim, backbone.num_heads
    shapes = [(hidden, hidden)] * 4 + [(hidden, backbone.intermediate_dim), (backbone.intermediate_dim, hidden)]
    normal = lambda *shape: tf.cast(tf.random.normal(shape), dtype)  # noqa: E731
    # Distinct operands for every matmul: grappler would merge identical ones into one.
    dense = [(normal(tokens, fan_in), normal(fan_in, fan_out), normal(tokens, fan_out))
             for _ in range(backbone.num_layers) for fan_in, fan_out in shapes]
    per_head = lambda: normal(batch, heads, length, hidden // heads)  # noqa: E731  q, k, v, context, their gradients
    square = lambda: normal(batch, heads, length, length)  # noqa: E731  scores, probabilities, their gradients
    # (a, b, transpose_a, transpose_b): q @ k^T, then d_scores @ k and d_scores^T @ q; probs @ v, then
    # d_context @ v^T and probs^T @ d_context.
    attention = [operands for _ in range(backbone.num_layers)
                 for operands in ((per_head(), per_head(), False, True), (square(), per_head(), False, False),
                                  (square(), per_head(), True, False), (square(), per_head(), False, False),
                                  (per_head(), per_head(), False, True), (square(), per_head(), True, False))]

    @tf.function
    def step():
        out = []
        for x, w, dy in dense:
            out += [x @ w, tf.matmul(dy, w, transpose_b=True), tf.matmul(x, dy, transpose_a=True)]
        for a, b, transpose_a, transpose_b in attention:
            out.append(tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b))
        return out

    dense_flops = 3 * 2 * tokens * sum(fan_in * fan_out for fan_in, fan_out in shapes)
    attention_flops = 3 * 2 * 2 * tokens * length * hidden
    return step, backbone.num_layers * (dense_flops + attention_flops)


def sustained_rates(calls, seconds: float = 6.0) -> list[float]:
    """FLOP/s of each (function, FLOPs) in `calls`, run in turn for `seconds` in all: its FLOPs / its time.

    Measured right after each timed tfbert call, not once per run, and
    interleaved: this machine's 2 vCPUs at times share a physical core (and
    its AMX unit) with another tenant. One thread then reads ~280 GFLOP/s in
    bf16 instead of ~600, and the 2-thread [2048, 2048] rate flips between
    ~580 and ~1,200 GFLOP/s from one second to the next. Training speed moves
    with it, so only rates taken over the same seconds make meaningful
    fractions, and totals over seconds (not medians of calls) average over the
    same mix of the two states as the timed training does.
    """
    import tensorflow as tf

    finish = lambda out: tf.nest.map_structure(lambda t: t.numpy(), out)  # noqa: E731
    for fn, _ in calls:
        finish(fn())  # trace and warm up, untimed
    spent = [0.0] * len(calls)
    counts = [0] * len(calls)
    while sum(spent) < seconds:
        for i, (fn, _) in enumerate(calls):
            start = time.perf_counter()
            finish(fn())
            spent[i] += time.perf_counter() - start
            counts[i] += 1
    return [count * flops / t for count, (_, flops), t in zip(counts, calls, spent)]


def training_flops(backbone, lengths) -> float:
    """Training FLOPs of texts with these real lengths: 6 x matmul params per token + attention over each text.

    Matmul params: the backbone's, less the embeddings (gathered, not
    multiplied) and less the [CLS] pooler, which tfbert's mean-pooling head
    does not run (counting it would credit ~1.4% of MiniLM's FLOPs never spent).
    Attention: each of a text's L real tokens attends to its L real keys, 12 x
    layers x hidden x L FLOPs per token (scores and context, forward and
    backward), so a text costs that times L^2, not L x the average length: on
    the default corpus (capped at 128) sum(L^2) / sum(L) is ~87 real tokens
    against a mean of ~60, since the long texts have both more tokens and
    longer contexts.
    """
    from tfbert.keras_compat import POOLER_LAYER

    unused = ("embedding", POOLER_LAYER)
    skipped = sum(int(np.prod(w.shape)) for w in backbone.weights if any(name in w.path for name in unused))
    layers, hidden = backbone.num_layers, backbone.hidden_dim
    lengths = np.asarray(lengths, np.float64)
    return 6 * (backbone.count_params() - skipped) * lengths.sum() + 12 * layers * hidden * np.square(lengths).sum()


def fit_seconds(model, ds, steps: int) -> float:
    """Seconds of one `fit` call from the end of its first step to the end of its last (steps - 1 batches)."""
    import keras

    ends = []
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
    return ends[-1] - ends[0]
