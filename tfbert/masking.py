"""BERT's masked-LM masking, of single tokens or of whole words, as batched TensorFlow ops inside tf.data.

Single tokens is keras-hub's `MaskedLMMaskGenerator` with
`BertMaskedLMPreprocessor`'s settings (15% of tokens; 80% [MASK], 10%
random, 10% kept; never [CLS]/[SEP]/[PAD]), applied to already tokenized,
cached batches and drawn afresh every epoch (dynamic masking, as RoBERTa
found best). Whole words (Chinese BERT-wwm) take their words from jieba.
"""

from __future__ import annotations

import functools
import logging
import math

import keras_hub
import numpy as np
import tensorflow as tf

from tfbert.preprocessor import TextPreprocessor
from tfbert.vocabulary import is_cjk

logger = logging.getLogger(__name__)


def masker_for(preprocessor: TextPreprocessor, mask_rate: float, whole_words: bool = False):
    """`(token_ids, word_continuations) -> masked batch`: BERT's masking, of single tokens or of whole words.

    Single tokens (the default) is `BertMaskedLMPreprocessor`'s own masking
    (keras-hub's `MaskedLMMaskGenerator`), which ignores the continuations.
    """
    tokenizer = preprocessor.tokenizer
    settings = dict(
        vocabulary_size=tokenizer.vocabulary_size(),
        mask_token_id=tokenizer.mask_token_id,
        unselectable_token_ids=[tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id],
        mask_token_rate=0.8,
        random_token_rate=0.1,
    )
    # tf-text selects exactly ceil(rate * maskable tokens) per text, so
    # (rate + 5%) * length slots never cut a selection short. The slot count
    # also scales Keras' loss (see `pretrain`); the measured recipe used this.
    selection_length = math.ceil((mask_rate + 0.05) * preprocessor.sequence_length)
    if whole_words:
        return WholeWordMaskGenerator(mask_rate=mask_rate, selection_length=selection_length, **settings)
    generator = keras_hub.layers.MaskedLMMaskGenerator(
        mask_selection_rate=mask_rate, mask_selection_length=selection_length, **settings)
    return lambda token_ids, _: generator(token_ids)


class WholeWordMaskGenerator:
    """BERT's masked-LM masking over whole words (Google's `--do_whole_word_mask`; Cui et al. 2019 for Chinese).

    A word is a token plus the tokens that continue it (`continuations[b, t]`
    is 1 when token t belongs to the word of token t-1: WordPiece `##`
    pieces, and the 2nd, 3rd, ... character of a multi-character Chinese
    word; `word_continuations` computes them). Per text, words are visited in
    random order and taken whole while the count of selected tokens stays
    within ceil(rate * maskable tokens), the single-token masker's count; a
    word that would overshoot is skipped, as Google's and Hugging Face's
    whole-word maskers do. So a text can get fewer predictions than the
    single-token masker gives it (none, when every word is longer than its
    budget, as in a two-character text that is one word), and near the
    budget single tokens fill the remainder: words of the same length are
    equally likely, long words in short texts less likely than short ones.
    Each selected token then becomes [MASK] (80%), a random token (10%) or
    stays (10%), drawn per token like the reference implementations. [CLS], [SEP] and padding are
    never selected, and a continuation flag after an unselectable token
    starts a new word.

    Returns what keras-hub's `MaskedLMMaskGenerator` returns: masked
    `token_ids`, `mask_positions` (ascending, zero-padded), the original
    `mask_ids` there and `mask_weights` (1.0 for a real prediction).
    Everything is batched TensorFlow ops: it runs inside `tf.data`.
    """

    def __init__(self, vocabulary_size: int, mask_rate: float, selection_length: int, mask_token_id: int,
                 unselectable_token_ids: list[int], mask_token_rate: float = 0.8, random_token_rate: float = 0.1):
        self.vocabulary_size = vocabulary_size
        self.mask_rate = mask_rate
        self.selection_length = selection_length
        self.mask_token_id = mask_token_id
        self.unselectable_token_ids = tf.constant(unselectable_token_ids, tf.int32)
        self.mask_token_rate = mask_token_rate
        self.random_token_rate = random_token_rate

    def __call__(self, token_ids: tf.Tensor, continuations: tf.Tensor) -> dict[str, tf.Tensor]:
        token_ids = tf.cast(token_ids, tf.int32)
        batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        selectable = tf.reduce_all(token_ids[..., None] != self.unselectable_token_ids, axis=-1)
        previous_selectable = tf.pad(selectable[:, :-1], [[0, 0], [1, 0]])
        continues = tf.cast(continuations[:, :length], tf.bool) & selectable & previous_selectable
        starts = selectable & ~continues
        word = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # the word each selectable token is in
        # Tokens per word; unselectable tokens are counted in a spare slot that is dropped.
        slot = tf.where(selectable, word, length) + tf.range(batch)[:, None] * (length + 1)
        word_length = tf.math.unsorted_segment_sum(
            tf.ones_like(slot), slot, batch * (length + 1))
        word_length = tf.reshape(word_length, [batch, length + 1])[:, :length]

        maskable = tf.reduce_sum(tf.cast(selectable, tf.float32), axis=1)
        budget = tf.minimum(tf.cast(tf.math.ceil(maskable * self.mask_rate), tf.int32), self.selection_length)
        # Visit the words in random order (empty slots last; their length 0 is never taken).
        priority = tf.where(word_length > 0, tf.random.uniform([batch, length]), 2.0)
        order = tf.argsort(priority, axis=1)

        def visit(state, lengths):
            count, _ = state
            take = (lengths > 0) & (count + lengths <= budget)
            return count + tf.where(take, lengths, 0), take

        _, taken = tf.scan(visit, tf.transpose(tf.gather(word_length, order, batch_dims=1)),
                           initializer=(tf.zeros([batch], tf.int32), tf.zeros([batch], tf.bool)))
        chosen_word = tf.gather(tf.transpose(taken), tf.argsort(order, axis=1), batch_dims=1)
        selected = selectable & tf.gather(chosen_word, tf.maximum(word, 0), batch_dims=1)

        draw = tf.random.uniform([batch, length])
        random_ids = tf.random.uniform([batch, length], 0, self.vocabulary_size, dtype=tf.int32)
        replacement = tf.where(draw < self.mask_token_rate, self.mask_token_id,
                               tf.where(draw < self.mask_token_rate + self.random_token_rate, random_ids, token_ids))
        positions = tf.range(length)[None, :] + tf.zeros_like(token_ids)
        # Selected positions first, in order; padded with a key past every real one so short buckets fill the slots.
        keys = tf.concat([tf.where(selected, positions, positions + length),
                          tf.fill([batch, self.selection_length], 2 * length)], axis=1)
        first = tf.sort(keys, axis=1)[:, :self.selection_length]
        real = first < length
        mask_positions = tf.where(real, first, 0)
        return {
            "token_ids": tf.where(selected, replacement, token_ids),
            "mask_positions": mask_positions,
            "mask_ids": tf.where(real, tf.gather(token_ids, mask_positions, batch_dims=1), 0),
            "mask_weights": tf.cast(real, tf.float32),
        }


