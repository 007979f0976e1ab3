"""fnn-tui: a terminal lab runner for small PyTorch feed-forward-network experiments."""

__version__ = "0.1.0"
