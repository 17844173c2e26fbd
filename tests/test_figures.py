import numpy as np

from tfbert.figures import (confusion_matrix_figure, curve_figure, mistakes_table, residual_histogram,
                            scatter_figure)
from tfbert.tensorboard import figure_image


def test_mistakes_table_most_confident_first_and_escaped():
    texts = ["right", "a|b *c*", "meh"]
    label_ids = np.array([0, 0, 1])
    probabilities = np.array([[0.9, 0.1], [0.05, 0.95], [0.6, 0.4]])
    table = mistakes_table(texts, label_ids, probabilities, probabilities.argmax(1), ["neg", "pos"])
    rows = table.splitlines()
    assert rows[0].startswith("2 of 3 validation texts misclassified")
    assert rows[4] == r"| a\|b \*c\* | neg | pos | 0.950 |"
    assert rows[5] == "| meh | pos | neg | 0.600 |"
    assert len(rows) == 6


def test_figures_for_three_labels():
    rng = np.random.default_rng(0)
    label_ids = np.arange(30) % 3
    probabilities = rng.dirichlet(np.ones(3), size=30)
    for fig in (confusion_matrix_figure([[5, 3, 2], [1, 8, 1], [0, 2, 8]], ["a", "b", "c"]),
                curve_figure("pr", np.eye(3)[label_ids], probabilities, ["a", "b", "c"], [0, 1, 2]),
                curve_figure("roc", np.eye(3)[label_ids], probabilities, ["a", "b", "c"], [0, 1, 2])):
        image = figure_image(fig)
        assert image.dtype == "uint8" and image.shape[0] == 1 and image.shape[-1] == 4
        assert len(fig.axes[0].get_legend_handles_labels()[1]) in (0, 3)  # one curve per label


def test_regression_figures():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=50)
    predicted = truth + rng.normal(scale=0.1, size=50)
    scatter = scatter_figure(truth, predicted)
    assert len(scatter.axes[0].collections[0].get_offsets()) == 50  # one point per text
    histogram = residual_histogram(truth, predicted)
    counts = [patch.get_height() for patch in histogram.axes[0].patches]
    assert sum(counts) == 50
    for fig in (scatter, histogram):
        assert figure_image(fig).shape[-1] == 4
