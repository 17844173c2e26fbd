import keras
import numpy as np
import pytest

from tfbert.losses import PositiveWeightedBinaryCrossentropy, WeightedClassCrossentropy


def test_equal_weights_are_keras_cross_entropy():
    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    p = np.array([[0.9], [0.2], [0.4]], np.float32)
    ours = float(WeightedClassCrossentropy([1.0, 1.0])(y, p))
    assert ours == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)), rel=1e-5)
    ids = np.array([2, 0], np.int32)
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], np.float32)
    ours = float(WeightedClassCrossentropy([1.0, 1.0, 1.0])(ids, probs))
    assert ours == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy()(ids, probs)), rel=1e-5)


def test_class_weights_scale_each_example_by_its_true_class():
    ids = np.array([2, 0], np.int32)
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], np.float32)
    expected = np.mean([3.0 * -np.log(0.7), 0.5 * -np.log(0.5)])
    assert float(WeightedClassCrossentropy([0.5, 1.0, 3.0])(ids, probs)) == pytest.approx(expected, rel=1e-5)
    y, p = np.array([[1.0], [0.0]], np.float32), np.array([[0.8], [0.3]], np.float32)
    expected = np.mean([4.0 * -np.log(0.8), 0.5 * -np.log(0.7)])
    assert float(WeightedClassCrossentropy([0.5, 4.0])(y, p)) == pytest.approx(expected, rel=1e-5)


def test_positive_weights_scale_only_the_positive_term():
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.8, 0.3], [0.4, 0.6]], np.float32)
    expected = np.mean([[2 * -np.log(0.8), -np.log(0.7)], [-np.log(0.6), 3 * -np.log(0.6)]])
    assert float(PositiveWeightedBinaryCrossentropy([2.0, 3.0])(y, p)) == pytest.approx(expected, rel=1e-5)
    ones = float(PositiveWeightedBinaryCrossentropy([1.0, 1.0])(y, p))
    assert ones == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)), rel=1e-5)


@pytest.mark.parametrize("loss", [WeightedClassCrossentropy([1.0, 2.0]), PositiveWeightedBinaryCrossentropy([3.0])])
def test_losses_round_trip(loss):
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
