"""textclf-bench: a comparative benchmark for text classifiers."""

__version__ = "0.1.0"
