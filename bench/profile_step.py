"""Where a training step's (or one served text's) time goes: the TensorFlow profiler, by kind of work.

    pip install tensorboard-plugin-profile                # the converter that reads the profiler's trace
    python bench/profile_step.py                          # MiniLM-L6, batch 32, 128 tokens, bench.py's precision
    python bench/profile_step.py --serving                # the export answering one text at a time

Trains tfbert's classifier on the bench's texts (the same model, data and precision as bench.py), warms up over
`--warmup-steps`, profiles `--steps` steps, and sums the self time of every TensorFlow op in the trace by kind:
matmuls (dense and attention), the LayerNorms, GELU, softmax, dropout, the optimizer (AdamW and clipping),
the input pipeline, and the rest. Prints a markdown table (docs/performance.md keeps it) and one JSON line.
With `--serving` it exports the same model and profiles its serving signature answering `--texts` reviews one
at a time (bench.py's latency), in microseconds per text; tokenization and the attention heads' transposes
get kinds of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Kind of work <- regex over "op type" and "op name" (first match wins). Order matters: an op inside the
# optimizer's name scope is the optimizer's whatever its type.
KINDS = (
    # Not grappler's rewrites ("ArithmeticOptimizer/AddOpsRewrite_..."), which are the model's own adds.
    ("optimizer (AdamW, clipping)",
     r"adamw|(?<!arithmetic)optimizer|clip_by_global_norm|global_norm|ResourceApply|AssignAdd|AssignSub"),
    ("input pipeline", r"IteratorGetNext|Iterator|Dataset|Prefetch"),
    ("matmul (dense, attention)", r"MatMul|Einsum|Conv|_MklMatMul|_FusedMatMul|BatchMatMul"),
    ("layer norm", r"layer_?norm|LayerNorm|moments|Rsqrt|SquaredDifference|batchnorm"),
    # tfbert's fused GELU is the one XLA-compiled function in the step: its kernel runs as an Xla op.
    ("GELU", r"gelu|Tanh|Erf|Xla"),
    ("softmax", r"[Ss]oftmax"),
    ("dropout", r"dropout|RandomUniform|StatelessRandom|RandomStandardNormal"),
    ("attention head transposes", r"^(_Mkl)?Transpose$|^Bitcast$"),
    ("tokenization (tf-text)", r"Regex|Wordpiece|Unicode|NormalizeUTF8|CaseFold|Ragged|^String"),
)


def kind_of(op_type: str, op_name: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, op_type) or re.search(pattern, op_name, re.IGNORECASE):
            return kind
    return "other (casts, adds, gathers, host)"


def breakdown(rows: list[dict]) -> dict[str, float]:
    """Self time in microseconds by kind, from the profiler's per-op rows (type, operation, total self-time)."""
    totals: dict[str, float] = {}
    for row in rows:
        kind = kind_of(row["type"], row["operation"])
        totals[kind] = totals.get(kind, 0.0) + row["self_us"]
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def profile_rows(logdir: str) -> list[dict]:
    """The framework op stats of the trace under `logdir`: (type, operation, self time in us) per op, idle excluded."""
    import glob

    from xprof.convert import raw_to_tool_data

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    data, _ = raw_to_tool_data.xspace_to_tool_data(paths[-1:], "framework_op_stats", {})
    table = json.loads(data)[0]  # a Google DataTable: column ids, then rows of {"v": value} cells
    ids = [column["id"] for column in table["cols"]]
    rows = []
    for row in table["rows"]:
        cells = dict(zip(ids, (cell.get("v") if cell else None for cell in row["c"])))
        if cells.get("type") != "IDLE":
            rows.append({"type": cells.get("type") or "", "operation": cells.get("operation") or "",
                         "self_us": float(cells.get("total_self_time") or 0)})
    return rows


def profile_training(system, args) -> dict[str, float]:
    """Op self-time by kind over `args.steps` training steps, after `args.warmup_steps`, in microseconds."""
    import tensorflow as tf

    system.train(args.warmup_steps)
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    system.train(args.steps)
    tf.profiler.experimental.stop()
    return breakdown(profile_rows(logdir))


def profile_serving(system, texts: list[str]) -> dict[str, float]:
    """Op self-time by kind per text, the export answering each of `texts` alone, in microseconds."""
    import tensorflow as tf

    serve = system.serving()
    for text in texts:  # every length's kernels built before the profile
        serve([text])
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    for text in texts:
        serve([text])
    tf.profiler.experimental.stop()
    return {kind: us / len(texts) for kind, us in breakdown(profile_rows(logdir)).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=200, help="one epoch of the bench's stream by default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--precision", choices=["auto", "mixed", "fp32"], default="auto")
    parser.add_argument("--serving", action="store_true", help="profile the export answering one text at a time")
    parser.add_argument("--texts", type=int, default=100, help="texts answered one at a time with --serving")
    args = parser.parse_args(argv)
    from bench.bench import bench_texts, checkpoint_dir
    from bench.measure import cpu_info, resolve_precision
    from bench.systems import TfbertSystem

    texts, labels = bench_texts(args.batch_size)
    system_args = argparse.Namespace(batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                                     jit_compile=False, bucket=True, steps=args.steps, repeats=1,
                                     warmup_steps=args.warmup_steps)
    system = TfbertSystem(checkpoint_dir(), texts, labels, system_args, resolve_precision(args.precision))
    kinds = profile_serving(system, texts[: args.texts]) if args.serving else profile_training(system, args)
    total = sum(kinds.values())
    info = cpu_info()
    print(f"cpu: {info['model']}; flags {', '.join(info['flags'])}; {info['cores']} cores; policy {system.policy}")
    unit = "us per text" if args.serving else "us per step"
    print(f"| kind of work | {unit} | share of op time |\n|---|---|---|")
    for kind, us in kinds.items():
        print(f"| {kind} | {us / (1 if args.serving else args.steps):,.0f} | {us / total:.1%} |")
    print(json.dumps({"cpu": info["model"], "policy": system.policy, "mode": "serving" if args.serving else "training",
                      "samples": args.texts if args.serving else args.steps,
                      "share": {kind: round(us / total, 4) for kind, us in kinds.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
