import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.conftest import CHARS, TINY_VOCAB
from tfbert.preprocessing import TextPreprocessor, bucket_lengths, make_dataset, make_training_dataset

ID = {token: i for i, token in enumerate(TINY_VOCAB)}
CLS, SEP, PAD = 1, 2, 0


def features(pre, *texts):
    out = pre(*[tf.constant(t) for t in texts])
    return {k: v.numpy().tolist() for k, v in out.items()}


def test_single_golden(tiny_tokenizer):
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=8)
    out = features(pre, ["很好", "Great!"])
    assert out["token_ids"] == [
        [CLS, ID["很"], ID["好"], SEP, PAD, PAD, PAD, PAD],
        [CLS, ID["great"], ID["!"], SEP, PAD, PAD, PAD, PAD],  # lowercased
    ]
    assert out["segment_ids"] == [[0] * 8, [0] * 8]
    assert out["padding_mask"] == [[1, 1, 1, 1, 0, 0, 0, 0]] * 2
    assert all(v.dtype == tf.int32 for v in pre(tf.constant(["好"])).values())


def test_pair_golden(tiny_tokenizer):
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=10, pair=True)
    out = features(pre, ["很好"], ["推荐"])
    assert out["token_ids"] == [[CLS, ID["很"], ID["好"], SEP, ID["推"], ID["荐"], SEP, PAD, PAD, PAD]]
    assert out["segment_ids"] == [[0, 0, 0, 0, 1, 1, 1, 0, 0, 0]]
    assert out["padding_mask"] == [[1, 1, 1, 1, 1, 1, 1, 0, 0, 0]]


def test_truncation_keeps_cls_and_sep(tiny_tokenizer):
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=5)
    out = features(pre, ["这个手机很好"])
    assert out["token_ids"] == [[CLS, ID["这"], ID["个"], ID["手"], SEP]]
    assert out["padding_mask"] == [[1] * 5]


def test_pair_truncation_is_waterfall(tiny_tokenizer):
    # The first text takes the budget first; the pair gets what is left.
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=7, pair=True)
    out = features(pre, ["这个手机"], ["很好推荐"])
    assert out["token_ids"] == [[CLS, ID["这"], ID["个"], ID["手"], ID["机"], SEP, SEP]]
    assert out["segment_ids"] == [[0, 0, 0, 0, 0, 0, 1]]
    out = features(pre, ["好"], ["这个手机很好"])
    assert out["token_ids"] == [[CLS, ID["好"], SEP, ID["这"], ID["个"], ID["手"], SEP]]
    assert out["segment_ids"] == [[0, 0, 0, 1, 1, 1, 1]]


def test_head_tail_golden(tiny_tokenizer):
    # 5 tokens of text: the first 3 and the last 2; texts that fit are unchanged.
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=7, truncation="head_tail")
    out = features(pre, ["这个手机很好推荐", "这个手机很"])
    assert out["token_ids"] == [
        [CLS, ID["这"], ID["个"], ID["手"], ID["推"], ID["荐"], SEP],
        [CLS, ID["这"], ID["个"], ID["手"], ID["机"], ID["很"], SEP],
    ]
    assert out["padding_mask"] == [[1] * 7] * 2


def test_head_tail_pair_splits_the_budget_by_waterfall(tiny_tokenizer):
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=7, pair=True, truncation="head_tail")
    out = features(pre, ["这个手机很好推荐", "好"], ["很好", "这个手机很好"])
    assert out["token_ids"] == [
        [CLS, ID["这"], ID["个"], ID["推"], ID["荐"], SEP, SEP],  # the first text takes all 4
        [CLS, ID["好"], SEP, ID["这"], ID["个"], ID["好"], SEP],  # the pair gets 3: 2 + 1
    ]
    assert out["segment_ids"] == [[0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 1, 1, 1]]


def test_unknown_truncation_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="--truncation 'middle' is not one of head, head_tail"):
        TextPreprocessor(tiny_tokenizer, 8, truncation="middle")


_HEAD_TAIL: dict[tuple[int, bool], TextPreprocessor] = {}


def _kept(tokens: list[int], share: int) -> list[int]:
    head = (share + 1) // 2
    return tokens[:head] + tokens[len(tokens) - (share - head):]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=CHARS, max_size=30), st.text(alphabet=CHARS, max_size=30)), min_size=1,
                max_size=5), st.sampled_from((4, 5, 7, 16)), st.booleans())
