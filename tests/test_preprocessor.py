import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.conftest import CHARS, TINY_VOCAB
from tfbert.preprocessor import TextPreprocessor

ID = {token: i for i, token in enumerate(TINY_VOCAB)}
CLS, SEP, PAD = 1, 2, 0
_HEAD_TAIL: dict[tuple[int, bool], TextPreprocessor] = {}
_PREPROCESSORS: dict[int, TextPreprocessor] = {}  # one per length: building one traces a graph


def features(pre, *texts):
    out = pre(*[tf.constant(t) for t in texts])
    return {k: v.numpy().tolist() for k, v in out.items()}


def test_single_golden(tiny_tokenizer):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=8)
    out = features(pre, ["很好", "Great!"])
    assert out["token_ids"] == [
        [CLS, ID["很"], ID["好"], SEP, PAD, PAD, PAD, PAD],
        [CLS, ID["great"], ID["!"], SEP, PAD, PAD, PAD, PAD],  # lowercased
    ]
    assert out["segment_ids"] == [[0] * 8, [0] * 8]
    assert out["padding_mask"] == [[1, 1, 1, 1, 0, 0, 0, 0]] * 2
    assert all(v.dtype == tf.int32 for v in pre(tf.constant(["好"])).values())


def test_pair_golden(tiny_tokenizer):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=10, pair=True)
    out = features(pre, ["很好"], ["推荐"])
    assert out["token_ids"] == [[CLS, ID["很"], ID["好"], SEP, ID["推"], ID["荐"], SEP, PAD, PAD, PAD]]
    assert out["segment_ids"] == [[0, 0, 0, 0, 1, 1, 1, 0, 0, 0]]
    assert out["padding_mask"] == [[1, 1, 1, 1, 1, 1, 1, 0, 0, 0]]


def test_truncation_keeps_cls_and_sep(tiny_tokenizer):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=5)
    out = features(pre, ["这个手机很好"])
    assert out["token_ids"] == [[CLS, ID["这"], ID["个"], ID["手"], SEP]]
    assert out["padding_mask"] == [[1] * 5]


def test_pair_truncation_is_waterfall(tiny_tokenizer):
    # The first text takes the budget first; the pair gets what is left.
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=7, pair=True)
    out = features(pre, ["这个手机"], ["很好推荐"])
    assert out["token_ids"] == [[CLS, ID["这"], ID["个"], ID["手"], ID["机"], SEP, SEP]]
    assert out["segment_ids"] == [[0, 0, 0, 0, 0, 0, 1]]
    out = features(pre, ["好"], ["这个手机很好"])
    assert out["token_ids"] == [[CLS, ID["好"], SEP, ID["这"], ID["个"], ID["手"], SEP]]
    assert out["segment_ids"] == [[0, 0, 0, 1, 1, 1, 1]]


def test_head_tail_golden(tiny_tokenizer):
    # 5 tokens of text: the first 3 and the last 2; texts that fit are unchanged.
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=7, truncation="head_tail")
    out = features(pre, ["这个手机很好推荐", "这个手机很"])
    assert out["token_ids"] == [
        [CLS, ID["这"], ID["个"], ID["手"], ID["推"], ID["荐"], SEP],
        [CLS, ID["这"], ID["个"], ID["手"], ID["机"], ID["很"], SEP],
    ]
    assert out["padding_mask"] == [[1] * 7] * 2


def test_head_tail_pair_splits_the_budget_by_waterfall(tiny_tokenizer):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=7, pair=True, truncation="head_tail")
    out = features(pre, ["这个手机很好推荐", "好"], ["很好", "这个手机很好"])
    assert out["token_ids"] == [
        [CLS, ID["这"], ID["个"], ID["推"], ID["荐"], SEP, SEP],  # the first text takes all 4
        [CLS, ID["好"], SEP, ID["这"], ID["个"], ID["好"], SEP],  # the pair gets 3: 2 + 1
    ]
    assert out["segment_ids"] == [[0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 1, 1, 1]]


def test_unknown_truncation_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="truncation 'middle' is not one of head, head_tail"):
        TextPreprocessor.from_tokenizer(tiny_tokenizer, 8, truncation="middle")


def _kept(tokens: list[int], share: int) -> list[int]:
    head = (share + 1) // 2
    return tokens[:head] + tokens[len(tokens) - (share - head):]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet=CHARS, max_size=30), st.text(alphabet=CHARS, max_size=30)), min_size=1,
                max_size=5), st.sampled_from((4, 5, 7, 16)), st.booleans())
def test_head_tail_keeps_each_texts_first_and_last_tokens(tiny_tokenizer, rows, length, pair):
    # Oracle in plain Python: every CJK char is one token; shares are waterfall; a cut text keeps head + tail.
    key = (length, pair)
    pre = _HEAD_TAIL.get(key) or _HEAD_TAIL.setdefault(key, TextPreprocessor.from_tokenizer(tiny_tokenizer, length, pair=pair,
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


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=CHARS, min_size=0, max_size=40), min_size=1, max_size=6), st.integers(3, 24))
def test_mask_is_ones_then_zeros(tiny_tokenizer, texts, length):
    pre = _PREPROCESSORS.get(length) or _PREPROCESSORS.setdefault(length, TextPreprocessor.from_tokenizer(tiny_tokenizer, length))
    out = pre(tf.constant(texts))
    for text, mask, ids in zip(texts, out["padding_mask"].numpy(), out["token_ids"].numpy()):
        n = int(mask.sum())
        assert n == min(len(text) + 2, length)  # every CJK char is one token
        assert mask.tolist() == [1] * n + [0] * (length - n)
        assert ids[0] == CLS and ids[n - 1] == SEP and (ids[n:] == PAD).all()


def test_config_round_trip_gives_the_same_inputs(tiny_tokenizer):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, 9, pair=True, truncation="head_tail")
    again = TextPreprocessor.from_config(pre.get_config())
    texts = ["这个手机很好推荐给大家", "差"], ["快递很快", "酒店服务质量很差的"]
    assert features(again, *texts) == features(pre, *texts)
    assert (again.sequence_length, again.pair, again.truncation) == (9, True, "head_tail")


def test_preprocessor_maps_over_a_dataset(tiny_tokenizer):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, 8)
    ds = tf.data.Dataset.from_tensor_slices(["很好", "差"]).batch(2).map(pre)
    batch = next(iter(ds))
    assert batch["padding_mask"].numpy().tolist() == features(pre, ["很好", "差"])["padding_mask"]
