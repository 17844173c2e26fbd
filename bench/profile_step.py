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
get kinds of their own. It then answers the same texts again, untraced, for two more figures per text: the wall
time, and the time oneDNN's own kernels take (ONEDNN_VERBOSE's per-primitive times, summed by kind). The op
times less the kernel times is what TensorFlow spends around each kernel: dispatch, allocation, threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import time

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


# oneDNN primitive kind (ONEDNN_VERBOSE's sixth field) -> the profiler's kind of the op that runs it.
ONEDNN_KINDS = {"inner_product": "matmul (dense, attention)", "matmul": "matmul (dense, attention)",
                "gemm_api": "matmul (dense, attention)", "softmax": "softmax", "layer_normalization": "layer norm",
                "eltwise": "GELU"}


@dataclasses.dataclass(frozen=True)
class ServingProfile:
    """One text's time, in microseconds: TensorFlow op self-time and oneDNN kernel time by kind, and the wall."""

    op_us: dict
    kernel_us: dict
    wall_us: float


def onednn_kernel_us(lines) -> dict[str, float]:
    """Execution time by kind, in microseconds, summed over ONEDNN_VERBOSE's `primitive,exec` lines."""
    totals: dict[str, float] = {}
    for line in lines:
        fields = line.strip().split(",")
        if len(fields) < 7 or fields[0] != "onednn_verbose" or "exec" not in fields[2:4]:
            continue
        primitive = fields[fields.index("exec") + 2]
        kind = ONEDNN_KINDS.get(primitive, "other (casts, adds, gathers, host)")
        totals[kind] = totals.get(kind, 0.0) + float(fields[-1]) * 1000  # verbose prints milliseconds
    return totals


def _answer_each(serve, texts: list[str]) -> list[float]:
    """Microseconds the export takes to answer each of `texts` alone."""
    walls = []
    for text in texts:
        start = time.perf_counter()
        serve([text])
        walls.append((time.perf_counter() - start) * 1e6)
    return walls


def profile_serving(system, texts: list[str], args) -> ServingProfile:
    """The export answering each of `texts` alone: traced by the profiler, timed, and its oneDNN kernels timed.

    The kernel times come from a second process of this script run with ONEDNN_VERBOSE=1 (`--kernel-times`),
    so that oneDNN's printing inflates neither the op times nor the wall time measured here.
    """
    import subprocess

    import tensorflow as tf

    serve = system.serving()
    _answer_each(serve, texts)  # every length's kernels built before the profile
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    _answer_each(serve, texts)
    tf.profiler.experimental.stop()
    op_us = {kind: us / len(texts) for kind, us in breakdown(profile_rows(logdir)).items()}
    wall_us = statistics.median(_answer_each(serve, texts))
    log = os.path.join(logdir, "onednn_verbose.log")
    argv = [sys.executable, os.path.abspath(__file__), "--serving", "--kernel-times", "--texts", str(args.texts),
            "--batch-size", str(args.batch_size), "--max-seq-length", str(args.max_seq_length),
            "--precision", args.precision]
    with open(log, "w") as out:
        run = subprocess.run(argv, env={**os.environ, "ONEDNN_VERBOSE": "1"}, stdout=out, stderr=subprocess.PIPE,
                             text=True)
    if run.returncode:
        sys.exit(f"the kernel-timing run failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    with open(log) as out:
        lines = out.read().split(KERNEL_MARK)[-1].splitlines()
    return ServingProfile(op_us, {kind: us / len(texts) for kind, us in onednn_kernel_us(lines).items()}, wall_us)


KERNEL_MARK = "=== timed texts ==="


def print_kernel_log(system, texts: list[str]) -> None:
    """--kernel-times (under ONEDNN_VERBOSE=1): answers `texts` once to warm up, then again after KERNEL_MARK."""
    import ctypes

    serve = system.serving()
    _answer_each(serve, texts)
    ctypes.CDLL(None).fflush(None)  # oneDNN prints through C's buffered stdout: keep the mark in order
    print(f"\n{KERNEL_MARK}", flush=True)
    _answer_each(serve, texts)
    ctypes.CDLL(None).fflush(None)


def report_training(kinds: dict[str, float], steps: int) -> dict:
    total = sum(kinds.values())
    print("| kind of work | us per step | share of op time |\n|---|---|---|")
    for kind, us in kinds.items():
        print(f"| {kind} | {us / steps:,.0f} | {us / total:.1%} |")
    return {"mode": "training", "samples": steps, "share": {kind: round(us / total, 4) for kind, us in kinds.items()}}


def report_serving(profile: ServingProfile, texts: int) -> dict:
    """Prints op and kernel time per text by kind; returns the JSON line's fields."""
    ops, kernels = profile.op_us, profile.kernel_us
    op_total, kernel_total = sum(ops.values()), sum(kernels.values())
    print("| kind of work | op time, us per text | of which oneDNN kernels | share of op time |\n|---|---|---|---|")
    for kind, us in ops.items():
        kernel = f"{kernels[kind]:,.0f}" if kind in kernels else "-"
        print(f"| {kind} | {us:,.0f} | {kernel} | {us / op_total:.1%} |")
    print(f"| all ops | {op_total:,.0f} | {kernel_total:,.0f} | |")
    print(f"wall time per text (median): {profile.wall_us:,.0f} us")
    return {"mode": "serving", "samples": texts, "wall_us": round(profile.wall_us), "op_us": round(op_total),
            "onednn_kernel_us": round(kernel_total), "share": {kind: round(us / op_total, 4) for kind, us in ops.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=200, help="one epoch of the bench's stream by default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--precision", choices=["auto", "mixed", "fp32"], default="auto")
    parser.add_argument("--serving", action="store_true", help="profile the export answering one text at a time")
    parser.add_argument("--texts", type=int, default=100, help="texts answered one at a time with --serving")
    parser.add_argument("--kernel-times", action="store_true", help=argparse.SUPPRESS)  # --serving's own subprocess
    args = parser.parse_args(argv)
    from bench.bench import bench_texts, checkpoint_dir
    from bench.measure import cpu_info, resolve_precision
    from bench.systems import TfbertSystem

    texts, labels = bench_texts(args.batch_size)
    system_args = argparse.Namespace(batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                                     jit_compile=False, bucket=True, steps=args.steps, repeats=1,
                                     warmup_steps=args.warmup_steps)
    system = TfbertSystem(checkpoint_dir(), texts, labels, system_args, resolve_precision(args.precision))
    if args.kernel_times:
        print_kernel_log(system, texts[: args.texts])
        return 0
    info = cpu_info()
    print(f"cpu: {info['model']}; flags {', '.join(info['flags'])}; {info['cores']} cores; policy {system.policy}")
    if args.serving:
        fields = report_serving(profile_serving(system, texts[: args.texts], args), args.texts)
    else:
        fields = report_training(profile_training(system, args), args.steps)
    print(json.dumps({"cpu": info["model"], "policy": system.policy, **fields}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
