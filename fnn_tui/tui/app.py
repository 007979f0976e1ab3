"""The Textual app: presets, run controls, live training view, the runs list and the report.

Runs train in a background process of their own (so a dropped SSH session does not kill
them); one thread worker (``group="training"``) starts it and follows it through the
store, posting the trainer's events wrapped in :class:`~fnn_tui.tui.messages.RunEvent`. Store reads and file writes run
in thread workers too, so the UI thread never trains and never waits on I/O. Opening the
app again reattaches to runs that are still going.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Input, Label, OptionList, Select
from textual.worker import Worker, WorkerState

from fnn_tui.core.catalog import Catalog, discover
from fnn_tui.core.devices import DeviceError, device_choice
from fnn_tui.core.engines import CUDA_GROUP_ENGINE, EngineError
from fnn_tui.core.events import EndEvent, EpochFinished, RunStarted, StepProgress, end_status
from fnn_tui.core.group import planned_runs
from fnn_tui.core.presets import Preset, PresetError
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions, engine_cost
from fnn_tui.core.variants import Grid, variants
from fnn_tui.report.claims import SEEDS as CLAIMS_SEEDS
from fnn_tui.report.reproduction import reproduction
from fnn_tui.report.runinfo import RunFilter
from fnn_tui.report.studies import load_studies, seed_roles, variant_names
from fnn_tui.report.sweeps import resolve as resolve_sweep
from fnn_tui.report.sweeps import seeds_text, store_new_sweep
from fnn_tui.runs.background import NotRunningError, stop_run
from fnn_tui.runs.liveness import reap
from fnn_tui.runs.plan import Plan, SeedsError, parse_seeds, plan, plan_resume
from fnn_tui.runs.record import ResumeError, end_message, stored_preset
from fnn_tui.store.db import StoreError
from fnn_tui.store.runs import RunRecord, Store
from fnn_tui.store.sweeps import get_sweep
from fnn_tui.tui import runner
from fnn_tui.tui.messages import Following, QueueEnded, ResultsLoaded, RunEvent
from fnn_tui.tui.screens.dialogs import ChoiceScreen, HelpScreen, SaveScreen
from fnn_tui.tui.screens.plot import PlotScreen, PlotTarget
from fnn_tui.tui.screens.run_detail import FilterScreen, RunDetailScreen, filtered_rows
from fnn_tui.tui.screens.sweeps import SweepsScreen
from fnn_tui.tui.screens.variant import VariantRequest, VariantScreen
from fnn_tui.tui.state import RunState
from fnn_tui.tui.widgets.controls import RunControls
from fnn_tui.tui.widgets.live import LiveView
from fnn_tui.tui.widgets.preset_details import PresetDetails
from fnn_tui.tui.widgets.preset_list import PresetList
from fnn_tui.tui.widgets.report import ReportTable, row_hint
from fnn_tui.tui.widgets.results import ResultsTable, table_rows

if TYPE_CHECKING:
    from fnn_tui.tui.screens.claims import ClaimsTraining

HINTS = {
    "results": "Runs list: every stored run, {sort}\no sort  i detail  f filter  ←→ scroll  u resume  p plot  "
               "^s save  b report",
    "report": "Report: each preset over its seeds.  b runs list  p plot  ^s save  ? help",
}


def severity(status: RunStatus) -> SeverityLevel:
    """A notice's severity for a run's end: finished is news, stopped a warning, bad an error."""
    return "information" if status == RunStatus.FINISHED else ("error" if status.bad else "warning")


class FnnApp(App[None]):
    """fnn-tui's lab: run presets and keep their results."""

    TITLE = "fnn-tui"
    SUB_TITLE = "FNN lab runner"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("r", "run", "Run", id="run"),
        Binding("R", "run_again", "Run again", id="run_again", show=False),
        Binding("a", "run_all", "Run all", id="run_all"),
        Binding("s", "stop", "Stop", id="stop"),
        Binding("u", "resume", "Resume", id="resume", show=False),
        Binding("t", "toggle_view", "Runs", id="toggle_view"),
        Binding("b", "toggle_report", "By preset", id="toggle_report", show=False),
        Binding("p", "plot", "Plot", id="plot", show=False),
        Binding("i", "run_detail", "Detail", id="run_detail", show=False),
        Binding("f", "filter_runs", "Filter", id="filter_runs", show=False),
        Binding("c", "claims", "Claims", id="claims", show=False),
        Binding("e", "edit_settings", "Settings", id="edit_settings", show=False),
        Binding("w", "sweeps", "Sweeps", id="sweeps", show=False),
        Binding("x", "compare", "Compare", id="compare", show=False),
        Binding("ctrl+s", "save", "Save", id="save"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit_app", "Quit", id="quit"),
        Binding("escape", "focus_presets", "Presets", id="focus_presets", show=False),
    ]

    def __init__(self, *, home: Path, preset_dirs: list[Path] | None = None, preset: str | None = None,
                 device: str = "auto", engine: str = "auto", start: bool = False, executor: str = "local",
                 ray_address: str | None = None) -> None:
        super().__init__()
        self.executor = executor  # where Run and Run all train: local (every core) or ray
        self.ray_address = ray_address
        self.home = home
        self.catalog: Catalog = discover(preset_dirs or [])
        self.initial_preset = preset
        self.initial_device = device
        self.initial_engine = engine
        self.start_now = start
        self.runs = RunState()
        self.detach = threading.Event()  # set to let go of followed runs without stopping them
        self.results_asked = 0  # requests to reload the runs list, and the newest one shown
        self.results_shown = 0
        self.records: dict[int, RunRecord] = {}
        self.run_filter = RunFilter()  # what the runs list shows (f)
        self._claims_row = 0  # the conclusion highlighted when the claims view (c) last closed
        self.loaded: ResultsLoaded | None = None  # the newest load, to filter again without reading
        self.store_error: str | None = None  # the line to print when the store failed under the app
        self.device_said: set[str] = set()

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with ContentSwitcher(initial="lab", id="views"):
            with Horizontal(id="lab"):
                with Vertical(id="left"):
                    yield PresetList(self.catalog, id="presets")
                    yield RunControls(self.initial_device, self.initial_engine, id="controls")
                with Vertical(id="right"):
                    yield PresetDetails(id="details")
                    yield LiveView(id="live")
            with Vertical(id="results-view"):
                yield Label("", id="results-hint")
                with ContentSwitcher(initial="results", id="results-modes"):
                    yield ResultsTable(id="results")
                    yield ReportTable(id="report")
        yield Footer(compact=True)

    @property
    def live(self) -> LiveView:
        """The live view of the run in progress."""
        return self.query_one(LiveView)

    @property
    def runs_list(self) -> ResultsTable:
        """The runs list (every stored run)."""
        return self.query_one(ResultsTable)

    @property
    def report_table(self) -> ReportTable:
        """The report: one row per preset over its seeds."""
        return self.query_one(ReportTable)

    @property
    def results_mode(self) -> str:
        """Which of the runs-view's modes shows: ``results`` (the runs list) or ``report``."""
        return str(self.query_one("#results-modes", ContentSwitcher).current)

    def on_mount(self) -> None:
        self.query_one("#presets").border_title = "Presets"
        self.query_one("#controls").border_title = "Run"
        self.live.border_title = "Live"
        presets = self.query_one(PresetList)
        if self.initial_preset is not None:
            presets.select_name(self.initial_preset)
        elif presets.option_count:
            presets.highlighted = 0
        presets.focus()
        self.refresh_results()
        if self.start_now:
            self.call_after_refresh(self.action_run)
        else:
            self.runs.checking = True
            self._reattach()

    # --- presets --------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#presets")
    def _preset_highlighted(self) -> None:
        self.query_one(PresetDetails).show(self.query_one(PresetList).entry)
        self._show_engine_note()

    @on(Select.Changed, "#controls Select")
    @on(Input.Changed, "#seeds")
    def _show_engine_note(self) -> None:
        """Before any run: say so when the device or engine chosen means the slow PyTorch
        engine for the seeds asked for (several seeds on a GPU: the GPU group engine, no warning)."""
        entry = self.query_one(PresetList).entry
        note = None
        if entry is not None and entry.preset is not None:
            try:
                note = self._engine_note(entry.preset, self.query_one(RunControls).options(), self._quiet_seeds())
            except (DeviceError, EngineError):
                note = None  # said when r is pressed
        self.query_one(RunControls).show_engine_note(note.short if note is not None and note.warn else None)

    def _quiet_seeds(self) -> list[int] | None:
        """The seeds field read without a notice (``None`` when empty or unreadable)."""
        try:
            return parse_seeds(self.query_one(RunControls).seeds()) or None
        except SeedsError:
            return None

    @staticmethod
    def _engine_note(preset: Preset, options: RunOptions, seeds: list[int] | None):
        """What the engine chosen for ``preset`` over ``seeds`` costs (the planner's rule: a
        study on a GPU is one GPU group)."""
        runs = [preset] if seeds is None else [preset.with_overrides(seed=s) for s in seeds]
        return engine_cost(preset, planned_runs(runs, options)[0])

    @on(OptionList.OptionSelected, "#presets")
    def _preset_selected(self) -> None:
        self.action_run()

    # --- running --------------------------------------------------------------------------

    def _prepare(self, preset: Preset, seeds: list[int] | None = None) -> tuple[Preset, RunOptions] | None:
        controls = self.query_one(RunControls)
        overrides = controls.overrides()
        options = controls.options()
        try:
            preset = preset.with_overrides(epochs=overrides["epochs"], seed=overrides["seed"])
            runs = [preset] if seeds is None else [preset.with_overrides(seed=s) for s in seeds]
            resolved = planned_runs(runs, options)[0]
        except PresetError as exc:
            self.notify(exc.first_line(), title="Bad override", severity="error")
            return None
        except (DeviceError, EngineError) as exc:
            self.notify(str(exc), title="Cannot run", severity="error")
            return None
        note = engine_cost(preset, resolved)
        if note.warn:
            self.notify(note.text, title="Slow engine", severity="warning")
        why = device_choice(options.device, batch_size=preset.training.batch_size, resolved=resolved.device)
        if resolved.engine == CUDA_GROUP_ENGINE:
            why = f"{resolved.device}: the {CUDA_GROUP_ENGINE} GPU group engine, {len(runs)} lanes"
        if why and why not in self.device_said:  # once a session: what auto picked and why
            self.device_said.add(why)
            self.notify(why, title="Device")
        return preset, options

    def _seeds(self) -> list[int] | None:
        """The seeds asked for in the controls (``None``: the preset's one seed, or the seed
        field's); a notice and ``[]`` when they cannot be read."""
        controls = self.query_one(RunControls)
        text = controls.seeds()
        if not text:
            return None
        if controls.overrides()["seed"] is not None:
            self.notify("Give a seed or seeds, not both.", title="Bad override", severity="error")
            return []
        try:
            return parse_seeds(text)
        except SeedsError as exc:
            self.notify(str(exc).replace("--seeds ", "seeds "), title="Bad seeds", severity="error")
            return []

    def action_run_again(self) -> None:
        """Run the highlighted preset's seeds even where they are done (`run --again`): stored
        as repeats, and the report counts each seed's newest result once."""
        self.action_run(again=True)

    def action_run(self, again: bool = False) -> None:
        """Run the highlighted preset: once, or every seed asked for that is not done yet."""
        if not self._can_start(self.action_run_again if again else self.action_run):
            return
        entry = self.query_one(PresetList).entry
        if entry is None:
            return
        if entry.preset is None:
            assert entry.error is not None
            self.notify(entry.error.first_line(), title="Invalid preset", severity="error")
            return
        seeds = self._seeds()
        prepared = self._prepare(entry.preset, seeds) if seeds != [] else None
        if prepared is None:
            return
        self.runs.follow([])
        self._plan_and_start([prepared[0]], prepared[1], seeds, again)

    def action_edit_settings(self) -> None:
        """Open the highlighted preset's settings as a form; what it returns runs as a variant."""
        if not self._can_start(self.action_edit_settings):
            return
        entry = self.query_one(PresetList).entry
        if entry is None or entry.preset is None:
            if entry is not None and entry.error is not None:
                self.notify(entry.error.first_line(), title="Invalid preset", severity="error")
            return
        controls = self.query_one(RunControls)
        self.push_screen(VariantScreen(entry.preset, controls.seeds()), self._run_variant)

    def _run_variant(self, request: VariantRequest | None) -> None:
        if request is None or not self._can_start(lambda: self._run_variant(request)):
            return
        options = self.query_one(RunControls).options()
        seeds = request.seeds
        if request.grid is not None:  # a sweep: every variant, seed 0 unless asked (as `fnn-tui sweep`)
            runs = [v.with_overrides(seed=s) for v in variants(request.preset, request.grid) for s in seeds or [0]]
        else:
            runs = [request.preset] if seeds is None else [request.preset.with_overrides(seed=s) for s in seeds]
        try:
            planned_runs(runs, options)
        except (DeviceError, EngineError) as exc:
            self.notify(str(exc), title="Cannot run", severity="error")
            return
        self.runs.follow([])
        if request.grid is not None:
            self._start_sweep(request.preset, request.grid, seeds or [0], options)
        else:
            self._plan_and_start([request.preset], options, request.seeds)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training", name="training")
    def _start_sweep(self, base: Preset, grid: Grid | None, seeds: list[int], options: RunOptions,
                     name: str | None = None) -> None:
        """Store the sweep of ``grid`` on ``base`` (or take the stored sweep ``name``) and train
        its pairs not done yet, as `fnn-tui sweep` does."""
        with Store(self.home) as store:
            if name is not None:
                record = get_sweep(store, name)
                if record is None:
                    self.call_from_thread(self.notify, f"No stored sweep named {name!r}.", severity="error")
                    self.post_message(QueueEnded())
                    return
                sweep = resolve_sweep(record)
            else:
                assert grid is not None
                sweep = store_new_sweep(store, base, grid, seeds)
            planned = plan(store, list(sweep.variants), options, list(sweep.seeds))
        total = len(sweep.variants) * len(sweep.seeds)
        todo = len(planned.run_ids)
        self.call_from_thread(self.notify, f"sweep {sweep.name}: {todo} of {total} runs to train" if todo else
                              f"sweep {sweep.name}: all {total} runs are done", title="Sweep")
        self._launch(planned)

    def action_sweeps(self) -> None:
        """The stored sweeps; enter opens one's report, r trains what one is missing."""
        self.push_screen(SweepsScreen(self.home, self.catalog), self._train_sweep)

    def _train_sweep(self, name: str | None) -> None:
        """Train the pairs of the stored sweep ``name`` not done yet (the sweeps list's r), on the
        lab's device."""
        if name is None or not self._can_start(lambda: self._train_sweep(name)):
            return
        self.runs.follow([])
        self._start_sweep(None, None, [], self.query_one(RunControls).options(), name)

    def action_run_all(self) -> None:
        """Queue the marked presets, or every valid one, in order (every seed asked for); runs
        already finished with the same settings are skipped and stopped ones resumed."""
        if not self._can_start(self.action_run_all):
            return
        seeds = self._seeds()
        if seeds == []:
            return
        presets: list[Preset] = []
        options = None
        for entry in self.query_one(PresetList).queued():
            assert entry.preset is not None
            prepared = self._prepare(entry.preset, seeds)
            if prepared is None:
                return
            presets.append(prepared[0])
            options = prepared[1]
        if presets and options is not None:
            self.runs.follow([])
            self._plan_and_start(presets, options, seeds)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training", name="training")
    def _plan_and_start(self, presets: list[Preset], options: RunOptions, seeds: list[int] | None = None,
                        again: bool = False) -> None:
        """Plan the request as `fnn-tui run` does (the same rule for what is done, the same
        tasks) and hand the tasks to a background process that trains them over the cores."""
        with Store(self.home) as store:
            planned = plan(store, presets, options, seeds, again=again)
        self._launch(planned)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training", name="training")
    def _resume(self, run_id: int) -> None:
        with Store(self.home) as store:
            planned = plan_resume(store, [run_id])
        self._launch(planned)

    def _launch(self, planned: Plan) -> None:
        """(In the training worker's thread.) Say what was skipped; start the tasks."""
        if planned.summary():
            self.call_from_thread(self.notify, planned.summary(), title="Seeds" if planned.tasks else "Nothing to train")
        if not planned.tasks:
            self.post_message(QueueEnded())
            return
        self.call_from_thread(self._lock_controls)
        if self.executor == "ray":
            self.call_from_thread(self.notify, f"{len(planned.tasks)} {'task' if len(planned.tasks) == 1 else 'tasks'} "
                                  f"on Ray ({self.ray_address or 'a local Ray'})", title="Training")
        runner.run_tasks(self.home, planned.tasks, self.post_message, self.detach, executor=self.executor,
                         address=self.ray_address)

    def _lock_controls(self) -> None:
        self.query_one(RunControls).set_enabled(False)
        self.query_one("#views", ContentSwitcher).current = "lab"

    @work(thread=True, exclusive=True, exit_on_error=False, group="training", name="training")
    def _reattach(self) -> None:
        runner.reattach(self.home, self.post_message, self.detach)

    def _can_start(self, action: Callable[[], None]) -> bool:
        """Whether ``action`` may start runs now. While the start-up check runs it is kept for
        when the check ends; while runs are active it is refused with a notice."""
        if self.runs.checking:
            self.runs.pending = action
            return False
        if self.runs.busy:
            self.notify("A run is active: stop it first (s).", severity="warning")
            return False
        return True

    def on_following(self, message: Following) -> None:
        self.runs.checking = False
        if self.runs.pending is not None:
            self.runs.pending = None
            self.notify("A run from an earlier session is still training: following it.",
                        severity="warning")
        self.runs.follow(message.run_ids)
        with suppress(NoMatches):  # a queue found while the app shuts down: its widgets are gone
            self._lock_controls()

    def action_stop(self) -> None:
        """Ask the background run to stop at its next chunk of steps; its queue is dropped."""
        run_id = self.runs.stop_target()
        if run_id is None:
            self.notify("Nothing is running.")
            return
        self.live.stopping()
        self._send_stop(run_id)

    @work(thread=True, exit_on_error=False, group="stop", name="stop")
    def _send_stop(self, run_id: int) -> None:
        try:
            stop_run(self.home, run_id)
        except NotRunningError as exc:
            self.call_from_thread(self.notify, str(exc), severity="warning")

    def action_resume(self) -> None:
        """Resume the run highlighted in the results table (interrupted, crashed, cancelled or failed)."""
        if not self._can_start(self.action_resume):
            return
        table = self.runs_list
        views = self.query_one("#views", ContentSwitcher)
        if views.current != "results-view" or self.results_mode != "results" or table.row_count == 0:
            self.notify("Open the runs list (t) and highlight an interrupted, cancelled, crashed or failed run to resume it.")
            return
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        record = self.records.get(int(str(row_key.value)))
        if record is None or not record.status.resumable:
            self.notify("Only interrupted, crashed, cancelled or failed runs can be resumed.", severity="warning")
            return
        try:
            stored_preset(record)  # its stored preset must still load
        except ResumeError as exc:
            self.notify(str(exc), severity="error")
            return
        self.runs.follow([])
        self._resume(record.id)

    # --- messages from the worker ---------------------------------------------------------

    def on_run_event(self, message: RunEvent) -> None:
        try:
            self._show_run_event(message)
        except NoMatches:  # the app is shutting down under a run still followed: its widgets are gone
            pass

    def _show_run_event(self, message: RunEvent) -> None:
        # Runs of a queue may train at once (over the pool): the live view shows one of them,
        # the current one, and passes to another that is training when it ends; every run's
        # epochs reach the runs list and the plots.
        run_id, event = message.run_id, message.event
        if isinstance(event, RunStarted):
            self.runs.started[run_id] = event
            self.runs.epochs[run_id] = []
            if self.runs.current is None:
                self.runs.current = run_id
                self.live.start(event)
            self.live.queue(*self.runs.progress())
            self.refresh_results()
            self._plot_run_started(run_id, event)
        elif isinstance(event, StepProgress):
            if run_id == self.runs.current:
                self.live.step(event)
        elif isinstance(event, EpochFinished):
            self.runs.epochs.setdefault(run_id, []).append(event.metrics)
            if run_id == self.runs.current:
                self.live.epoch(event)
            self.runs_list.live(run_id, event.metrics)
            self._plot_epoch(run_id, event)
        elif isinstance(event, EndEvent):
            status = end_status(event)
            self.runs.outcomes[run_id] = status
            name = self.runs.run_name(run_id)
            text = self._end_text(run_id, event)
            self.live.queue(*self.runs.progress())
            if run_id == self.runs.current or self.runs.current is None:
                self.live.end(name, status, text)
                self.runs.current = None
                self._show_next_live()
            # a queue of many seeds gets one notice when it ends (on_queue_ended), not one a
            # seed; only its first run to diverge, fail or crash is told at once
            first_bad = status.bad and sum(s.bad for s in self.runs.outcomes.values()) == 1
            if len(self.runs.followed or ()) <= 1 or first_bad:
                self.notify(f"{name} {status.label}: {text}", severity=severity(status))
            self.refresh_results()

    def _show_next_live(self) -> None:
        """The live view passes to a run of the queue that is training (its epochs so far)."""
        for run_id, started in self.runs.started.items():
            if run_id in self.runs.ended:
                continue
            self.runs.current = run_id
            self.live.start(started)
            for metrics in self.runs.epochs.get(run_id, []):
                self.live.epoch(EpochFinished(metrics, started.epochs))
            return

    def _end_text(self, run_id: int, event: EndEvent) -> str:
        if end_status(event) == RunStatus.FINISHED:
            done = len(self.runs.epochs.get(run_id, []))
            return f"{done} epochs in {event.wall_seconds:.1f} s"
        return end_message(event) or end_status(event).label

    def on_queue_ended(self, message: QueueEnded) -> None:
        outcome = self.runs.outcome()
        if outcome is not None and not self.runs.quitting:
            line, what, worst = outcome
            with suppress(NoMatches):
                self.live.done(line, what, worst)
            self.notify(f"{line} ({what})", severity=severity(worst))
        self.runs.idle()
        for controls in self.query(RunControls):  # none while the app is shutting down
            controls.set_enabled(True)
        if self.runs.quitting:
            self.exit()
        elif self.runs.pending is not None:
            action, self.runs.pending = self.runs.pending, None
            action()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and isinstance(event.worker.error, StoreError):
            # a damaged, lost, full or locked store: nothing in the app can work; say why on exit
            self.store_error = str(event.worker.error)
            self.exit(return_code=2)
            return
        if event.worker.group == "training" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.live.end("run", RunStatus.FAILED, f"{type(error).__name__}: {error}")
            self.notify(f"{type(error).__name__}: {error}", title="Training failed", severity="error")
            self.on_queue_ended(QueueEnded())
            self.refresh_results()

    # --- results --------------------------------------------------------------------------

    def refresh_results(self) -> None:
        """Reload the runs list from the store, in a thread."""
        self.results_asked += 1
        self._load_results(self.results_asked)

    @work(thread=True, exit_on_error=False, group="store", name="results")
    def _load_results(self, ask: int) -> None:
        # the report reads every run's study from the store: made here, never on the UI thread
        with Store(self.home) as store:
            reap(store)
            records = store.list_runs()
            reports = reproduction(s.study for s in load_studies(store, self.catalog))
        rows = table_rows(records, variant_names(self.catalog, records))
        self.post_message(ResultsLoaded(records, rows, ask, reports, seed_roles(records)))

    def on_results_loaded(self, message: ResultsLoaded) -> None:
        try:
            self._show_results(message)
        except NoMatches:  # a load that arrives while the app shuts down: its widgets are gone
            pass

    def _show_results(self, message: ResultsLoaded) -> None:
        # Loads run in threads and may arrive out of order: an older one would bring back
        # a state (a run still "running") that a newer one has already replaced.
        if message.ask < self.results_shown:
            return
        self.results_shown = message.ask
        self.records = {r.id: r for r in message.records}
        self.loaded = message
        table = self.runs_list
        table.load(filtered_rows(message.rows, self.records, self.run_filter), message.roles)
        if message.reports is not None:
            self.report_table.load(message.reports)
        if self.query_one("#views", ContentSwitcher).current == "results-view":
            self._update_hint()
        current = self.runs.current
        history = self.runs.epochs.get(current) if current is not None else None
        if current is not None and history:
            table.live(current, history[-1])

    # --- one run, and the runs list's filter (tui/screens/run_detail.py) -----------------

    def action_run_detail(self) -> None:
        """The highlighted run in detail (runs list): settings, end, why dead or diverged."""
        table = self.runs_list
        if (self.query_one("#views", ContentSwitcher).current != "results-view" or self.results_mode != "results"
                or table.row_count == 0):
            self.notify("Open the runs list (t) and highlight a run to see it in detail.")
            return
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        self.push_screen(RunDetailScreen(self.home, int(str(row_key.value))))

    @on(DataTable.RowSelected, "#results")
    def _run_selected(self) -> None:
        self.action_run_detail()

    def action_filter_runs(self) -> None:
        """Ask for the runs list's filter (status, dead, preset, tag, excluded)."""
        def chosen(new: RunFilter | None) -> None:
            if new is None:
                return
            self.run_filter = new
            self.query_one("#views", ContentSwitcher).current = "results-view"
            if self.loaded is not None:
                self.runs_list.load(filtered_rows(self.loaded.rows, self.records, new), self.loaded.roles)
            if self.results_mode == "results":
                self._update_hint()

        self.push_screen(FilterScreen(self.run_filter), chosen)

    def action_toggle_view(self) -> None:
        """Switch between the lab and the runs view (the runs list or the report)."""
        switcher = self.query_one("#views", ContentSwitcher)
        if switcher.current == "lab":
            switcher.current = "results-view"
            self._update_hint()
            self._focus_results_mode()
        else:
            switcher.current = "lab"
            self.query_one(PresetList).focus()

    def action_toggle_report(self) -> None:
        """In the runs view: switch between the runs list and the report (by preset)."""
        self.query_one("#views", ContentSwitcher).current = "results-view"
        modes = self.query_one("#results-modes", ContentSwitcher)
        modes.current = "report" if modes.current == "results" else "results"
        self._update_hint()
        self._focus_results_mode()

    def _update_hint(self) -> None:
        """Say what the runs view shows: the runs list and how it is sorted, or the report
        and the highlighted row's settings and spread (what its three lines leave out)."""
        if self.results_mode == "results":
            hint = HINTS["results"].format(sort=self.runs_list.sort_text())
            shown = self.run_filter.describe()
            if shown:
                hint = f"Runs list, filter: {shown} (f changes it); {self.runs_list.sort_text()}"
        else:
            table = self.report_table
            report = None
            if table.row_count:
                key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                report = table.reports.get(str(key))
            hint = HINTS["report"] + ("\n" + row_hint(report) if report is not None else "")
            if report is not None and (report.duplicates or report.excluded):  # each seed counts once
                counts = ((len(report.duplicates), "duplicate"), (len(report.excluded), "excluded"))
                hint += "; not counted: " + ", ".join(f"{n} {word}" for n, word in counts if n)
        self.query_one("#results-hint", Label).update(hint)

    @on(DataTable.RowHighlighted, "#report")
    def _report_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.results_mode == "report":
            self._update_hint()

    @on(ResultsTable.Sorted)
    def _runs_sorted(self) -> None:
        if self.results_mode == "results":
            self._update_hint()

    def _focus_results_mode(self) -> None:
        (self.report_table if self.results_mode == "report" else self.runs_list).focus()

    def action_save(self) -> None:
        """Save what the view shows: in the runs view the runs list as sorted, or the report;
        in the lab the results table (each preset's median over its seeds)."""
        what = "table"
        if self.query_one("#views", ContentSwitcher).current == "results-view":
            what = "report" if self.results_mode == "report" else "runs"
        rows = self.runs_list.shown_rows() if what == "runs" else None
        words = {"table": "results table", "runs": "runs list", "report": "report"}[what]

        def saved(path: Path | None) -> None:
            if path is not None:
                self.notify(f"Saved the {words} to {path}", title="Saved")

        self.push_screen(SaveScreen(self.home, what=what, catalog=self.catalog, rows=rows), saved)

    def action_focus_presets(self) -> None:
        """Back to the preset list (from the controls or the runs view)."""
        self.query_one("#views", ContentSwitcher).current = "lab"
        self.query_one(PresetList).focus()

    @on(Input.Submitted, "#controls Input")
    def _override_entered(self) -> None:
        self.action_focus_presets()

    def action_claims(self) -> None:
        """The notes' conclusions and their verdicts from the stored runs."""
        if len(self.screen_stack) > 1:  # a dialog is open
            return
        from fnn_tui.tui.screens.claims import ClaimsScreen

        screen = ClaimsScreen(self.home, self.catalog, self._claims_row)

        def closed(request: ClaimsTraining | None) -> None:
            self._claims_row = screen.row
            self._train_claims(request)

        self.push_screen(screen, closed)

    def action_compare(self) -> None:
        """Compare two presets with statistics: the two marked, or the one marked and the
        highlighted one."""
        if len(self.screen_stack) > 1:  # a dialog is open
            return
        presets = self.query_one(PresetList)
        names = [e.name for e in presets.queued()] if presets.marked else []
        highlighted = presets.entry
        if len(names) == 1 and highlighted is not None and highlighted.preset is not None and \
                highlighted.name not in names:
            names.append(highlighted.name)
        if len(names) != 2:
            self.notify(f"Mark two presets with space, then x (or mark one and highlight the other); "
                        f"{len(names)} marked.", title="Compare", severity="warning")
            return
        from fnn_tui.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(self.home, self.catalog, *names))

    def _train_claims(self, request: ClaimsTraining | None) -> None:
        """Train the studies a conclusion's verdicts stand on (the claims view's r and a): over
        the seeds field's seeds, else seeds 0-9 as `fnn-tui claims`, on the lab's device."""
        if request is None or not self._can_start(lambda: self._train_claims(request)):
            return
        seeds = self._seeds()
        if seeds == []:
            return
        seeds = seeds or list(range(CLAIMS_SEEDS))
        options = self.query_one(RunControls).options()
        try:
            planned_runs([p.with_overrides(seed=s) for p in request.presets for s in seeds], options)
        except (DeviceError, EngineError) as exc:
            self.notify(str(exc), title="Cannot run", severity="error")
            return
        self.notify(f"{len(request.presets)} {'study' if len(request.presets) == 1 else 'studies'} of "
                    f"{request.what}, seeds {seeds_text(seeds)}; c shows the verdicts", title="Conclusions")
        self.runs.follow([])
        self._plan_and_start(list(request.presets), options, seeds)

    def action_help(self) -> None:
        """Show the keys of the screen on show."""
        screen = getattr(self.screen, "HELP", None)  # a screen over the lab names its own help
        if screen is None:
            screen = "runs" if self.query_one("#views", ContentSwitcher).current == "results-view" else "lab"
        self.push_screen(HelpScreen(screen))

    def action_quit_app(self) -> None:
        """Quit; while a run is active, ask whether to stop it or leave it training."""
        if not self.runs.busy:
            self.exit()
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                self.runs.quitting = True
                self.action_stop()
            elif choice == "leave":
                self.detach.set()
                self.exit()

        question = "A run is training in the background."
        choices = [("s", "Stop it and quit", "stop"), ("l", "Leave it running and quit", "leave"),
                   ("escape", "Stay", "stay")]
        self.push_screen(ChoiceScreen(question, choices), answer)

    # --- plots ----------------------------------------------------------------------------

    def action_plot(self) -> None:
        """Plot the highlighted run full-screen: in the lab the highlighted preset's newest
        run (or the one training now), in the runs list the highlighted row's run."""
        if len(self.screen_stack) > 1:  # a dialog is open (the plot screen binds p itself)
            return
        target = self._plot_target()
        if target is not None:
            self.push_screen(PlotScreen(self.home, target))

    def _plot_target(self) -> PlotTarget | None:
        if self.query_one(ContentSwitcher).current == "results-view":
            table: DataTable = self.report_table if self.results_mode == "report" else self.runs_list
            if table.row_count == 0:
                self.notify("No runs to plot yet.")
                return None
            key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
            if key.isdigit():
                return PlotTarget(run_id=int(key))
            return PlotTarget(preset=self._catalog_preset(key), study=True)  # a row per preset: its study
        entry = self.query_one(PresetList).entry
        if entry is None:
            return None if self.runs.current is None else PlotTarget(run_id=self.runs.current)
        live = tuple(r for r in self.runs.followed or () if r not in self.runs.ended)
        return PlotTarget(preset=entry.name, fallback_run=self.runs.current, live_runs=live)

    def _catalog_preset(self, name: str) -> Preset | str:
        entry = next((e for e in self.catalog.entries if e.name == name), None)
        return entry.preset if entry is not None and entry.preset is not None else name

    def _plot_run_started(self, run_id: int, event: RunStarted) -> None:
        """A plot of this run's preset follows its newest run."""
        for screen in self.screen_stack:
            if isinstance(screen, PlotScreen):
                screen.run_started(run_id, event.preset)

    def _plot_epoch(self, run_id: int, event: EpochFinished) -> None:
        """Grow the plot when it shows this run."""
        for screen in self.screen_stack:
            if isinstance(screen, PlotScreen):
                screen.add_epoch(run_id, event.metrics, event.fit)

    PLOT_SCREEN_ACTIONS = frozenset({"stop", "help", "quit_app", "command_palette"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Over the plot and the help only stop, help and quit (and the palette) apply: the
        other keys act on the lab or the runs list, which are hidden there. Over the conclusions and the
        sweeps views (``COVERS_LAB``) not stop either; their own keys (save) are theirs."""
        if isinstance(self.screen, (PlotScreen, HelpScreen)) and action not in self.PLOT_SCREEN_ACTIONS:
            return False  # the help covers the screen under it too
        if getattr(self.screen, "COVERS_LAB", False) and action not in self.PLOT_SCREEN_ACTIONS - {"stop"}:
            return False  # the lab's keys would act unseen
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette: the app's own commands (each with its key), then Textual's;
        over a view that covers the lab, its own Save and the help."""
        if getattr(screen, "COVERS_LAB", False):
            if hasattr(screen, "action_save"):
                yield SystemCommand("Save", "Save what this view shows (ctrl+s)", screen.action_save)
            yield SystemCommand("Help", "The keys of this screen (?)", self.action_help)
            yield from super().get_system_commands(screen)
            return
        if not isinstance(screen, PlotScreen):
            yield SystemCommand("Run", "Train the highlighted preset, every seed in the seeds field (r)",
                                self.action_run)
            yield SystemCommand("Run all", "Train the marked presets, or every one (a)", self.action_run_all)
            yield SystemCommand("Run again", "Train the highlighted preset's seeds again, done ones too (R)",
                                self.action_run_again)
            yield SystemCommand("Settings", "Change the highlighted preset's settings and run it as a variant (e)",
                                self.action_edit_settings)
            yield SystemCommand("Sweeps", "The stored sweeps, each with its report (w)", self.action_sweeps)
            yield SystemCommand("Claims", "The notes' tuning conclusions, checked on the stored runs (c)",
                                self.action_claims)
            yield SystemCommand("Compare", "Two marked presets with statistics over their seeds (x)",
                                self.action_compare)
        yield SystemCommand("Stop", "Stop the run in progress; it is stored as cancelled (s)", self.action_stop)
        if not isinstance(screen, PlotScreen):
            yield SystemCommand("Runs list", "Every stored run, sortable (t)", self._show_runs_list)
            yield SystemCommand("Report", "Each preset over its seeds beside the notes, with verdicts (t, b)",
                                self._show_report)
            yield SystemCommand("Resume", "Resume the highlighted stopped or failed run of the runs list (u)",
                                self.action_resume)
            yield SystemCommand("Save", "Save what the view shows: results table, runs list or report (ctrl+s)",
                                self.action_save)
            yield SystemCommand("Plot", "Loss curves and fitted function of the highlighted run (p)",
                                self.action_plot)
        yield SystemCommand("Help", "The keys of this screen (?)", self.action_help)
        yield from super().get_system_commands(screen)

    def _show_runs_list(self) -> None:
        self._show_mode("results")

    def _show_report(self) -> None:
        self._show_mode("report")

    def _show_mode(self, mode: str) -> None:
        self.query_one("#views", ContentSwitcher).current = "results-view"
        if self.results_mode != mode:
            self.action_toggle_report()
        else:
            self._update_hint()
            self._focus_results_mode()

    def on_unmount(self) -> None:
        self.detach.set()  # followers let go; background runs keep training
