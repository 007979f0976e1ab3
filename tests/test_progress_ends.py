"""How the CLI tells the ends of many runs: a line each for the first ten, then one line."""

from __future__ import annotations

from rich.console import Console

from fnn_tui.cli.progress import END_LINES, report_ends
from fnn_tui.core.events import RunCancelled, RunDiverged, RunFailed
from fnn_tui.core.status import RunStatus
from fnn_tui.runs.record import RecordedRun


def _told(results) -> tuple[int, list[str]]:
    err = Console(record=True, width=200, no_color=True)
    code = report_ends(results, err)
    return code, err.export_text().splitlines()


def test_a_big_group_stopped_is_ten_lines_and_a_count() -> None:
    stopped = [RecordedRun(i, RunCancelled(epochs_done=2, wall_seconds=1.0, status=RunStatus.INTERRUPTED))
               for i in range(1, 1025)]
    code, lines = _told(stopped)
    assert code == 0 and len(lines) == END_LINES + 1
    assert lines[0] == "run 1 interrupted after 2 epochs; `fnn-tui resume 1` continues it"
    assert lines[-1] == ("and 1014 more: 1014 interrupted (runs 11-1024); `fnn-tui runs` lists them, "
                         "and the same command again continues the stopped ones")


def test_the_count_keeps_each_kind_and_the_exit_code() -> None:
    results = [RecordedRun(i, RunCancelled(epochs_done=0, wall_seconds=0.0)) for i in range(1, 11)]
    results += [RecordedRun(20, RunDiverged(epoch=3, step=4, reason="the loss is nan", wall_seconds=1.0)),
                RecordedRun(22, RunFailed(error="disk full", wall_seconds=1.0))]
    code, lines = _told(results)
    assert code == 1  # a diverged run among those not shown one by one still counts
    assert lines[-1].startswith("and 2 more: 1 diverged, 1 failed (runs between 20 and 22)")
    _, few = _told(results[:3])
    assert len(few) == 3 and not any(line.startswith("and ") for line in few)
