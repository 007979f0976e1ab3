"""The app's run state in one place: what the training worker follows and where it is."""

from __future__ import annotations

from collections.abc import Callable, KeysView
from dataclasses import dataclass, field

from fnn_tui.core.events import EpochMetrics, RunStarted
from fnn_tui.core.status import RunStatus
from fnn_tui.report.sweeps import seeds_text


@dataclass
class RunState:
    """What the app knows about the runs it follows (all changed on the UI thread only)."""

    followed: list[int] | None = None  # the runs the worker follows, in order; None when idle
    current: int | None = None  # the followed run training now: its row in the runs list is live
    epochs: dict[int, list[EpochMetrics]] = field(default_factory=dict)  # per followed run
    started: dict[int, RunStarted] = field(default_factory=dict)  # per followed run that left the queue
    outcomes: dict[int, RunStatus] = field(default_factory=dict)  # per followed run whose end has arrived
    # At start-up a thread asks the store whether runs from an earlier session are still
    # going. A run key pressed meanwhile waits for that answer instead of being refused.
    checking: bool = False
    pending: Callable[[], None] | None = None
    quitting: bool = False  # quit once the followed runs have stopped

    @property
    def busy(self) -> bool:
        """Whether runs are being started or followed."""
        return self.followed is not None

    def follow(self, run_ids: list[int]) -> None:
        """Start following these runs."""
        self.followed = list(run_ids)
        self.current = None
        self.started = {}
        self.outcomes = {}

    @property
    def ended(self) -> KeysView[int]:
        """The followed runs whose end has arrived (a view: no copy per membership test)."""
        return self.outcomes.keys()

    def progress(self) -> tuple[int, int]:
        """``(ended, size)``: how many followed runs have ended, of how many."""
        return len(self.outcomes), max(len(self.followed or []), 1)

    def run_name(self, run_id: int) -> str:
        """``exp08 seed 3``: what the live view and the notices call a followed run."""
        started = self.started.get(run_id)
        return f"{started.preset} seed {started.seed}" if started is not None else "run"

    def outcome(self) -> tuple[str, str, RunStatus] | None:
        """What a queue of more than one run came to, once its runs ended: a short line
        (``4 runs: 3 finished, 1 diverged``), what they were (``exp08, seeds 0-3``; ``exp07 +
        exp08, seed 0``; ``11 presets, seeds 0-9``) and the worst status among them (for the
        notice's severity); None for a single run."""
        if len(self.outcomes) < 2:
            return None
        statuses = list(self.outcomes.values())
        counts = ", ".join(f"{statuses.count(s)} {s.label}" for s in RunStatus if s in statuses)
        started = [self.started[r] for r in self.outcomes if r in self.started]
        presets = sorted({e.preset for e in started})
        seeds = {e.seed for e in started}
        what = (" + ".join(presets) if len(presets) <= 3 else f"{len(presets)} presets") + \
            (f", seed{'s' if len(seeds) > 1 else ''} {seeds_text(seeds)}" if seeds else "")
        worst = next((s for s in statuses if s.bad), next((s for s in statuses if s != RunStatus.FINISHED),
                                                           RunStatus.FINISHED))
        return f"{len(statuses)} runs: {counts}", what, worst

    def stop_target(self) -> int | None:
        """The run whose process a Stop goes to: the current one, else the next still to end."""
        if self.current is not None:
            return self.current
        return next((r for r in self.followed or [] if r not in self.ended), None)

    def idle(self) -> None:
        """Nothing is followed any more."""
        self.followed = None
        self.current = None
        self.checking = False
