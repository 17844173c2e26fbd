import re

import keras
import numpy as np
import pytest

from tests.conftest import TINY_VOCAB
from tfbert.config import ModelConfig
from tfbert.model import build_backbone, build_classifier
from tfbert.optimization import WarmupLinearDecay, build_optimizer


@pytest.mark.parametrize("step,expected", [(0, 0.0), (5, 0.5e-3), (10, 1e-3), (55, 0.5e-3), (100, 0.0), (150, 0.0)])
def test_schedule_values(step, expected):
    schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_schedule_round_trip():
    schedule = WarmupLinearDecay(2e-5, 1000, 100)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(again(550)) == pytest.approx(float(schedule(550)))


def test_weight_decay_skips_layer_norm_and_biases():
    model = build_classifier(build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16), len(TINY_VOCAB), 16), 1, "sigmoid")
    optimizer = build_optimizer(1e-3, 10, 0.1, 0.01)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    skipped = {v.path for v in model.trainable_variables} - decayed
    assert skipped and all(p.rsplit("/", 1)[-1] in {"gamma", "beta", "bias"} for p in skipped)
    assert all(p.rsplit("/", 1)[-1] in {"kernel", "embeddings", "reverse_embeddings"} for p in decayed)
    assert any("layer_norm" in p or "norm" in p for p in skipped)
    assert optimizer.clip_global_norm == 1.0 and optimizer.global_clipnorm is None  # clipped after all-reduce


def test_clipping_matches_keras_global_clipnorm_on_one_device():
    import tensorflow as tf

    from tfbert.keras_compat import AdamW

    def step(optimizer):
        keras.utils.set_random_seed(0)
        v = keras.Variable(np.ones((3,), np.float32))
        optimizer.apply_gradients([(tf.constant([30.0, -40.0, 0.0]), v)])
        return np.asarray(v)

    ours = step(AdamW(learning_rate=0.1, clip_global_norm=1.0, weight_decay=0.0))
    theirs = step(keras.optimizers.AdamW(learning_rate=0.1, global_clipnorm=1.0, weight_decay=0.0))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def _adamw_steps(optimizer, densify=False, steps=4):
    """Variables after `steps` AdamW updates with fixed random gradients; the embedding's arrive as IndexedSlices."""
    import tensorflow as tf

    from tfbert.optimization import NO_DECAY_NAMES

    shapes = {"kernel": (30, 20), "bias": (20,), "gamma": (20,), "embeddings": (100, 8)}
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(s).astype(np.float32), name=n) for n, s in shapes.items()]
    start = [np.asarray(v) for v in variables]
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    for _ in range(steps):
        grads = [tf.constant(rng.standard_normal(s).astype(np.float32)) for s in shapes.values()]
        # An embedding lookup's gradient: one slice per token, so a repeated token repeats its row (3 here).
        grads[-1] = tf.IndexedSlices(grads[-1][:5], tf.constant([0, 3, 3, 50, 99]), tf.constant(shapes["embeddings"]))
        if densify:
            grads[-1] = tf.convert_to_tensor(grads[-1])  # rows summed: the gradient Adam is defined on
        optimizer.apply_gradients(zip(grads, variables))
    return dict(zip(shapes, start)), {name: np.asarray(v) for name, v in zip(shapes, variables)}


