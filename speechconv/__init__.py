"""speechconv: convolutional speech models built from shared conv-pool blocks."""

__version__ = "0.1.0"
