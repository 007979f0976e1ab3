"""What the app says when a queue of several runs ends (RunState.outcome): counts by status,
what the runs were, and the worst status for the notice's colour."""

from __future__ import annotations

from fnn_tui.core.events import RunStarted
from fnn_tui.core.status import RunStatus
from fnn_tui.tui.state import RunState


def _state(runs: list[tuple[str, int, RunStatus]]) -> RunState:
    state = RunState()
    state.follow(list(range(len(runs))))
    for run_id, (preset, seed, status) in enumerate(runs):
        state.started[run_id] = RunStarted(preset, "fused", "cpu", seed, 3, 100)
        state.outcomes[run_id] = status
    return state


def test_one_run_has_no_queue_line() -> None:
    state = _state([("exp08", 0, RunStatus.FINISHED)])
    assert state.outcome() is None
    assert state.run_name(0) == "exp08 seed 0" and state.run_name(7) == "run"


def test_a_queue_line_counts_each_status_and_names_the_runs() -> None:
    state = _state([("exp04", s, RunStatus.FINISHED if s % 2 else RunStatus.DIVERGED) for s in range(4)])
    assert state.outcome() == ("4 runs: 2 finished, 2 diverged", "exp04, seeds 0-3", RunStatus.DIVERGED)
    stopped = _state([("exp07", 0, RunStatus.FINISHED), ("exp08", 0, RunStatus.CANCELLED)])
    assert stopped.outcome() == ("2 runs: 1 finished, 1 cancelled", "exp07 + exp08, seed 0", RunStatus.CANCELLED)
    many = _state([(f"exp{n:02d}", s, RunStatus.FINISHED) for n in range(1, 5) for s in (0, 1)])
    assert many.outcome() == ("8 runs: 8 finished", "4 presets, seeds 0,1", RunStatus.FINISHED)
    fine = _state([("exp07", 3, RunStatus.FINISHED), ("exp07", 7, RunStatus.FINISHED)])
    assert fine.outcome() == ("2 runs: 2 finished", "exp07, seeds 3,7", RunStatus.FINISHED)
    fine.follow([])  # a new queue starts with nothing ended
    assert fine.outcome() is None and fine.outcomes == {}