def test_fused_update_matches_keras_adamw():
    """ResourceApplyAdam + folded weight decay == keras.optimizers.AdamW: decay exclusions, schedule, sparse grads."""
    from tfbert.keras_compat import AdamW

    def optimizers():
        schedule = WarmupLinearDecay(0.05, total_steps=10, warmup_steps=2)
        return (AdamW(learning_rate=schedule, weight_decay=0.1, clip_global_norm=None, epsilon=1e-6),
                keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.1, epsilon=1e-6))

    ours, theirs = optimizers()
    start, ours = _adamw_steps(ours)
    _, theirs_dense = _adamw_steps(theirs, densify=True)
    for name in start:
        assert not np.allclose(ours[name], start[name]), name  # every variable moved
        np.testing.assert_allclose(ours[name], theirs_dense[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # Keras 3.15's AdamW squares IndexedSlices slice by slice (ops.square is elementwise on
    # .values), so a repeated row's second moment gets g1^2 + g2^2 instead of (g1 + g2)^2.
    # Ours densifies first; the rows without repeats agree with Keras either way.
    _, theirs_sparse = _adamw_steps(optimizers()[1])
    repeated = np.zeros(100, bool)
    repeated[3] = True
    np.testing.assert_allclose(ours["embeddings"][~repeated], theirs_sparse["embeddings"][~repeated], rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours["embeddings"][repeated], theirs_sparse["embeddings"][repeated], rtol=1e-3)


def test_clipping_norm_counts_a_repeated_embedding_row_once():
    """The clipped update of sparse gradients with a repeated row == that of the same gradients made dense."""
    from tfbert.keras_compat import AdamW

    def optimizer():  # standard-normal gradients over ~900 weights: norm ~30, so the clip to 1.0 acts every step
        return AdamW(learning_rate=0.05, weight_decay=0.1, clip_global_norm=1.0, epsilon=1e-6)

    start, sparse = _adamw_steps(optimizer())
    _, dense = _adamw_steps(optimizer(), densify=True)
    for name in start:
        assert not np.allclose(sparse[name], start[name]), name
        np.testing.assert_allclose(sparse[name], dense[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_embedding_update_on_touched_rows_is_bit_identical_to_the_dense_update():
    """Adam on the rows ever touched == ResourceApplyAdam on the densified gradient, bit for bit.

    Rows are first touched at different steps, some go idle (m and v still
    move them), some are never touched (decay only), and rows repeat within
    a gradient (summed, as making it dense sums them). Without clipping: the
    global norm of sparse and dense gradients can differ in the last bit
    (summation order), which the clipping test above covers with a tolerance.
    """
    import tensorflow as tf

    from tfbert.keras_compat import AdamW

    rng = np.random.default_rng(1)
    table = rng.standard_normal((40, 6)).astype(np.float32)
    rows_per_step = [[0, 5, 5, 9], [9, 12], [30], [0, 31, 31], [2], [12, 39]]
    grads = [rng.standard_normal((len(rows), 6)).astype(np.float32) for rows in rows_per_step]

    def train(densify):
        embeddings = keras.Variable(table, name="embeddings")
        optimizer = AdamW(learning_rate=WarmupLinearDecay(0.05, 6, 2), weight_decay=0.1, clip_global_norm=None,
                          epsilon=1e-6)
        for rows, values in zip(rows_per_step, grads):
            grad = tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant(table.shape))
            optimizer.apply_gradients([(tf.convert_to_tensor(grad) if densify else grad, embeddings)])
        moments = [np.asarray(optimizer._momentums[0]), np.asarray(optimizer._velocities[0])]
        return [np.asarray(embeddings), *moments], np.asarray(optimizer._touched_rows[0])

    (sparse, touched), (dense, _) = train(densify=False), train(densify=True)
    np.testing.assert_array_equal(touched, np.isin(np.arange(40), sum(rows_per_step, [])))
    for ours, expected, name in zip(sparse, dense, ["embeddings", "m", "v"]):
        np.testing.assert_array_equal(ours, expected, err_msg=name)
    never = ~touched.astype(bool)
    assert np.all(sparse[1][never] == 0) and not np.allclose(sparse[0][never], table[never])  # decay only




def _buffer_address(tensor) -> int:
    """Where `tensor`'s data lives, from its DLPack capsule (numpy() may hand back a copy)."""
    import ctypes

    import tensorflow as tf

    capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    capsule_pointer.restype, capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    # A DLManagedTensor starts with its DLTensor, which starts with the data pointer.
    return ctypes.c_void_p.from_address(capsule_pointer(tf.experimental.dlpack.to_dlpack(tensor), b"dltensor")).value

def test_embedding_table_is_read_without_a_copy_after_its_sparse_update():
    """After the sparse update, dense reads of the table share its buffer, and an earlier read keeps its values.

    A sparse op puts a TensorFlow variable in copy-on-read mode, where every
    dense read (the next step's lookup, the weight decay) copies the whole
    table. Reading twice and comparing the buffers' addresses tells the
    modes apart.
    """
    import tensorflow as tf

    from tfbert.keras_compat import AdamW, _tf_variable

    embeddings = keras.Variable(np.ones((50, 4), np.float32), name="embeddings")
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.1, clip_global_norm=None)

    def sparse_step(row):
        grad = tf.IndexedSlices(tf.ones((1, 4)), tf.constant([row]), tf.constant([50, 4]))
        optimizer.apply_gradients([(grad, embeddings)])

    sparse_step(3)
    table = _tf_variable(embeddings)
    first, second = table.read_value(), table.read_value()  # both alive: a copy could not reuse the first's buffer
    assert _buffer_address(first) == _buffer_address(second)
    before = table.read_value()
    expected = before.numpy().copy()
    sparse_step(7)
    np.testing.assert_array_equal(before.numpy(), expected)  # copied on write, not changed under the reader
    assert not np.array_equal(table.read_value().numpy()[7], expected[7])

def _batch(token_ids):
    import tensorflow as tf

    ids = tf.constant([token_ids, token_ids[::-1]], tf.int32)
    return {"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": tf.ones_like(ids, tf.bool)}


def _compiled(jit_compile=False):
    """A 1-layer classifier without dropout, so two of them train alike."""
    keras.utils.set_random_seed(0)
    model = build_classifier(build_backbone(ModelConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16,
                                                        dropout=0.0), len(TINY_VOCAB), 16), 1, "sigmoid", dropout=0.0)
    model.compile(optimizer=build_optimizer(1e-2, 10, 0.0, 0.01), loss="binary_crossentropy", jit_compile=jit_compile)
    return model


def _token_table_index(model):
    return next(i for i, v in enumerate(model.trainable_variables) if v.path.endswith("token_embedding/embeddings"))


def test_a_model_reloaded_mid_run_updates_the_rows_touched_before_the_save(tmp_path):
    """The touched rows are optimizer state: saved with the weights, so a resumed run continues as the unbroken one.

    The batches after the save use other tokens than those before it, so the
    rows touched only before it move on their moments alone: forgetting them
    on reload would freeze those rows and the runs would part.
    """
    labels = np.array([[1.0], [0.0]], np.float32)
    before, after = [_batch([1, 5, 6, 7, 2]), _batch([1, 8, 9, 2, 0])], [_batch([1, 20, 21, 2]), _batch([1, 22, 2])]
    model = _compiled()
    for features in before:
        model.train_on_batch(features, labels)
    model.save_weights(tmp_path / "mid.weights.h5")
    reloaded = _compiled()
    reloaded.optimizer.build(reloaded.trainable_variables)
    reloaded.load_weights(tmp_path / "mid.weights.h5")
    for features in after:
        model.train_on_batch(features, labels)
        reloaded.train_on_batch(features, labels)
    touched = np.asarray(reloaded.optimizer._touched_rows[_token_table_index(model)])
    assert set(np.flatnonzero(touched)) == {0, 1, 2, 5, 6, 7, 8, 9, 20, 21, 22}
    for ours, expected in zip(reloaded.trainable_variables, model.trainable_variables):
        # To rounding only: the reloaded run differs from the unbroken one in the last bit of the [CLS] and
        # [SEP] rows with or without the touched-row update (measured); forgotten rows would be ~1e-2 off.
        np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-5, atol=1e-7, err_msg=expected.path)


