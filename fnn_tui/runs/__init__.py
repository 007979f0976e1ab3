"""A run's lifecycle: create, train and record, resume, launch in the background, follow,
stop, and the process pool that trains several at once.

Front ends (the CLI, the app) call these functions and consume the core's typed events,
each with the id of the stored run it belongs to (:data:`OnEvent`).
"""

from __future__ import annotations

from collections.abc import Callable

from fnn_tui.core.events import Event

OnEvent = Callable[[int, Event], None]
"""A front end's callback: ``on_event(run_id, event)``."""