def test_head_tail_keeps_each_texts_first_and_last_tokens(tiny_tokenizer, rows, length, pair):
    # Oracle in plain Python: every CJK char is one token; shares are waterfall; a cut text keeps head + tail.
    key = (length, pair)
    pre = _HEAD_TAIL.get(key) or _HEAD_TAIL.setdefault(key, TextPreprocessor(tiny_tokenizer, length, pair=pair,
                                                                               truncation="head_tail"))
    texts = [tuple(row[: 1 + pair]) for row in rows]
    out = pre(*[tf.constant([t[i] for t in texts]) for i in range(1 + pair)])
    for parts, ids, segments in zip(texts, out["token_ids"].numpy().tolist(), out["segment_ids"].numpy().tolist()):
        remaining, expected, expected_segments = length - 1 - len(parts), [CLS], [0]
        for segment, part in enumerate(parts):
            share = min(len(part), remaining)
            expected += _kept([ID[c] for c in part], share) + [SEP]
            expected_segments += [segment] * (share + 1)
            remaining -= share
        pad = length - len(expected)
        assert ids == expected + [PAD] * pad
        assert segments == expected_segments + [0] * pad


_PREPROCESSORS: dict[int, TextPreprocessor] = {}  # one per length: building one traces a graph


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=CHARS, min_size=0, max_size=40), min_size=1, max_size=6), st.integers(3, 24))
def test_mask_is_ones_then_zeros(tiny_tokenizer, texts, length):
    pre = _PREPROCESSORS.get(length) or _PREPROCESSORS.setdefault(length, TextPreprocessor(tiny_tokenizer, length))
    out = pre(tf.constant(texts))
    for text, mask, ids in zip(texts, out["padding_mask"].numpy(), out["token_ids"].numpy()):
        n = int(mask.sum())
        assert n == min(len(text) + 2, length)  # every CJK char is one token
        assert mask.tolist() == [1] * n + [0] * (length - n)
        assert ids[0] == CLS and ids[n - 1] == SEP and (ids[n:] == PAD).all()


def test_bucket_lengths():
    assert bucket_lengths(128, step=16) == [16, 32, 48, 64, 80, 96, 112, 128]
    assert bucket_lengths(40, step=16) == [16, 32, 40]
    assert bucket_lengths(30) == [4, 8, 12, 16, 20, 24, 28, 30]  # the default step, 4
    assert bucket_lengths(6) == [4, 6]
    assert bucket_lengths(4) == [4]


def _check_batches(pre, texts, batches):
    seen = []
    for feats, y in batches:
        width = feats["token_ids"].shape[1]
        longest = int(feats["padding_mask"].numpy().sum(axis=1).max())
        assert width == min(b for b in bucket_lengths(64) if b >= longest)
        for row_ids, label in zip(feats["token_ids"].numpy(), y.numpy()):
            expected = pre(tf.constant([texts[label]]))["token_ids"].numpy()[0]
            assert (row_ids == expected[:width]).all() and not expected[width:].any()
        seen += y.numpy().tolist()
    return seen


def test_bucketed_dataset_keeps_every_example_once_and_trims(tiny_tokenizer):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(CHARS, size=int(n))) for n in rng.integers(1, 60, size=100)]
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=64)
    assert sorted(_check_batches(pre, texts, make_dataset(pre, texts, np.arange(100), batch_size=8))) == list(range(100))


@pytest.mark.parametrize("pairs", [None, ["一般", "很差"]])
def test_dataset_without_labels_gives_features(tiny_tokenizer, pairs):
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=16, pair=pairs is not None)
    (features,) = list(make_dataset(pre, ["很好", "不好"], pairs=pairs, batch_size=2, bucket=False))
    expected = pre(tf.constant(["很好", "不好"]), *([tf.constant(pairs)] if pairs else []))
    for name in features:
        np.testing.assert_array_equal(features[name], expected[name])


def test_training_stream_is_seeded_epochs(tiny_tokenizer):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(CHARS, size=int(n))) for n in rng.integers(1, 60, size=100)]
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=64)
    ds, steps = make_training_dataset(pre, texts, np.arange(100), batch_size=8, seed=1)
    epochs = [_check_batches(pre, texts, ds.skip(e * steps).take(steps)) for e in range(3)]
    assert all(sorted(e) == list(range(100)) for e in epochs)  # each epoch: every example once
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    again, _ = make_training_dataset(pre, texts, np.arange(100), batch_size=8, seed=1)
    assert _check_batches(pre, texts, again.skip(steps).take(steps)) == epochs[1]  # order = f(seed, epoch)
    other, _ = make_training_dataset(pre, texts, np.arange(100), batch_size=8, seed=2)
    assert _check_batches(pre, texts, other.take(steps)) != epochs[0]


