"""The classic baseline beside every BERT run: TF-IDF character n-grams + the task's linear model.

Character 1-3-grams suit Chinese (no word segmentation needed); settings as
calibrated on the default corpus: sublinear tf, min_df 2. The model is the
task's (`Task.baseline_estimator`): logistic regression (C=4) for
classification, one per label for multi-label, ridge regression for
regression.

`GraphBaseline` is the same fitted pipeline rebuilt from TensorFlow core ops,
so `train.py --ensemble-baseline` can put it inside the SavedModel next to
BERT: raw strings in, scikit-learn's scores out (to ~1e-6), nothing
but `tensorflow` needed to serve it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfbert.data import PAIR_SEPARATOR, Splits, joined_texts
from tfbert.tasks import Task

logger = logging.getLogger(__name__)

# sklearn's char analyzer collapses runs of 2+ whitespace (its regex `\s\s+`)
# into one space. Python's `\s` is Unicode whitespace; RE2's (TensorFlow's
# regex ops) is ASCII only, so the graph spells out Python's set.
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_WHITESPACE_RUN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _WHITESPACE) + "]{2,}"
# Code points that Python's str.lower() (Unicode 14) lowercases and
# tf.strings.lower (TensorFlow's older ICU) leaves alone: letters added in
# Unicode 14 (35 Vithkuqi, one Glagolitic, four Latin Extended-D). Only these differ among all
# code points (tests/test_baseline.py checks every one); no Chinese text
# contains them.
ICU_LOWERCASE_GAP = frozenset(
    [0x2C2F, 0xA7C0, 0xA7D0, 0xA7D6, 0xA7D8, *range(0x10570, 0x1057B), *range(0x1057C, 0x1058B),
     *range(0x1058C, 0x10593), 0x10594, 0x10595]
)


def normalize(text: str) -> str:
    """The vectorizer's preprocessing: drop NUL characters, then lowercase.

    sklearn's default is `str.lower` alone; NULs are dropped because
    `tf.strings.lower` ends a string at a NUL (ICU's C-string convention),
    and the graph must see the same characters. No review contains one.
    """
    return text.replace("\x00", "").lower()


def fit_baseline(texts: Sequence[str], ids: np.ndarray, estimator):
    """The fitted scikit-learn pipeline: TfidfVectorizer -> `estimator` (the task's `baseline_estimator()`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2, preprocessor=normalize),
        estimator,
    )
    return model.fit(list(texts), ids)


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """The fitted pipeline, its validation scores (the task's: probabilities or predictions) and metrics."""

    model: Any
    scores: np.ndarray
    metrics: dict[str, Any]


def tfidf_baseline(task: Task, splits: Splits) -> BaselineResult:
    """Fit the task's baseline (`task.baseline_estimator()`) on the training split; score it on the validation split."""
    start = time.time()
    train, validation = splits.train, splits.validation
    estimator = task.baseline_estimator()
    model = fit_baseline(joined_texts(train.texts, train.pairs), task.baseline_targets(train.labels), estimator)
    scores = task.baseline_scores(model, joined_texts(validation.texts, validation.pairs))
    metrics = task.evaluate(task.truth(validation.labels), scores)
    metrics["train_seconds"] = round(time.time() - start, 1)
    logger.info("Baseline (TF-IDF char 1-3-grams + %s): %s (%.0f s)", type(estimator).__name__,
                task.summary_line(metrics), metrics["train_seconds"])
    return BaselineResult(model, scores, metrics)


class GraphBaseline(tf.Module):
    """A fitted `fit_baseline` pipeline as TensorFlow ops: strings [batch] -> the task's scores [batch, width].

    Step by step what sklearn does: `normalize`, collapse whitespace runs,
    character n-grams, keep the vocabulary's (a hash table), sublinear tf
    (1 + ln count), times idf, L2-normalize the row, then the task's linear
    model and its link (`task.baseline_linear`, `task.link`).
    Everything is a core op TF Serving links. Arithmetic is float32 against
    sklearn's float64: probabilities agree to ~1e-6. Known difference: the
    few code points in ICU_LOWERCASE_GAP are not lowercased here.
    """

    def __init__(self, model, task: Task):
        super().__init__(name="tfidf_baseline")
        vectorizer, classifier = model[0], model[-1]
        settings = (vectorizer.analyzer, vectorizer.preprocessor, vectorizer.sublinear_tf, vectorizer.norm,
                    vectorizer.use_idf)
        if settings != ("char", normalize, True, "l2", True):
            raise ValueError(f"GraphBaseline reproduces fit_baseline's TfidfVectorizer settings only, got {settings}.")
        self.ngram_range = vectorizer.ngram_range
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
        self.num_terms = len(terms)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(terms), tf.range(self.num_terms, dtype=tf.int64)),
            default_value=-1,
        )
        self.idf = tf.constant(vectorizer.idf_, tf.float32)
        coef, intercept, placement = task.baseline_linear(classifier)
        self.coef = tf.constant(coef, tf.float32)  # [terms, outputs]
        self.intercept = tf.constant(intercept, tf.float32)
        self.placement = tf.constant(placement)  # the estimator's output columns -> the task's score columns
        self._link = task.link  # softmax, sigmoid per label, or identity

    def __call__(self, texts: tf.Tensor, text_pairs: tf.Tensor | None = None) -> tf.Tensor:
        if text_pairs is not None:
            texts = tf.strings.join([texts, text_pairs], separator=PAIR_SEPARATOR)
        texts = tf.strings.lower(tf.strings.regex_replace(texts, r"\x00", ""), encoding="utf-8")  # normalize()
        texts = tf.strings.regex_replace(texts, _WHITESPACE_RUN, " ")
        chars = tf.strings.unicode_split(texts, "UTF-8")
        low, high = self.ngram_range
        grams = tf.concat([tf.strings.ngrams(chars, n, separator="") for n in range(low, high + 1)], axis=1)
        ids = self.table.lookup(grams)
        rows, terms = ids.value_rowids(), ids.flat_values
        known = terms >= 0
        rows, terms = rows[known], terms[known]
        # One (row, term) pair per distinct n-gram of a text, with its count.
        pairs, _, counts = tf.unique_with_counts(rows * self.num_terms + terms)
        rows, terms = pairs // self.num_terms, pairs % self.num_terms
        values = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(self.idf, terms)
        batch = tf.shape(texts, out_type=tf.int64)[0]
        norms = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(values), rows, batch))
        dots = tf.math.unsorted_segment_sum(values[:, None] * tf.gather(self.coef, terms), rows, batch)
        # An empty row (no known n-gram) stays all-zero, as sklearn's normalize leaves it.
        scores = dots / tf.maximum(norms, 1e-30)[:, None] + self.intercept
        return tf.matmul(self._link(scores), self.placement)

