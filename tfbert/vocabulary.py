"""WordPiece vocabularies: learned from the training texts, or grown by the characters a corpus needs."""

from __future__ import annotations

import collections
import logging
import unicodedata
from collections.abc import Sequence

import keras_hub
import numpy as np
import tensorflow as tf

from tfbert import keras_compat
from tfbert.pipeline import without_autotune
from tfbert.preprocessor import TextPreprocessor, bert_normalize

logger = logging.getLogger(__name__)

RESERVED_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


def learn_vocabulary(texts: Sequence[str], vocabulary_size: int, lowercase: bool = True) -> list[str]:
    """Learn a WordPiece vocabulary with tensorflow-text's learner, keeping every character the texts use.

    Texts are normalized with `bert_normalize` first, then pre-tokenized by
    the rules keras-hub's `BertTokenizer` applies, so every CJK character is
    its own word and ends up its own token; Latin words get WordPiece
    sub-words.

    Why not `keras_hub.tokenizers.compute_word_piece_vocabulary`: it leaves
    tf-text's `max_unique_chars` at 1000, so every rarer character reads as
    [UNK], and Chinese text uses thousands (docs/design.md). Here every
    character of the texts is kept; `##` + a character that BERT's tokenizer always splits off
    (CJK, punctuation) is dropped, since no text can ever produce it.
    If characters and learned sub-words exceed `vocabulary_size`, the rarest
    multi-character sub-words go first, then the rarest characters.
    """
    data = without_autotune(tf.data.Dataset.from_tensor_slices(list(texts))).batch(1024).map(
        lambda t: keras_compat.pretokenize(bert_normalize(t, lowercase), lowercase=False, strip_accents=False,
                               split=True, split_on_cjk=True))
    learner = keras_compat.wordpiece_learner()
    word_counts = learner.count_words(data)
    char_counts = collections.Counter()
    for word, count in word_counts.items():
        for char in word:
            char_counts[char] += count
    # The learner spends two entries on every character (c and ##c) before any
    # sub-word; the ##c of split-off characters are dropped below, so they get
    # budget of their own instead of crowding out the sub-words.
    never_continued = sum(map(_splits_off, char_counts))
    learned = learner.learn(
        word_counts, vocab_size=vocabulary_size + never_continued, reserved_tokens=RESERVED_TOKENS,
        max_unique_chars=len(char_counts), include_joiner_token=True, joiner="##")
    reserved = set(RESERVED_TOKENS)
    learned = [t for t in learned if t not in reserved and not (t.startswith("##") and _splits_off(t[2:]))]
    # The alphabet (c, and ##c where c can continue a word) spells any word
    # without [UNK]; longer pieces only shorten words, so they go first.
    alphabet = [t for t in learned if t.removeprefix("##") in char_counts]
    pieces = [t for t in learned if t.removeprefix("##") not in char_counts]
    room = vocabulary_size - len(RESERVED_TOKENS)
    if len(alphabet) + len(pieces) > room:
        # tf-text lists sub-words by descending count, so the tail is the rarest.
        pieces = pieces[:max(0, room - len(alphabet))]
        alphabet = sorted(alphabet, key=lambda t: -char_counts[t.removeprefix("##")])[:room - len(pieces)]
    kept = set(alphabet) | set(pieces)
    vocab = RESERVED_TOKENS + [t for t in learned if t in kept]
    logger.info("Learned a WordPiece vocabulary of %d tokens (%d of the %d characters the texts use) from %d texts.",
                len(vocab), sum(t in char_counts for t in kept), len(char_counts), len(texts))
    return vocab


def is_cjk(character: str) -> bool:
    """BERT's definition of a CJK character (the ranges its tokenizer splits off one by one)."""
    code = ord(character)
    return any(low <= code <= high for low, high in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _splits_off(token: str) -> bool:
    """True for a single character BERT's basic tokenizer makes a word of its own (CJK, punctuation)."""
    if len(token) != 1:
        return False
    code = ord(token)
    ascii_punctuation = 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
    return is_cjk(token) or ascii_punctuation or unicodedata.category(token).startswith("P")


def unknown_characters(preprocessor: TextPreprocessor, texts: list[str], min_count: int) -> list[str]:
    """Characters of `texts` that `preprocessor`'s vocabulary reads as [UNK], used >= `min_count` times.

    Normalized the way fine-tuning and the export normalize (`bert_normalize`),
    most frequent first. Characters, not words: BERT's tokenizer makes every
    CJK character (and every punctuation mark) a word of its own, so one
    vocabulary entry per character is what a Chinese text needs. Only such
    split-off characters are returned: a letter the vocabulary lacks turns
    its whole word into [UNK], and a single-letter entry would not change
    that (it would need "##" pieces too, which we do not add).
    """
    normalized = bert_normalize(tf.constant(texts), preprocessor.lowercase).numpy()
    counts = collections.Counter(ch for text in normalized for ch in text.decode("utf-8") if not ch.isspace())
    candidates = [ch for ch, n in counts.most_common() if n >= min_count]
    if not candidates:
        return []
    unk = preprocessor.tokenizer.token_to_id("[UNK]")
    alone = preprocessor(tf.constant(candidates))
    doubled = preprocessor(tf.constant([ch + ch for ch in candidates]))
    # c alone is one [UNK] token, and "cc" is two tokens: c is split off as a
    # word of its own (CJK, punctuation), so a vocabulary entry for it is used.
    # A letter inside a word ("cc" -> one [UNK] word) would not be.
    keep = ((alone["token_ids"].numpy()[:, 1] == unk) & (alone["padding_mask"].numpy().sum(axis=1) == 3)
            & (doubled["padding_mask"].numpy().sum(axis=1) == 4))
    return [ch for ch, k in zip(candidates, keep) if k]


def grown_backbone(backbone: keras_hub.models.BertBackbone, new_tokens: int) -> keras_hub.models.BertBackbone:
    """`backbone` with `new_tokens` more token-embedding rows; every trained weight is copied over.

    The new rows keep the fresh model's initializer (BERT's truncated normal,
    stddev 0.02), so a new character starts like any token of a BERT being
    pretrained from scratch; masked-LM pretraining then learns it.
    """
    if not new_tokens:
        return backbone
    grown = keras_hub.models.BertBackbone.from_config(
        {**backbone.get_config(), "vocabulary_size": backbone.vocabulary_size + new_tokens})
    for new, old in zip(grown.weights, backbone.weights, strict=True):
        if new.path != old.path:
            raise RuntimeError(f"Weight order differs after growing the vocabulary: {new.path} vs {old.path}.")
        value = old.numpy()
        if new.shape != old.shape:  # the token embedding: trained rows first, fresh rows after
            value = np.concatenate([value, new.numpy()[value.shape[0]:]], axis=0)
        new.assign(value)
    return grown