def test_training_batches_are_full_length_sorted_and_shuffled(tiny_tokenizer):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(CHARS, size=int(n))) for n in rng.integers(1, 60, size=100)]
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=64)
    ds, steps = make_training_dataset(pre, texts, np.arange(100), batch_size=8, seed=1)
    assert steps == 13  # ceil(100 / 8)
    for e in range(2):
        batches = [(f["padding_mask"].numpy().sum(axis=1), f["token_ids"].shape[1]) for f, _ in ds.skip(e * steps).take(steps)]
        sizes = sorted(len(real) for real, _ in batches)
        assert sizes == [4] + [8] * 12  # one short batch, of the shortest texts
        short = next(real for real, _ in batches if len(real) == 4)
        assert short.max() <= min(real.min() for real, _ in batches if len(real) == 8)
        # Cut from one sorted epoch: two batches' length ranges never interleave.
        spans = sorted((real.min(), real.max()) for real, _ in batches)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))
        widths = [width for _, width in batches]
        assert widths != sorted(widths) and widths != sorted(widths, reverse=True)  # batch order is shuffled


def test_pipelines_run_without_autotune(tiny_tokenizer):
    # Autotuned iterators stall on teardown in TF 2.21 (see `without_autotune`):
    # every pipeline fit/evaluate/predict iterate must have it off, also after
    # further transformations such as pretraining's masking.
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=16)
    texts = ["很好", "不好", "一般般吧"]
    finite = make_dataset(pre, texts, np.arange(3), batch_size=2)
    endless, _ = make_training_dataset(pre, texts, np.arange(3), batch_size=2)
    for ds in (finite, endless, endless.map(lambda x, y: (x, y)).prefetch(2)):
        assert ds.options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is not False  # the TF default this changes


def _many_characters(count):
    """Texts using `count` distinct CJK characters, character i appearing count - i times, plus Latin words."""
    chars = [chr(0x4E00 + 7 * i) for i in range(count)]  # spread over the block: common and rare ones alike
    stream = "".join(c * (count - i) for i, c in enumerate(chars))
    texts = [stream[i:i + 40] + " thinkpad battery!" for i in range(0, len(stream), 40)]
    return chars, texts


def test_learned_vocabulary_keeps_every_character():
    from tfbert.preprocessing import RESERVED_TOKENS, learn_vocabulary

    # keras-hub's compute_word_piece_vocabulary keeps only the 1000 most frequent characters.
    chars, texts = _many_characters(1200)
    vocab = learn_vocabulary(texts, vocabulary_size=8000)
    assert vocab[:len(RESERVED_TOKENS)] == RESERVED_TOKENS and len(set(vocab)) == len(vocab) <= 8000
    assert set(chars) <= set(vocab)
    # BERT splits every CJK character and punctuation mark off, so "##好" or "##!" could never be produced.
    assert not [t for t in vocab if t.startswith("##") and len(t) == 3 and (0x4E00 <= ord(t[2]) <= 0x9FFF or t[2] == "!")]
    assert "thinkpad" in vocab and "battery" in vocab  # frequent Latin words are still learned whole
    assert _unknown_count(vocab, texts) == 0


def _unknown_count(vocab, texts):
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    ids = tokenizer(tf.constant(texts))
    ids = np.concatenate([np.asarray(row) for row in (ids.to_list() if hasattr(ids, "to_list") else ids)])
    return int((ids == tokenizer.token_to_id("[UNK]")).sum())


def test_learned_vocabulary_drops_the_rarest_characters_at_its_bound():
    from tfbert.preprocessing import RESERVED_TOKENS, learn_vocabulary

    chars, texts = _many_characters(300)
    vocab = learn_vocabulary(texts, vocabulary_size=120)
    assert len(vocab) == 120 and vocab[:len(RESERVED_TOKENS)] == RESERVED_TOKENS
    kept = [c for c in chars if c in vocab]
    assert kept == chars[:len(kept)] and len(kept) >= 60  # the most frequent ones
    # Sub-words went first: the Latin words are spelled letter by letter, never [UNK].
    assert "thinkpad" not in vocab and "##a" in vocab
    assert _unknown_count(vocab, [" thinkpad battery!"]) == 0


@pytest.mark.parametrize("epoch_steps", [None, 3])  # 3 of 5: a multi-worker shard's epoch
def test_a_stream_resumed_at_an_epoch_continues_the_uninterrupted_one(tiny_tokenizer, epoch_steps):
    texts = ["很好", "不好", "一般般吧", "还行", "太差了吧这个", "好"] * 3
    pre = TextPreprocessor(tiny_tokenizer, sequence_length=16)
    args = dict(batch_size=4, seed=3, epoch_steps=epoch_steps)
    whole, steps = make_training_dataset(pre, texts, np.arange(18), **args)
    assert steps == (epoch_steps or 5)
    resumed, _ = make_training_dataset(pre, texts, np.arange(18), first_epoch=2, **args)
    expected = [y.numpy().tolist() for _, y in whole.skip(2 * steps).take(steps)]
    assert [y.numpy().tolist() for _, y in resumed.take(steps)] == expected
