"""Where a training step's time goes: the TensorFlow profiler over tfbert's training steps, by kind of work.

    pip install tensorboard-plugin-profile                # the converter that reads the profiler's trace
    python bench/profile_step.py                          # MiniLM-L6, batch 32, 128 tokens, bench.py's precision

Trains tfbert's classifier on the bench's texts (the same model, data and precision as bench.py), warms up over
`--warmup-steps`, profiles `--steps` steps, and sums the self time of every TensorFlow op in the trace by kind:
matmuls (dense and attention), the LayerNorms, GELU, softmax, dropout, the optimizer (AdamW and clipping),
the input pipeline, and the rest. Prints a markdown table (docs/performance.md keeps it) and one JSON line.
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
    ("optimizer (AdamW, clipping)", r"adamw|optimizer|clip_by_global_norm|global_norm|ResourceApply|AssignAdd|AssignSub"),
    ("input pipeline", r"IteratorGetNext|Iterator|Dataset|Prefetch"),
    ("matmul (dense, attention)", r"MatMul|Einsum|Conv|_MklMatMul|_FusedMatMul|BatchMatMul"),
    ("layer norm", r"layer_?norm|LayerNorm|moments|Rsqrt|SquaredDifference|batchnorm"),
    # tfbert's fused GELU is the one XLA-compiled function in the step: its kernel runs as an Xla op.
    ("GELU", r"gelu|Tanh|Erf|Xla"),
    ("softmax", r"[Ss]oftmax"),
    ("dropout", r"dropout|RandomUniform|StatelessRandom|RandomStandardNormal"),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=200, help="one epoch of the bench's stream by default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--precision", choices=["auto", "mixed", "fp32"], default="auto")
    args = parser.parse_args(argv)
    import tensorflow as tf

    from bench.bench import bench_texts, checkpoint_dir
    from bench.measure import cpu_info, resolve_precision
    from bench.systems import TfbertSystem

    texts, labels = bench_texts(args.batch_size)
    system_args = argparse.Namespace(batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                                     jit_compile=False, bucket=True, steps=args.steps, repeats=1,
                                     warmup_steps=args.warmup_steps)
    system = TfbertSystem(checkpoint_dir(), texts, labels, system_args, resolve_precision(args.precision))
    system.train(args.warmup_steps)
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    system.train(args.steps)
    tf.profiler.experimental.stop()
    kinds = breakdown(profile_rows(logdir))
    total = sum(kinds.values())
    info = cpu_info()
    print(f"cpu: {info['model']}; flags {', '.join(info['flags'])}; {info['cores']} cores; policy {system.policy}")
    print("| kind of work | share of op time |\n|---|---|")
    for kind, us in kinds.items():
        print(f"| {kind} | {us / total:.1%} |")
    print(json.dumps({"cpu": info["model"], "policy": system.policy, "steps": args.steps,
                      "share": {kind: round(us / total, 4) for kind, us in kinds.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
