"""Peak memory of predict.py and evaluate.py on a 100 MB and a 1 GB file: streaming keeps it flat.

    python bench/stream_memory.py --model saved_models/snownlp_sentiment [--gigabytes 1.0]

Writes two labelled CSV files of long reviews (each row ~300 KB: texts of
any length are ordinary, the tokenizer truncates them), then runs each
program on each file in a fresh process and reports its peak resident
memory (ru_maxrss). Prints one line per run and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = r"""
import resource, sys
from tfbert.scripts import evaluate_main, predict_main
main = {"predict": predict_main, "evaluate": evaluate_main}[sys.argv[1]]
code = main(sys.argv[2:])
print("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def write_file(path: str, megabytes: float) -> int:
    """A CSV of long texts with positive/negative labels, about `megabytes` MB; returns its rows."""
    rng = random.Random(0)
    words = ["很好", "太差了", "快递很快", "价格便宜", "服务态度差", "质量不错", "推荐购买", "不会再买"]
    rows, size = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        while size < megabytes * 1e6:
            text = "".join(rng.choices(words, k=50_000))
            line = f"{text},{rng.choice(['positive', 'negative'])}\n"
            f.write(line)
            size += len(line.encode("utf-8"))
            rows += 1
    return rows


def peak_mb(program: str, argv: list[str]) -> float:
    out = subprocess.run([sys.executable, "-c", RUN, program, *argv], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return float(out.stderr.strip().splitlines()[-1].split()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, megabytes in (("small", 100.0), ("large", args.gigabytes * 1000)):
            data = os.path.join(tmp, f"{name}.csv")
            rows = write_file(data, megabytes)
            size = os.path.getsize(data) / 1e6
            for program, extra in (("predict", ["--file", data, "--output", os.path.join(tmp, "out.jsonl")]),
                                   ("evaluate", ["--data", data])):
                peak = peak_mb(program, ["--model", args.model, *extra])
                results[f"{program}_{name}_peak_mb"] = round(peak, 1)
                print(f"{program:>8} on {size:7.1f} MB ({rows} rows): peak RSS {peak:7.1f} MB", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
