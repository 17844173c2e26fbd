"""Strings -> `token_ids` / `segment_ids` / `padding_mask`, for training and export alike.

One `TextPreprocessor` owns the tokenizer and the packer. Training maps it
over batches inside `tf.data`; the export calls the very same object inside
the SavedModel graph, so the two can never drift apart.

How one pair is packed (`max_seq_length=12`, `--text-pair-column` set; ids of a
learned vocabulary, whose first tokens are `RESERVED_TOKENS`)::

    tokens       [CLS] 很 好 看 [SEP] 推 荐 [SEP] [PAD] [PAD] [PAD] [PAD]
    token_ids      1   51 48 93   2   77 60   2     0     0     0     0
    segment_ids    0    0  0  0   0    1  1   1     0     0     0     0
    padding_mask   1    1  1  1   1    1  1   1     0     0     0     0

Truncation uses keras-hub's `"waterfall"` strategy: the budget fills the
first text first and the pair gets what is left, and `[CLS]`/`[SEP]` are
always kept. Unlike the default round-robin trimmer it needs no custom
`TFText>RoundRobinTrim` op, which TF Serving's model server up to 2.19 does
not link (tensorflow/serving#2267).

Which tokens of a text that is too long are kept (`--truncation`):
`head` keeps its first ones (BERT's reference code); `head_tail` keeps the
first half and the last half of its share, dropping the middle (Sun et al.
2019, "How to Fine-Tune BERT for Text Classification": reviews often end on
their verdict). With `max_seq_length=7` (5 tokens of text), 这个手机很好推荐
is packed as `[CLS] 这 个 手 机 很 [SEP]` under `head` and as
`[CLS] 这 个 手 推 荐 [SEP]` under `head_tail` (the odd token goes to the
head). A pair first splits the budget by waterfall, then each text keeps
the head and tail of its share. Texts that fit are never changed. The
choice is traced into the export, so TF Serving cuts texts the way training did.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.config import TRUNCATIONS

FEATURES = ("token_ids", "segment_ids", "padding_mask")


def bert_normalize(text: tf.Tensor, lowercase: bool) -> tf.Tensor:
    """BERT's text normalization, as the reference (Hugging Face BertNormalizer) does it.

    1. Tabs, newlines and Unicode space separators become " "; NUL, U+FFFD
       and other control/format characters are removed.
    2. With `lowercase`: NFD, drop combining marks (strip accents), then
       per-character lowercase.

    keras-hub's `BertTokenizer(lowercase=True)` instead case-folds with NFKC
    and keeps accents, so full-width "，" becomes "," and "café" stays
    "café" -- ids that differ from the checkpoint's original tokenizer. We
    normalize here and hand the tokenizer already-normalized text with its
    own lowercasing off. CJK splitting, punctuation splitting and WordPiece
    are keras-hub's, and already match.
    """
    # Invalid UTF-8 (possible at the serving boundary) becomes U+FFFD, which
    # the next steps drop, as the reference drops U+FFFD.
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    text = tf.strings.regex_replace(text, r"[\t\n\r\p{Zs}]", " ")
    text = tf.strings.regex_replace(text, r"[\x{0}\x{FFFD}\p{Cc}\p{Cf}\p{Co}]", "")
    if lowercase:
        text = tf_text.normalize_utf8(text, "NFD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        text = tf.strings.lower(text, encoding="utf-8")
    return text


def head_tail_trim(segments: Sequence[tf.RaggedTensor], budget: int) -> list[tf.RaggedTensor]:
    """Cut `[batch, None]` token segments to a total of `budget` tokens per row, keeping each one's head and tail.

    Row by row, the first segment gets up to `budget` tokens and each next one
    what is left (waterfall, as the packer does); a segment over its share
    keeps its first ceil(share / 2) and last floor(share / 2) tokens. Core ops
    only, so the export stays servable by TF Serving.
    """
    trimmed = []
    remaining = tf.constant(budget, tf.int64)
    for segment in segments:
        lengths = segment.row_lengths()
        share = tf.minimum(lengths, remaining)
        head = (share + 1) // 2
        tail_start = lengths - (share - head)
        positions = tf.ragged.range(lengths)
        keep = (positions < tf.expand_dims(head, 1)) | (positions >= tf.expand_dims(tail_start, 1))
        trimmed.append(tf.ragged.boolean_mask(segment, keep))
        remaining = remaining - share
    return trimmed


@keras.saving.register_keras_serializable(package="tfbert")
class TextPreprocessor(keras.layers.Layer):
    """Tokenizes and packs batches of strings into int32 BERT inputs.

    A Keras layer with the whole setup in `get_config`, like keras-hub's
    `BertTextClassifierPreprocessor`: a model saved with it (`.keras`)
    carries its vocabulary, sequence length, pair setting and truncation.

    Args:
        vocabulary: list of str. WordPiece vocabulary with [PAD], [CLS], [SEP], [UNK], [MASK].
        sequence_length: int. Packed length, `[CLS]` and `[SEP]` included.
        lowercase: bool. Lowercase and strip accents (`bert_normalize`).
        pair: bool. Whether inputs are `(text, text_pair)`.
        truncation: str. One of tfbert.config.TRUNCATIONS: which tokens of an overlong text are kept.

    Examples:
    ```python
    pre = TextPreprocessor.from_tokenizer(tokenizer, sequence_length=8)
    pre(tf.constant(["很好"]))["padding_mask"]  # [[1, 1, 1, 1, 0, 0, 0, 0]]
    ```
    """

    def __init__(self, vocabulary: Sequence[str], sequence_length: int, lowercase: bool = True, pair: bool = False,
                 truncation: str = "head", **kwargs):
        super().__init__(**kwargs)
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation {truncation!r} is not one of {', '.join(TRUNCATIONS)}.")
        # Strings in, a dict out: no conversion of the inputs to float tensors.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.sequence_length = sequence_length
        self.lowercase = bool(lowercase)
        self.pair = pair
        self.truncation = truncation
        # Lowercasing off: `bert_normalize` already did it the reference way.
        self.tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(vocabulary), lowercase=False)
        self.packer = keras_hub.layers.MultiSegmentPacker(
            start_value=self.tokenizer.start_token_id,
            end_value=self.tokenizer.end_token_id,
            pad_value=self.tokenizer.pad_token_id,
            truncate="waterfall",
            sequence_length=sequence_length,
        )
        self.built = True

    @classmethod
    def from_tokenizer(cls, tokenizer: keras_hub.models.BertTokenizer, sequence_length: int, pair: bool = False,
                       truncation: str = "head") -> TextPreprocessor:
        """A preprocessor with `tokenizer`'s vocabulary and case setting."""
        return cls(tokenizer.get_vocabulary(), sequence_length, lowercase=bool(tokenizer.lowercase), pair=pair,
                   truncation=truncation)

    def call(self, text, text_pair=None) -> dict[str, tf.Tensor]:
        if self.pair != (text_pair is not None):
            raise ValueError(f"This preprocessor was built with pair={self.pair}; pass text_pair exactly when pair=True.")
        text = tf.convert_to_tensor(text, tf.string)
        if text_pair is None:
            return self._pack(text)
        return self._pack(text, tf.convert_to_tensor(text_pair, tf.string))

    # Always the TensorFlow path: in eager mode keras-hub would take a pure-Python
    # tokenizer path, which is not what tf.data and the export run.
    @tf.function(reduce_retracing=True)
    def _pack(self, text, text_pair=None):
        texts = [text] if text_pair is None else [text, text_pair]
        segments = [self.tokenizer(bert_normalize(t, self.lowercase)) for t in texts]
        if self.truncation == "head_tail":
            # [CLS] + one [SEP] per text; what the packer would keep, so it then trims nothing.
            segments = head_tail_trim(segments, self.sequence_length - 1 - len(segments))
        token_ids, segment_ids = self.packer(tuple(segments))
        # int32 everywhere: a bool mask breaks cross-replica aggregation under
        # MirroredStrategy (AddN has no bool kernel), and int32 keeps the serving signature simple.
        return {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(token_ids != self.tokenizer.pad_token_id, tf.int32),
        }

    @property
    def vocabulary(self) -> list[str]:
        return list(self.tokenizer.get_vocabulary())

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "sequence_length": self.sequence_length,
                "lowercase": self.lowercase, "pair": self.pair, "truncation": self.truncation}
