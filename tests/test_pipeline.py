import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.conftest import CHARS, TINY_VOCAB
from tfbert.pipeline import EpochPlan, bucket_lengths, make_dataset, make_training_dataset
from tfbert.preprocessor import TextPreprocessor





























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
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=64)
    assert sorted(_check_batches(pre, texts, make_dataset(pre, texts, np.arange(100), batch_size=8))) == list(range(100))


@pytest.mark.parametrize("pairs", [None, ["一般", "很差"]])
def test_dataset_without_labels_gives_features(tiny_tokenizer, pairs):
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=16, pair=pairs is not None)
    (features,) = list(make_dataset(pre, ["很好", "不好"], pairs=pairs, batch_size=2, bucket=False))
    expected = pre(tf.constant(["很好", "不好"]), *([tf.constant(pairs)] if pairs else []))
    for name in features:
        np.testing.assert_array_equal(features[name], expected[name])


def test_training_stream_is_seeded_epochs(tiny_tokenizer):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(CHARS, size=int(n))) for n in rng.integers(1, 60, size=100)]
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=64)
    ds, steps = make_training_dataset(pre, texts, np.arange(100), plan=EpochPlan(8, 1))
    epochs = [_check_batches(pre, texts, ds.skip(e * steps).take(steps)) for e in range(3)]
    assert all(sorted(e) == list(range(100)) for e in epochs)  # each epoch: every example once
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    again, _ = make_training_dataset(pre, texts, np.arange(100), plan=EpochPlan(8, 1))
    assert _check_batches(pre, texts, again.skip(steps).take(steps)) == epochs[1]  # order = f(seed, epoch)
    other, _ = make_training_dataset(pre, texts, np.arange(100), plan=EpochPlan(8, 2))
    assert _check_batches(pre, texts, other.take(steps)) != epochs[0]


def test_training_batches_are_full_length_sorted_and_shuffled(tiny_tokenizer):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(CHARS, size=int(n))) for n in rng.integers(1, 60, size=100)]
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=64)
    ds, steps = make_training_dataset(pre, texts, np.arange(100), plan=EpochPlan(8, 1))
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
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=16)
    texts = ["很好", "不好", "一般般吧"]
    finite = make_dataset(pre, texts, np.arange(3), batch_size=2)
    endless, _ = make_training_dataset(pre, texts, np.arange(3), plan=EpochPlan(2))
    for ds in (finite, endless, endless.map(lambda x, y: (x, y)).prefetch(2)):
        assert ds.options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is not False  # the TF default this changes










@pytest.mark.parametrize("epoch_steps", [None, 3])  # 3 of 5: a multi-worker shard's epoch
def test_a_stream_resumed_at_an_epoch_continues_the_uninterrupted_one(tiny_tokenizer, epoch_steps):
    texts = ["很好", "不好", "一般般吧", "还行", "太差了吧这个", "好"] * 3
    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, sequence_length=16)
    whole, steps = make_training_dataset(pre, texts, np.arange(18), plan=EpochPlan(4, 3, epoch_steps=epoch_steps))
    assert steps == (epoch_steps or 5)
    resumed, _ = make_training_dataset(pre, texts, np.arange(18),
                                       plan=EpochPlan(4, 3, first_epoch=2, epoch_steps=epoch_steps))
    expected = [y.numpy().tolist() for _, y in whole.skip(2 * steps).take(steps)]
    assert [y.numpy().tolist() for _, y in resumed.take(steps)] == expected
