"""The full-screen plot: one run's (or a preset study's) loss curves and fitted function.

The app pushes a :class:`PlotScreen` for a :class:`PlotTarget` (``p``); the screen reads the
store in a thread worker (a run without a stored fit may need a forward pass from its
checkpoint) and then draws it with the :class:`~fnn_tui.tui.widgets.plots.PlotView`. While
the shown run trains, the app hands each of its epochs to :meth:`PlotScreen.add_epoch`,
so the curves grow; epochs that arrive before the store has been read are kept and
applied once it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState, get_current_worker

from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report.plotdata import PlotData
from fnn_tui.report.plotstore import NothingToPlot, plot_for_preset, plot_for_run
from fnn_tui.store.runs import Store
from fnn_tui.tui.widgets.plots import PlotView


@dataclass(frozen=True)
class PlotTarget:
    """What ``p`` plots: one run, a preset's newest run, or a preset's study (all its seeds)."""

    run_id: int | None = None
    preset: Preset | str | None = None
    study: bool = False  # with ``preset``: every seed of its study, not only its newest run
    fallback_run: int | None = None  # with ``preset``: shown when the preset has no runs yet
    live_runs: tuple[int, ...] = ()  # the runs the app follows now: preferred, even while queued

    @property
    def name(self) -> str:
        """The preset's name, or ``""`` for a run."""
        return self.preset if isinstance(self.preset, str) else self.preset.name if self.preset else ""


def load_plot(home: Path, target: PlotTarget) -> PlotData:
    """Read the target's plot data from the store (call it off the UI thread)."""
    with Store(home) as store:
        if target.run_id is not None:
            return plot_for_run(store, target.run_id)
        if target.preset is None:
            raise NothingToPlot("nothing to plot")
        if target.study:
            return plot_for_preset(store, target.preset)
        live = set(target.live_runs)
        runs = [r for r in store.list_runs(target.name) if r.id in live or r.status != RunStatus.QUEUED]
        # the newest run with something to draw, or about to: one stopped before its first epoch has not
        started = [r for r in runs if r.id in live or r.epochs_done > 0 or r.status == RunStatus.RUNNING] or runs
        if started:
            return plot_for_run(store, started[0].id)
        if target.fallback_run is not None:
            return plot_for_run(store, target.fallback_run)
        raise NothingToPlot(f"no runs of {target.name} yet: press r to run it")


class PlotScreen(Screen[None]):
    """The plot view over the whole terminal; escape or p goes back."""

    HELP = "plot"  # its page in the help (dialogs.HELPS)
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("p", "close", "Back", show=False),
    ]

    DEFAULT_CSS = """
    PlotScreen PlotView {
        height: 1fr;
        padding: 0 1;
    }
    """

    def __init__(self, home: Path, target: PlotTarget | None) -> None:
        super().__init__()
        self.home = home
        self.target = target
        self._reading = target is not None
        self._early: list[tuple[int, EpochMetrics, np.ndarray | None]] = []  # epochs before the load

    def compose(self) -> ComposeResult:
        yield PlotView(id="plot")
        yield Footer()

    @property
    def view(self) -> PlotView:
        """The plot view."""
        return self.query_one(PlotView)

    def on_mount(self) -> None:
        self.view.focus()  # v switches panels when narrow
        if self.target is not None:
            self.view.clear("reading the store…")
            self._load(self.target)

    @work(thread=True, exclusive=True, exit_on_error=False, group="plot", name="plot")
    def _load(self, target: PlotTarget) -> None:
        try:
            data = load_plot(self.home, target)
        except NothingToPlot as exc:
            data, message = None, str(exc)
        if get_current_worker().is_cancelled:  # a newer load (a run that started) replaced this one
            return
        if data is None:
            self.app.call_from_thread(self._nothing, message)
        else:
            self.app.call_from_thread(self.show, data)

    def _nothing(self, message: str) -> None:
        self._reading = False
        self._early = []
        self.view.clear(message)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "plot" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self._nothing(f"cannot read the plot: {type(error).__name__}: {error}")

    def show(self, data: PlotData) -> None:
        """Draw ``data``, then the epochs that arrived while it was read."""
        self._reading = False
        self.view.show(data)
        early, self._early = self._early, []
        for run_id, metrics, fit in early:
            run = data.run(run_id)
            if run is not None and (not run.epochs or metrics.epoch > run.epochs[-1]):
                self.view.add_epoch(run_id, metrics, fit)

    def add_epoch(self, run_id: int, metrics: EpochMetrics, fit: np.ndarray | None) -> bool:
        """One more epoch of a run: drawn when that run is shown (kept while loading)."""
        if self._reading:
            self._early.append((run_id, metrics, fit))
            return False
        return self.view.add_epoch(run_id, metrics, fit)

    def run_started(self, run_id: int, preset: str) -> None:
        """A run of the shown preset started: a plot of that preset's newest run moves to it."""
        target = self.target
        if target is None or target.run_id is not None or target.study or target.name != preset:
            return
        if self.view.data is not None and self.view.data.run(run_id) is not None:
            return
        self._reading, self._early = True, []
        self._load(PlotTarget(run_id=run_id))

    def action_close(self) -> None:
        """Back to where ``p`` was pressed."""
        self.dismiss(None)
