"""The classic baseline beside every BERT run: TF-IDF character n-grams + logistic regression.

Character 1-3-grams suit Chinese (no word segmentation needed). Settings as
calibrated on the default corpus: sublinear tf, min_df 2, C=4; on the same
deduplicated 80/20 split it reaches about 0.861 accuracy.

`GraphBaseline` is the same fitted pipeline rebuilt from TensorFlow core ops,
so `train.py --ensemble-baseline` can put it inside the SavedModel next to
BERT: raw strings in, scikit-learn's probabilities out (to ~1e-6), nothing
but `tensorflow` needed to serve it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfbert.data import PAIR_SEPARATOR, joined_texts
from tfbert.metrics import classification_metrics

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


def fit_baseline(texts: Sequence[str], ids: np.ndarray):
    """The fitted scikit-learn pipeline (TfidfVectorizer -> LogisticRegression)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2, preprocessor=normalize),
        LogisticRegression(C=4.0, max_iter=2000),
    )
    return model.fit(list(texts), ids)


def baseline_probabilities(model, texts: Sequence[str], num_labels: int) -> np.ndarray:
    """[len(texts), num_labels] probabilities; columns are label ids (a label absent from training stays 0)."""
    probabilities = np.zeros((len(texts), num_labels))
    probabilities[:, model.classes_] = model.predict_proba(list(texts))
    return probabilities


def tfidf_baseline(
    train_texts: Sequence[str], train_ids: np.ndarray, val_texts: Sequence[str], val_ids: np.ndarray,
    label_names: Sequence[str], train_pairs: Sequence[str] | None = None, val_pairs: Sequence[str] | None = None,
) -> tuple[dict, object, np.ndarray]:
    """Fit on the training split: (validation metrics with fit seconds, the pipeline, validation probabilities)."""
    start = time.time()
    model = fit_baseline(joined_texts(train_texts, train_pairs), train_ids)
    probabilities = baseline_probabilities(model, joined_texts(val_texts, val_pairs), len(label_names))
    metrics = classification_metrics(val_ids, probabilities, label_names)
    metrics.pop("report")
    metrics["train_seconds"] = round(time.time() - start, 1)
    logger.info("Baseline (TF-IDF char 1-3-grams + LogisticRegression): accuracy %.4f, F1 %.4f (%.0f s)",
                metrics["accuracy"], metrics["f1"], metrics["train_seconds"])
    return metrics, model, probabilities


class GraphBaseline(tf.Module):
    """A fitted `fit_baseline` pipeline as TensorFlow ops: strings [batch] -> probabilities [batch, num_labels].

    Step by step what sklearn does: `normalize`, collapse whitespace runs,
    character n-grams, keep the vocabulary's (a hash table), sublinear tf
    (1 + ln count), times idf, L2-normalize the row, then the logistic
    regression (sigmoid for one coefficient row, softmax for several).
    Everything is a core op TF Serving links. Arithmetic is float32 against
    sklearn's float64: probabilities agree to ~1e-6. Known difference: the
    few code points in ICU_LOWERCASE_GAP are not lowercased here.
    """

    def __init__(self, model, num_labels: int):
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
        self.coef = tf.constant(classifier.coef_.T, tf.float32)  # [terms, rows]
        self.intercept = tf.constant(classifier.intercept_, tf.float32)
        # Puts sklearn's class columns (classifier.classes_) at their label ids.
        placement = np.zeros((len(classifier.classes_), num_labels), np.float32)
        placement[np.arange(len(classifier.classes_)), classifier.classes_] = 1.0
        self.placement = tf.constant(placement)

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
        if self.coef.shape[1] == 1:
            positive = tf.sigmoid(scores)
            probabilities = tf.concat([1.0 - positive, positive], axis=1)
        else:
            probabilities = tf.nn.softmax(scores, axis=1)
        return tf.matmul(probabilities, self.placement)
