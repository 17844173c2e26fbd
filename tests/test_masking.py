import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.conftest import TINY_VOCAB, synthetic_rows
from tfbert.preprocessor import TextPreprocessor
from tfbert import masking


def test_masking_follows_bert(tiny_tokenizer):
    import tensorflow as tf

    from tfbert.preprocessor import TextPreprocessor

    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=32)
    texts = [row["text"] for row in synthetic_rows(400, seed=3)]
    features = pre(tf.constant(texts))
    ds = tf.data.Dataset.from_tensors((features, tf.zeros(len(texts))))
    x, mask_ids, weights = next(iter(masking.masked_batches(ds, masking.masker_for(pre, 0.15))))
    original, masked = features["token_ids"].numpy(), x["token_ids"].numpy()
    positions, mask_ids, weights = x["mask_positions"].numpy(), mask_ids.numpy(), weights.numpy()
    lengths = features["padding_mask"].numpy().sum(axis=1)
    selected = weights > 0
    rows = np.nonzero(selected)[0]
    cols = positions[selected]
    # Never [CLS] (position 0), [SEP] (last real position) or padding; labels are the original tokens.
    assert (cols > 0).all() and (cols < lengths[rows] - 1).all()
    np.testing.assert_array_equal(mask_ids[selected], original[rows, cols])
    # Tokens that were not selected are untouched, padding included.
    untouched = np.ones_like(original, dtype=bool)
    untouched[rows, cols] = False
    np.testing.assert_array_equal(masked[untouched], original[untouched])
    np.testing.assert_array_equal(x["padding_mask"].numpy(), features["padding_mask"].numpy())
    # Exactly ceil(15%) of each text's maskable tokens (tf-text rounds up, in float32) ...
    expected = np.ceil((lengths - 2).astype(np.float32) * np.float32(0.15)).astype(int)
    np.testing.assert_array_equal(selected.sum(axis=1), expected)
    # ... most of them replaced by [MASK] (80%), the rest random (10%) or kept (10%).
    share_mask = (masked[rows, cols] == TINY_VOCAB.index("[MASK]")).mean()
    assert 0.7 < share_mask < 0.9, share_mask


def test_word_continuations_golden(tiny_tokenizer):
    from tfbert.preprocessor import TextPreprocessor

    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=16)
    segmented = {"我们喜欢这个手机bc": ["我们", "喜欢", "这个", "手机", "bc"],
                 "服务很好": ["服务很好"],  # a four-character word
                 "很满意": ["很", "满意"],
                 "喜欢极了": ["喜欢", "极了"]}  # "极" is [UNK] here: a word that no longer matches falls apart
    flags = masking.word_continuations(pre, list(segmented), segment=segmented.__getitem__)
    # [CLS] 我 们 喜 欢 这 个 手 机 b ##c [SEP]: each two-character word is one word, WordPiece's "##c" continues "b".
    np.testing.assert_array_equal(flags[0], [0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(flags[1], [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(flags[2], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(flags[3], [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def test_jieba_segments_offline():
    assert masking.jieba_words("我们喜欢这个手机") == ["我们", "喜欢", "这个", "手机"]


def _whole_word_masker(vocabulary_size=50, rate=0.15, slots=8):
    return masking.WholeWordMaskGenerator(vocabulary_size=vocabulary_size, mask_rate=rate, selection_length=slots,
                                              mask_token_id=4, unselectable_token_ids=[1, 2, 0])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_whole_word_masking_invariants(data):
    import tensorflow as tf

    batch, length = data.draw(st.integers(1, 6)), data.draw(st.integers(3, 24))
    rate = data.draw(st.sampled_from([0.15, 0.3, 0.45]))
    # Up to twice the length: length-bucketed batches are often shorter than the mask slots.
    slots = data.draw(st.integers(int(np.ceil(rate * length)), 2 * length))
    lengths = [data.draw(st.integers(2, length)) for _ in range(batch)]
    ids = np.zeros((batch, length), np.int32)
    for row, n in enumerate(lengths):
        ids[row, 0], ids[row, n - 1] = 1, 2
        ids[row, 1:n - 1] = data.draw(st.lists(st.integers(5, 49), min_size=n - 2, max_size=n - 2))
    continuations = np.array(data.draw(st.lists(st.lists(st.integers(0, 1), min_size=length, max_size=length),
                                                min_size=batch, max_size=batch)), np.int8)
    tf.random.set_seed(data.draw(st.integers(0, 1000)))
    out = {k: v.numpy() for k, v in _whole_word_masker(rate=rate, slots=slots)(tf.constant(ids), tf.constant(continuations)).items()}
    for row, n in enumerate(lengths):
        real = out["mask_weights"][row] > 0
        positions = out["mask_positions"][row][real]
        selected = np.zeros(length, bool)
        selected[positions] = True
        # Real predictions come first, ascending, inside the text, never [CLS]/[SEP]/padding; labels are the originals.
        assert real.tolist() == sorted(real.tolist(), reverse=True)
        assert (np.diff(positions) > 0).all() and (positions >= 1).all() and (positions <= n - 2).all()
        np.testing.assert_array_equal(out["mask_ids"][row][real], ids[row, positions])
        np.testing.assert_array_equal(out["token_ids"][row][~selected], ids[row][~selected])
        # Never more than the single-token masker's count ...
        budget = int(np.ceil(np.float32(n - 2) * np.float32(rate)))
        assert len(positions) <= budget
        # ... and words are taken whole: a continuing token is selected exactly when the token before it is.
        for t in range(2, n - 1):
            if continuations[row, t]:
                assert selected[t] == selected[t - 1], (row, t)
        if not continuations[row, 2:n - 1].any():  # single-token words: exactly the single-token count
            assert len(positions) == budget


def test_whole_word_masking_rates():
    import tensorflow as tf

    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.ones((2000, 1)), rng.integers(5, 50, (2000, 40)), np.full((2000, 1), 2)], axis=1).astype(np.int32)
    continuations = np.zeros_like(ids, np.int8)
    continuations[:, 2:41:2] = 1  # twenty two-token words per text; budget ceil(0.15 * 40) = 6 tokens = 3 words
    out = _whole_word_masker(slots=9)(tf.constant(ids), tf.constant(continuations))
    weights, positions, masked = out["mask_weights"].numpy(), out["mask_positions"].numpy(), out["token_ids"].numpy()
    assert (weights.sum(axis=1) == 6).all()
    rows = np.repeat(np.arange(2000), 6)
    cols = positions[weights > 0]
    changed = masked[rows, cols]
    assert abs((changed == 4).mean() - 0.8) < 0.02
    kept = (changed == ids[rows, cols]).mean()  # 10% kept, plus random draws that hit the same token
    assert abs(kept - (0.1 + 0.1 / 50)) < 0.015
    # Every word is equally likely to be chosen: each position is selected about 6/40 of the time.
    per_position = np.bincount(cols, minlength=42)[1:41] / 2000
    assert np.abs(per_position - 0.15).max() < 0.04
