"""The Textual app driven with the Pilot at 80x24, on tiny real runs."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import torch
from textual.widgets import OptionList, ProgressBar, Select, Sparkline

from fnn_tui.core.events import EpochFinished
from fnn_tui.core.status import RunStatus
from fnn_tui.store.runs import Store
from fnn_tui.tui.app import FnnApp
from fnn_tui.tui.messages import Following, QueueEnded, ResultsLoaded, RunEvent
from fnn_tui.tui.widgets.preset_details import PresetDetails
from fnn_tui.tui.widgets.preset_list import PresetList
from fnn_tui.tui.widgets.results import ResultsTable, table_rows

from .conftest import FIXTURES
from .helpers import screen_lines, without_provenance

SIZE = (80, 24)


async def _set_input(pilot, selector: str, text: str) -> None:
    app = pilot.app
    app.screen.query_one(selector).value = text
    await pilot.pause()


async def _wait_idle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def _start_and_wait_for_an_epoch(app: FnnApp, pilot, first_epoch: asyncio.Event) -> None:
    await pilot.press("r")
    await asyncio.wait_for(first_epoch.wait(), timeout=60)


def _is_epoch(message) -> bool:
    return isinstance(message, RunEvent) and isinstance(message.event, EpochFinished)


async def _wait_for_exit(app: FnnApp) -> None:
    for _ in range(600):
        if not app.is_running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the app did not exit")


async def _open_results(pilot) -> ResultsTable:
    """Switch to the results view and wait for the table's first rows."""
    await pilot.press("t")
    table = pilot.app.query_one(ResultsTable)
    for _ in range(100):
        await pilot.pause(0.05)
        if table.row_count:
            break
    return table


async def _wait_for_runs_to_end(pilot, tries: int = 1200) -> None:
    """Wait for the app to start following runs, then for them to end."""
    for _ in range(tries):
        await pilot.pause(0.05)
        if pilot.app.runs.followed is not None:
            break
    await _wait_idle(pilot)


async def test_run_a_preset_then_save_the_table(home: Path, tmp_path: Path) -> None:
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        presets = app.query_one(PresetList)
        for _ in range(6):
            await pilot.press("down")
        assert presets.entry is not None and presets.entry.name == "exp07"
        await _set_input(pilot, "#epochs", "2")
        await pilot.press("r")
        await _wait_for_runs_to_end(pilot)
        with Store(home) as store:
            (run,) = store.list_runs()
            epochs = store.epochs(run.id)
        assert run.status == "finished" and run.epochs_done == 2 and run.preset == "exp07"
        # one sparkline point per epoch, on a log scale
        train = app.query_one("#train-spark Sparkline", Sparkline)
        assert len(train.data) == 2
        assert train.data[-1] == __import__("math").log10(epochs[-1].train_loss)
        # the results table shows the store's numbers
        await pilot.press("t")
        table = app.query_one(ResultsTable)
        await pilot.pause()
        assert table.row_count == 1
        row = table.rows_by_run[run.id]
        assert row.train_loss == run.final.train_loss and row.test_ratio == run.final.test_ratio
        cells = table.get_row(str(run.id))
        assert cells[1] == "exp07*" and cells[2].plain == "0" and cells[3].plain == "finished"
        assert cells[-2].startswith("exp07 · epochs=2: (20,20,30), norm+clip+L2, 1000, 2, lr 0.01, decay 0.5")
        assert "Runs list: every stored run, sorted by run, newest first" in str(app.query_one("#results-hint").render())
        # save as CSV through the dialog, with the keys
        target = tmp_path / "table.csv"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Save the runs list" in str(app.screen.query_one(".title").render())
        await pilot.press("tab", "right", "space")  # the format set: CSV changes the suffix
        await pilot.pause()
        assert app.screen.query_one("#path").value.endswith(".csv")
        # the chosen format is said in words: without colour the buttons look alike
        assert [str(b.label) for b in app.screen.query("RadioButton")] == ["Markdown", "CSV ✓", "JSON"]
        await _set_input(pilot, "#path", str(target))
        await pilot.press("ctrl+s")
        for _ in range(50):
            await pilot.pause(0.05)
            if target.exists():
                break
        await pilot.pause()
        text = target.read_text()
        assert text.startswith("# made ") and "command: fnn-tui app: ctrl+s (the runs list, as sorted)" in text.splitlines()[0]
        rows = list(csv.DictReader(io.StringIO(without_provenance(text))))
        assert len(rows) == 1
        assert rows[0]["preset"] == "exp07" and float(rows[0]["train_loss"]) == run.final.train_loss
        assert float(rows[0]["test_ratio"]) == run.final.test_ratio


