"""tf.data pipelines: tokenize once, cache, bucket by length, batch, shard.

Reading files is `tfbert.data`'s job; this module turns texts (and targets)
into batches of `token_ids` / `segment_ids` / `padding_mask`.

With bucketing, each batch is padded only to the smallest multiple of
`BUCKET_STEP` tokens that holds its longest text, which roughly halves the
compute on the default corpus. Results do not change: the model ignores
padding (attention, pooling and head are all masked).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfbert.preprocessor import TextPreprocessor

BUCKET_STEP = 4  # tokens between padded lengths (docs/performance.md)


def bucket_lengths(max_seq_length: int, step: int = BUCKET_STEP) -> list[int]:
    """Padded lengths batches are trimmed to: multiples of `step`, then `max_seq_length`."""
    return sorted({*range(step, max_seq_length, step), max_seq_length})


def _trim_to_bucket(features: dict[str, tf.Tensor], lengths: tf.Tensor) -> dict[str, tf.Tensor]:
    """Cut a padded batch down to the smallest bucket that holds its longest row."""
    longest = tf.reduce_max(tf.reduce_sum(features["padding_mask"], axis=1))
    target = tf.gather(lengths, tf.searchsorted(lengths, tf.reshape(longest, [1]), side="left"))[0]
    return {name: value[:, :target] for name, value in features.items()}


def without_autotune(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data autotuning off; the pipeline then uses one thread per core and one-batch prefetch.

    Destroying an autotuned iterator waits for autotune's model thread,
    which sleeps in doubling rounds up to 60 s, so every iterator that dies
    early (each validation pass, `evaluate`, the end of `fit`) could block
    for seconds (docs/design.md). Nothing here needs tuning: tokenization
    runs once into a cache, and the model is the bottleneck.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _tokenized(preprocessor: TextPreprocessor, texts, labels, pairs) -> tf.data.Dataset:
    """Examples tokenized once, batched and in parallel (one op call per 256 texts), then cached."""
    inputs = (list(texts),) if pairs is None else (list(texts), list(pairs))
    if labels is None:  # tf.data passes the text (and pair) as separate arguments
        ds, tokenize = tf.data.Dataset.from_tensor_slices(inputs), lambda *x: preprocessor(*x)
    else:
        ds, tokenize = tf.data.Dataset.from_tensor_slices((inputs, labels)), lambda x, y: (preprocessor(*x), y)
    return without_autotune(ds).batch(256).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()


def _batched(ds: tf.data.Dataset, batch_size: int, sequence_length: int, bucket: bool) -> tf.data.Dataset:
    """Batch; with `bucket`, group similar lengths and trim each batch to its bucket."""
    if not bucket:
        return ds.batch(batch_size)
    lengths = tf.constant(bucket_lengths(sequence_length), tf.int32)

    def key(features, *_):
        n = tf.reduce_sum(features["padding_mask"])
        return tf.cast(tf.searchsorted(lengths, tf.reshape(n, [1]), side="left")[0], tf.int64)

    def reduce(_, window):
        return window.batch(batch_size).map(lambda f, *y: (_trim_to_bucket(f, lengths), *y) if y else _trim_to_bucket(f, lengths))

    return ds.group_by_window(key_func=key, reduce_func=reduce, window_size=batch_size)


def make_dataset(
    preprocessor: TextPreprocessor,
    texts: Sequence[str],
    labels: np.ndarray | None = None,
    pairs: Sequence[str] | None = None,
    batch_size: int = 32,
    bucket: bool = True,
) -> tf.data.Dataset:
    """A finite, unshuffled pipeline of `(features, labels)` batches (or features only): for evaluation.

    With `bucket=True` examples of similar length are batched together
    (`group_by_window`) and each batch is padded only to its bucket
    (multiples of `BUCKET_STEP` tokens), which roughly halves the compute on the default
    corpus. Results do not change: the model ignores padding (attention,
    pooling and head are all masked). Bucketing reorders examples; labels
    travel with their features.
    """
    ds = _tokenized(preprocessor, texts, labels, pairs)
    return _batched(ds, batch_size, preprocessor.sequence_length, bucket).prefetch(tf.data.AUTOTUNE)


def _length_sorted_batches(features, labels, batch_size: int, lengths: tf.Tensor, key: tf.Tensor) -> tf.data.Dataset:
    """One epoch's (shuffled) examples as full batches of similar length, in a random order.

    The examples are sorted by their number of real tokens (stable, so equal
    lengths keep their shuffled order), cut into consecutive batches of
    `batch_size` counted from the longest end, so the one short batch holds
    the shortest texts, and each batch is trimmed to its bucket. The batches
    then come in the order `stateless_shuffle(range(count), key)`: training
    sees lengths mixed, not a short-to-long sweep.
    """
    by_length = tf.argsort(tf.reduce_sum(features["padding_mask"], axis=1), stable=True)
    features, labels = tf.nest.map_structure(lambda t: tf.gather(t, by_length), (features, labels))
    n = tf.shape(by_length)[0]
    count = (n + batch_size - 1) // batch_size

    def take(b):
        end = n - b * batch_size
        start = tf.maximum(end - batch_size, 0)
        part_features, part_labels = tf.nest.map_structure(lambda t: t[start:end], (features, labels))
        return _trim_to_bucket(part_features, lengths), part_labels

    order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=key)
    return tf.data.Dataset.from_tensor_slices(order).map(take)


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """How `make_training_dataset` cuts its stream into epochs and batches.

    Args:
        batch_size: int. Examples per batch (per worker under multi-worker training).
        seed: int. Epoch `e` is shuffled with `[seed, e]`.
        bucket: bool. Length-sorted batches padded to their bucket, else fixed-length batches.
        first_epoch: int. The epoch the stream starts at (a resumed run's).
        epoch_steps: int or None. Batches per epoch; None for all of them.
    """

    batch_size: int = 32
    seed: int = 0
    bucket: bool = True
    first_epoch: int = 0
    epoch_steps: int | None = None


def make_training_dataset(
    preprocessor: TextPreprocessor,
    texts: Sequence[str],
    labels: np.ndarray,
    pairs: Sequence[str] | None = None,
    plan: EpochPlan = EpochPlan(),
) -> tuple[tf.data.Dataset, int]:
    """An endless stream of shuffled epochs from `plan.first_epoch` on, and the number of batches in one epoch.

    Epoch `e` is the cached examples in the order
    `stateless_shuffle(range(n), seed=[seed, e])`. Without `bucket` they are
    batched in that order. With `bucket` the epoch is sorted by length and cut
    into batches of similar-length texts, each padded only to its bucket, and
    the batches come in a random order drawn from (seed, e)
    (`_length_sorted_batches`). Sorting the whole epoch, rather than
    `group_by_window` per bucket as `make_dataset` does, makes every batch
    but one full, so later epochs bring no new (batch, length) shapes to
    compile.

    The order depends only on the seed and the epoch number, not on how
    many times the pipeline was iterated before, so a run under
    MirroredStrategy sees exactly the batches of a single-device run, and a
    run resumed at `first_epoch` sees the epochs it would have seen
    uninterrupted. Every epoch has ceil(n / batch_size) batches, or its
    first `epoch_steps`: under MultiWorkerMirroredStrategy every worker must
    run the same number of steps per epoch.
    """
    cached = _tokenized(preprocessor, texts, labels, pairs)
    n = len(texts)
    cached.reduce(0, lambda count, _: count + 1)  # fills the cache
    lengths = tf.constant(bucket_lengths(preprocessor.sequence_length), tf.int32)
    batch_size = plan.batch_size
    steps = plan.epoch_steps or -(-n // batch_size)

    def epoch(e):
        key = tf.stack([tf.cast(plan.seed, tf.int64), e])
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=key)
        everything = cached.batch(n)  # one element: all n examples, from memory
        shuffled = everything.map(lambda f, y: tf.nest.map_structure(lambda t: tf.gather(t, order), (f, y)))
        if not plan.bucket:
            return shuffled.unbatch().batch(batch_size).take(steps)
        batch_key = tf.random.experimental.stateless_fold_in(key, 1)  # not the example order's key
        return shuffled.flat_map(lambda f, y: _length_sorted_batches(f, y, batch_size, lengths, batch_key)).take(steps)

    # Options set inside `epoch` do not reach this outer pipeline: set them again.
    stream = tf.data.Dataset.counter(start=plan.first_epoch).flat_map(epoch).prefetch(tf.data.AUTOTUNE)
    return without_autotune(stream), steps


def with_known_length(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Count the batches once (bucketing makes the count data-dependent) and declare it to Keras."""
    count = int(ds.reduce(0, lambda n, _: n + 1))
    return ds.apply(tf.data.experimental.assert_cardinality(count))


def without_auto_shard(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.distribute's auto-sharding off: under multi-worker training each worker feeds its own shard."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


def predict_by_index(forward, dataset: tf.data.Dataset, num_examples: int, width: int) -> np.ndarray:
    """(num_examples, width) outputs of `forward` over `(features, example_index)` batches, rows in index order.

    Length bucketing reorders the examples, which is why each batch carries its indices.
    """
    outputs = np.zeros((num_examples, width), dtype=np.float32)
    for features, index in dataset:
        outputs[index.numpy()] = np.asarray(forward(features))
    return outputs


@dataclasses.dataclass(frozen=True)
class Shard:
    """One worker's part of the training examples.

    Args:
        indices: the examples this worker trains on.
        batch_size: its per-worker batch (the global batch over the workers).
        epoch_steps: steps per epoch, the same on every worker; None on a single worker (every batch).
    """

    indices: range
    batch_size: int
    epoch_steps: int | None


def worker_shard(num_examples: int, global_batch_size: int, count: int, index: int) -> Shard:
    """Worker `index` of `count`: every count-th example from `index` on.

    Examples are sharded, not batches: each worker tokenizes and buckets
    only its share. Shards differ in size by at most one example; every
    worker runs the steps the smallest shard fills, so all stay in step.
    """
    batch = global_batch_size // count
    if count == 1:
        return Shard(range(num_examples), batch, None)
    return Shard(range(index, num_examples, count), batch, max(1, (num_examples // count) // batch))