def test_xla_training_updates_embeddings_like_the_sparse_path():
    """`jit_compile=True` cannot compile the touched-row update (its row count is no static shape): it falls back
    to the dense kernel, keeps the touched set exact, and trains as the graph run does (to XLA's rounding)."""
    labels = np.array([[1.0], [0.0]], np.float32)
    batches = [_batch([1, 5, 6, 7, 2]), _batch([1, 8, 5, 2, 0]), _batch([1, 20, 2])]
    runs = []
    for jit_compile in (False, True):
        model = _compiled(jit_compile)
        for features in batches:
            model.train_on_batch(features, labels)
        runs.append(model)
    graph, xla = runs
    table = _token_table_index(graph)
    np.testing.assert_array_equal(np.asarray(xla.optimizer._touched_rows[table]),
                                  np.asarray(graph.optimizer._touched_rows[table]))
    assert set(np.flatnonzero(np.asarray(xla.optimizer._touched_rows[table]))) == {0, 1, 2, 5, 6, 7, 8, 20}
    for ours, expected in zip(xla.trainable_variables, graph.trainable_variables):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-4, atol=1e-6, err_msg=expected.path)


def _tiny_classifier(num_layers=2):
    config = ModelConfig(num_layers=num_layers, hidden_dim=8, num_heads=2, intermediate_dim=16)
    return build_classifier(build_backbone(config, len(TINY_VOCAB), 16), 1, "sigmoid")