async def test_results_loads_arriving_late_or_out_of_order_keep_the_newest_state(home: Path) -> None:
    """Loads run in threads: on a slow machine one may land after the run's end, or after a newer load."""
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for _ in range(6):
            await pilot.press("down")
        await _set_input(pilot, "#epochs", "2")
        await pilot.press("r")
        await _wait_for_runs_to_end(pilot)
        table = await _open_results(pilot)
        with Store(home) as store:
            (run,) = store.list_runs()
        assert table.get_row(str(run.id))[3].plain == "finished"
        # Once the run's end has arrived its row is no longer live, so a load landing after
        # it shows the stored state, not the last live epoch.
        assert app.runs.current is None and app.runs.epochs[run.id]
        app.refresh_results()
        await _wait_idle(pilot)
        assert table.get_row(str(run.id))[3].plain == "finished"
        # A load asked for while the run was going, landing after a newer one, is dropped.
        running = [replace(run, status=RunStatus.RUNNING)]
        app.post_message(ResultsLoaded(running, table_rows(running), app.results_shown - 1))
        await pilot.pause()
        await pilot.pause()
        assert table.get_row(str(run.id))[3].plain == "finished"
        # the same load as the newest request is shown: the check above can fail
        app.post_message(ResultsLoaded(running, table_rows(running), app.results_asked + 1))
        await pilot.pause()
        await pilot.pause()
        assert table.get_row(str(run.id))[3].plain == "running"


async def test_messages_from_threads_landing_while_the_app_shuts_down_are_dropped(home: Path) -> None:
    """The store's loads and the follower's messages come from threads: one may land after
    the app began to shut down and its widgets are gone (seen with a load under a busy
    machine: NoMatches from the runs list, a traceback on quit). It is dropped, quietly."""
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for _ in range(6):
            await pilot.press("down")
        await _set_input(pilot, "#epochs", "2")
        await pilot.press("r")
        await _wait_for_runs_to_end(pilot)
        await _wait_idle(pilot)
        with Store(home) as store:
            (run,) = store.list_runs()
            epoch = store.epochs(run.id)[-1]
    assert not app.is_running and not app.query(ResultsTable)  # shut down: the widgets are gone
    running = [replace(run, status=RunStatus.RUNNING)]
    app.on_results_loaded(ResultsLoaded(running, table_rows(running), app.results_asked + 1))
    app.on_following(Following([run.id]))
    app.on_run_event(RunEvent(run.id, EpochFinished(epoch, 2)))
    app.on_queue_ended(QueueEnded())


