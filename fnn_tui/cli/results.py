"""Nothing is left here: the runs list is :mod:`fnn_tui.cli.runs` (``results`` is its hidden
alias), the results table :mod:`fnn_tui.cli.table` (``export`` its hidden alias), the report
:mod:`fnn_tui.cli.report`.
"""

from __future__ import annotations




