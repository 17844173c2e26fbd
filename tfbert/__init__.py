"""tfbert: BERT text classification with keras-hub, tf.distribute and TF Serving exports."""

__version__ = "0.1.0"
