"""``python -m fnn_tui``."""

from fnn_tui.cli import main

main()