async def test_save_to_an_unwritable_path_stays_in_the_dialog(home: Path, tmp_path: Path) -> None:
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        await _set_input(pilot, "#path", str(tmp_path / "no" / "such" / "dir" / "t.md"))
        await pilot.press("enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if "Cannot write" in str(app.screen.query_one("#error").render()):
                break
        assert "Cannot write" in str(app.screen.query_one("#error").render())
        assert type(app.screen).__name__ == "SaveScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ != "SaveScreen"


async def test_stop_mid_run_is_stored_as_cancelled(home: Path) -> None:
    app = FnnApp(home=home, preset="exp07", engine="torch")
    first_epoch = asyncio.Event()
    newest = [0]

    def hook(m) -> None:
        # epochs already stored arrive again when a run is followed anew: wait for a new one
        if isinstance(m, RunEvent) and isinstance(m.event, EpochFinished) and m.event.metrics.epoch > newest[0]:
            newest[0] = m.event.metrics.epoch
            first_epoch.set()

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await _start_and_wait_for_an_epoch(app, pilot, first_epoch)
        await pilot.pause()
        assert app.query_one("#device", Select).disabled  # controls locked while running
        bar = app.query_one("#run-progress", ProgressBar)  # moves with every epoch, however short
        assert bar.total == 150 * 800 and bar.progress >= 800
        await pilot.press("s")
        await _wait_idle(pilot)
        assert not app.query_one("#device", Select).disabled
        with Store(home) as store:
            (run,) = store.list_runs()
        assert run.status == "cancelled"
        assert 1 <= run.epochs_done < 150
        # the stopped run stays in the results table, where u takes it up again
        table = await _open_results(pilot)
        cells = table.get_row(str(run.id))
        assert cells[3].plain == "cancelled" and cells[8] == f"{run.epochs_done}/150"
        first_epoch.clear()
        newest[0] = run.epochs_done
        await pilot.press("u")
        await asyncio.wait_for(first_epoch.wait(), timeout=60)
        await pilot.press("s")
        await _wait_idle(pilot)
    with Store(home) as store:
        (again,) = store.list_runs()
        epochs = store.epochs(run.id)
    assert again.id == run.id and again.status == "cancelled" and again.epochs_done > run.epochs_done
    assert [m.epoch for m in epochs] == list(range(1, again.epochs_done + 1))


async def test_a_run_key_pressed_during_the_start_up_check_waits_for_it(
        home: Path, monkeypatch) -> None:
    """At start the app asks the store, in a thread, for runs still going; r pressed before
    the answer comes is kept and acted on, not refused as if a run were active."""
    from fnn_tui.tui import runner

    release = threading.Event()
    real = runner.reattach

    def slow_reattach(*args) -> None:
        release.wait(10)
        real(*args)

    monkeypatch.setattr(runner, "reattach", slow_reattach)
    app = FnnApp(home=home, preset="exp07", device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await _set_input(pilot, "#epochs", "1")
        await pilot.press("r")
        await pilot.pause()
        assert app.runs.checking and app.runs.followed is None  # nothing started, nothing refused
        release.set()
        await _wait_for_runs_to_end(pilot)
    with Store(home) as store:
        (run,) = store.list_runs()
    assert (run.preset, run.status, run.epochs_done) == ("exp07", "finished", 1)


async def test_quit_during_a_run_asks_and_stops_cleanly(home: Path) -> None:
    app = FnnApp(home=home, preset="exp07", engine="torch")
    first_epoch = asyncio.Event()
    async with app.run_test(size=SIZE, message_hook=lambda m: _is_epoch(m) and first_epoch.set()) as pilot:
        await _start_and_wait_for_an_epoch(app, pilot, first_epoch)
        await pilot.press("q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ChoiceScreen"
        await pilot.press("escape")  # Stay: the dialog closes, the run goes on
        await pilot.pause()
        assert type(app.screen).__name__ != "ChoiceScreen" and app.is_running and app.runs.busy
        await pilot.press("q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ChoiceScreen"
        await pilot.press("s")
        await _wait_for_exit(app)  # the app exits by itself once the run is stopped
    with Store(home) as store:
        assert store.list_runs()[0].status == "cancelled"


async def test_quit_can_leave_the_run_training(home: Path) -> None:
    app = FnnApp(home=home, preset="exp07", engine="torch")
    first_epoch = asyncio.Event()
    async with app.run_test(size=SIZE, message_hook=lambda m: _is_epoch(m) and first_epoch.set()) as pilot:
        await _start_and_wait_for_an_epoch(app, pilot, first_epoch)
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("l")
        await _wait_for_exit(app)
    from fnn_tui.runs.background import stop_run

    with Store(home) as store:
        (run,) = store.list_runs()
    assert run.status == "running"
    # a new app reattaches: the live view is filled from the store
    again = FnnApp(home=home)
    async with again.run_test(size=SIZE) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if again.runs.followed and again.query_one("#train-spark").values:
                break
        assert again.runs.followed == [run.id]
        assert len(again.query_one("#train-spark").values) >= 1
        stop_run(home, run.id)
        await _wait_idle(pilot)
    with Store(home) as store:
        assert store.get_run(run.id).status == "cancelled"


async def test_resume_an_interrupted_run_from_the_results_table(home: Path, tmp_path: Path, tiny08) -> None:
    """u on an interrupted run continues it (from the step it reached) to the numbers of an
    uninterrupted run."""
    import dataclasses
    import signal

    from fnn_tui.core.events import StepProgress
    from fnn_tui.core.status import RunStatus
    from fnn_tui.core.stopping import StopRequest
    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.runs.record import record_run

    preset = tiny08.with_overrides(epochs=2)
    straight = record_run(tmp_path / "other", preset, RunOptions(engine="torch"))
    stop = StopRequest()
    record_run(home, preset, RunOptions(engine="torch"),
               lambda _run_id, e: isinstance(e, StepProgress) and e.epoch == 1 and stop.set(RunStatus.INTERRUPTED, signal.SIGTERM), stop)
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await _open_results(pilot)
        await pilot.press("u")
        await _wait_for_runs_to_end(pilot)
    with Store(home) as store:
        (run,) = store.list_runs()
        ours = [dataclasses.replace(m, seconds=0.0) for m in store.epochs(run.id)]
    with Store(tmp_path / "other") as store:
        reference = [dataclasses.replace(m, seconds=0.0) for m in store.epochs(straight.run_id)]
    assert run.status == "finished" and ours == reference


async def test_broken_preset_is_listed_with_its_error(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    shutil.copy(FIXTURES / "broken" / "negative_lr.toml", folder / "zz_broken.toml")
    app = FnnApp(home=home, preset_dirs=[folder])
    async with app.run_test(size=SIZE) as pilot:
        presets = app.query_one(PresetList)
        assert presets.select_name("zz_broken")
        await pilot.pause()
        prompt = presets.get_option("zz_broken").prompt
        assert "invalid" in str(prompt)
        details = str(app.query_one(PresetDetails).render())
        assert "training.lr: expected a finite number > 0, found -0.1" in details
        await pilot.press("r")  # refused with a notification, no crash, nothing stored
        await pilot.pause()
        assert app.is_running
    with Store(home) as store:
        assert store.list_runs() == []


async def test_device_selector_lists_only_what_exists(home: Path) -> None:
    app = FnnApp(home=home)
    async with app.run_test(size=SIZE):
        # what the user sees in the opened list (each prompt is its device's name)
        shown = app.query_one("#device", Select).query_one(OptionList)
        values = [str(shown.get_option_at_index(i).prompt) for i in range(shown.option_count)]
        assert values[:2] == ["auto", "cpu · fused kernels"]  # each device says a study's engine there
        if not torch.cuda.is_available():
            assert not any(str(v).startswith("cuda") for v in values)
        else:
            assert "cuda:0 · GPU group for seeds" in values


def test_a_gpu_in_the_device_list_says_studies_train_on_the_gpu_group_engine() -> None:
    from fnn_tui.tui.widgets.controls import device_label

    assert device_label("cuda:1") == "cuda:1 · GPU group for seeds"
    assert device_label("auto") == "auto" and device_label("mps") == "mps · PyTorch engine"


def test_main_screen_snapshot(snap_compare, home: Path) -> None:
    """At 80x24 every row of the preset details (the notes' numbers too) and the whole
    footer, Quit included, are on the screen."""
    from fnn_tui.report.export import fmt

    seen: list[str] = []

    async def settle(pilot) -> None:
        # On a loaded machine the footer's keys and the start-up check can come after the
        # first idle frame; the picture is of the settled screen.
        from textual.widgets import Footer

        for _ in range(100):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause(0.02)
            if pilot.app.query_one(Footer).children and not pilot.app.runs.checking:
                break
        await pilot.pause()
        seen.extend(screen_lines(pilot.app.export_screenshot()))

    app = FnnApp(home=home, preset="exp08")
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)
    assert len(seen) == SIZE[1]
    reported = app.catalog.get("exp08").reported
    details = "\n".join(seen[: next(i for i, line in enumerate(seen) if "Live" in line)])
    assert "notes loss " + fmt(reported.train_loss) in details
    assert "test ratio " + fmt(reported.test_ratio) in details  # the notes row's last number
    footer = seen[-1]
    for key in ("r Run", "a Run all", "s Stop", "t Runs", "^s Save", "? Help", "q Quit", "^p palette"):
        assert key in footer, footer


async def test_tui_command_can_start_a_preset_at_once(home: Path) -> None:
    app = FnnApp(home=home, preset="7", device="cpu", start=True)
    async with app.run_test(size=SIZE) as pilot:
        await _wait_for_runs_to_end(pilot)
        log = app.query_one("#epoch-log")
        assert any("finished" in str(line.text) for line in log.lines)
        # the log's prose wraps to the panel: its first line ("exp07 seed 0: 150 epochs x 800
        # steps, cpu (fused)", 49 columns) gave the panel a sideways scrollbar at 80x24
        assert not log.show_horizontal_scrollbar
        assert log.virtual_size.width <= log.scrollable_content_region.width
        words = " ".join(str(line.text).strip() for line in log.lines[:3]).split()
        assert words[:9] == "exp07 seed 0: 150 epochs x 800 steps, cpu".split()
    with Store(home) as store:
        (run,) = store.list_runs()
    assert (run.preset, run.status, run.engine, run.device, run.epochs_done) == ("exp07", "finished", "fused", "cpu", 150)


def test_epoch_log_columns_line_up_under_the_header() -> None:
    import math
    import re

    from fnn_tui.core.events import EpochMetrics
    from fnn_tui.tui.widgets.live import LOG_HEADER, epoch_line, log_header

    header_ends = [m.end() for m in re.finditer(r"ep|train|ratio|test|lr", LOG_HEADER)]
    assert len(header_ends) == 6 and len(LOG_HEADER) <= 45  # the live view's log at 80x24
    cases = [  # epoch, train loss, train ratio, test loss, test ratio, lr
        (150, 0.0123456, 1.042, 12.5, 1.165, 2e-11),
        (9999, 1.234567e30, 1234.5, 9.87654e29, 12345.6, 4.5e-13),  # late exp06 before divergence
        (1, 1.5e300, 1e30, math.inf, math.nan, 1.8e-13),
        (2, 0.0, 0.0, 1.2345e-5, 0.999, 1e-13),
    ]
    for epoch, *values in cases:
        train_loss, train_ratio, test_loss, test_ratio, lr = values
        line = epoch_line(EpochMetrics(epoch, train_loss, train_ratio, test_loss, test_ratio, 0.1, lr, 0.3))
        assert [m.end() for m in re.finditer(r"\S+", line)] == header_ends, line
        assert len(line) <= 45, line
        # every number is whole: it reads back as (nearly) the value, never a cut prefix of it
        for token, value in zip(line.split()[1:], values, strict=True):
            shown = float(token)
            same = shown == value or (math.isnan(value) and math.isnan(shown))
            assert same or math.isclose(shown, value, rel_tol=0.05), (token, value, line)
    # a run longer than 9999 epochs widens the epoch column, header and lines alike
    wide = epoch_line(EpochMetrics(123456, 0.5, 1.0, 0.5, 1.0, 0.1, 0.01, 0.3), epoch_width=6)
    assert [m.end() for m in re.finditer(r"\S+", wide)] == [
        m.end() for m in re.finditer(r"ep|train|ratio|test|lr", log_header(6))]