@functools.cache
def _jieba():
    import jieba  # imported here: only whole-word masking needs it, and its dictionary takes ~1 s to load

    jieba.setLogLevel(logging.WARNING)  # it logs "Building prefix dict ..." at DEBUG otherwise
    return jieba


def jieba_words(text: str) -> list[str]:
    """jieba's segmentation of `text` (precise mode, its default dictionary, shipped in the package)."""
    return _jieba().lcut(text)


def word_continuations(preprocessor: TextPreprocessor, texts: list[str], segment=jieba_words) -> np.ndarray:
    """`[len(texts), sequence_length]` int8: 1 where a token continues the word of the token before it.

    Aligned with `preprocessor(texts)["token_ids"]` (position 0 is [CLS]).
    BERT's tokenizer makes every Chinese character a token of its own and
    knows nothing of words, so the words come from `segment` (jieba): a run
    of character tokens that spells one of the text's multi-character
    segmented words is one word (the longest match from the left against the
    set of the text's words, as Hugging Face's `run_chinese_ref.py` aligns
    them; so a word can also match where jieba cut the same characters
    differently elsewhere in the text). WordPiece `##` pieces continue their
    word too. Matching token strings, not character offsets, keeps the
    alignment right whatever normalization did; a word that no longer
    matches (an [UNK] inside it) just falls apart into single tokens.
    Runs once, in Python, before training (about 30 s for the default corpus,
    jieba's segmentation included).
    """
    vocab = preprocessor.vocabulary
    out = np.zeros((len(texts), preprocessor.sequence_length), np.int8)
    for start in range(0, len(texts), 1024):
        chunk = texts[start:start + 1024]
        features = preprocessor(tf.constant(chunk))
        ids, lengths = features["token_ids"].numpy(), features["padding_mask"].numpy().sum(axis=1)
        for row, (text, token_ids, n) in enumerate(zip(chunk, ids, lengths)):
            words = {w for w in segment(text) if len(w) > 1 and all(map(is_cjk, w))}
            longest = max(map(len, words), default=0)
            tokens = [vocab[i] for i in token_ids[:n]]
            flags = out[start + row]
            i = 1
            while i < n:
                if tokens[i].startswith("##"):
                    flags[i] = 1
                    i += 1
                    continue
                end = i + 1
                if len(tokens[i]) == 1 and is_cjk(tokens[i]):
                    end = next((j for j in range(min(n, i + longest), i + 1, -1) if "".join(tokens[i:j]) in words), end)
                flags[i + 1:end] = 1
                i = end
    return out


def masked_batches(ds: tf.data.Dataset, masker) -> tf.data.Dataset:
    """`(features, continuations)` batches -> `(features + mask_positions, mask_ids, mask_weights)` for BertMaskedLM."""
    def mask(features, continuations):
        out = masker(features["token_ids"], continuations)
        x = {**features, "token_ids": tf.cast(out["token_ids"], tf.int32),
             "mask_positions": tf.cast(out["mask_positions"], tf.int32)}
        return x, out["mask_ids"], out["mask_weights"]
    return ds.map(mask)
