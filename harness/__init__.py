"""A-Eval evaluation harness: run segmentation containers on the benchmark and score them."""

__version__ = "0.1.0"