def test_layer_depths_count_down_from_the_head():
    from tfbert.keras_compat import layer_depths

    paths = [v.path for v in _tiny_classifier(num_layers=2).trainable_variables]
    by_layer = {}  # transformer_layer_<i>, or the layer that owns the variable -> the depths of its variables
    for path, depth in zip(paths, layer_depths(paths)):
        layer = re.search(r"transformer_layer_\d+", path)
        by_layer.setdefault(layer.group(0) if layer else path.split("/")[-2], set()).add(depth)
    assert by_layer["transformer_layer_1"] == {1} and by_layer["transformer_layer_0"] == {2}
    for embedding in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm"):
        assert by_layer[embedding] == {3}, embedding
    assert by_layer["head_dense"] == by_layer["probability"] == {0}


@pytest.mark.parametrize("decay", [1.0, 0.5])
def test_layer_lr_decay_scales_each_first_step(decay):
    """Adam's first step moves every weight by lr * sign(gradient); under decay by lr * decay**depth."""
    import tensorflow as tf

    from tfbert.keras_compat import AdamW, layer_depths

    model = _tiny_classifier(num_layers=2)
    variables = model.trainable_variables
    before = [np.asarray(v) for v in variables]
    optimizer = AdamW(learning_rate=1e-2, weight_decay=0.0, clip_global_norm=None, layer_lr_decay=decay, epsilon=1e-12)
    optimizer.apply_gradients([(tf.ones(v.shape), v) for v in variables])
    for v, start, depth in zip(variables, before, layer_depths([v.path for v in variables])):
        np.testing.assert_allclose(start - np.asarray(v), 1e-2 * decay**depth, rtol=1e-3, err_msg=v.path)


def test_layer_lr_decay_out_of_range_names_the_fix():
    from tfbert.config import TrainConfig
    from tfbert.keras_compat import AdamW

    with pytest.raises(ValueError, match="--layer-lr-decay must be in"):
        TrainConfig(layer_lr_decay=0.0)
    with pytest.raises(ValueError, match="1.0 turns it off"):
        AdamW(learning_rate=1e-3, layer_lr_decay=1.5)


def test_layer_lr_decay_refuses_a_model_without_bert_layers():
    from tfbert.keras_compat import AdamW

    optimizer = AdamW(learning_rate=1e-3, layer_lr_decay=0.9)
    with pytest.raises(ValueError, match="transformer_layer_<i>"):
        optimizer.build([keras.Variable(np.zeros((2, 2), np.float32), name="kernel")])
