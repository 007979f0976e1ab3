"""Seeds of one preset trained together (runs/group.py, planned by runs/plan.py): each lane is an
ordinary stored run with the numbers a run of that seed alone gets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fnn_tui.core.events import EndEvent, EpochFinished, RunFinished, RunStarted
from fnn_tui.core.state import load_checkpoint
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.plan import plan
from fnn_tui.runs.record import record_run
from fnn_tui.store.runs import Store

from .helpers import resume, train

FUSED = RunOptions(engine="fused", device="cpu")


def _final(home: Path, run_id: int):
    with Store(home) as store:
        return store.get_run(run_id)


def test_the_queue_is_cut_into_groups_of_one_study(home: Path, catalog, monkeypatch) -> None:
    """The planner's tasks: seeds of one study share a task up to the engine's width, in the
    order asked; a study of one seed trains alone; the torch engine has no lanes."""
    import fnn_tui.runs.plan as plan_module

    monkeypatch.setattr(plan_module, "group_capacity", lambda preset, options: 2 if options.engine == "fused" else 1)
    a = catalog.get("exp07").with_overrides(samples=200, epochs=1)
    b = catalog.get("exp08").with_overrides(samples=300, epochs=1)
    c = a.with_overrides(epochs=2)
    with Store(home) as store:
        planned = plan(store, [a, b, c], FUSED, [0, 1, 2, 3, 4])
        tasks = [[store.get_run(rid) for rid in t.run_ids] for t in planned.tasks]
    shapes = [(t[0].preset, t[0].epochs_total, [r.seed for r in t]) for t in tasks]
    assert shapes == [("exp07", 1, [0, 1]), ("exp07", 1, [2, 3]), ("exp07", 1, [4]),
                      ("exp08", 1, [0, 1]), ("exp08", 1, [2, 3]), ("exp08", 1, [4]),
                      ("exp07", 2, [0, 1]), ("exp07", 2, [2, 3]), ("exp07", 2, [4])]
    assert [t.lanes_kernel for t in planned.tasks] == [True, True, False] * 3
    assert all(r.status == RunStatus.QUEUED for t in tasks for r in t)  # claimed before any work
    with Store(home) as store:
        torch_plan = plan(store, [a.with_overrides(epochs=3)], RunOptions(engine="torch"), [0, 1])
    assert [t.lanes for t in torch_plan.tasks] == [1, 1]


def test_presets_that_differ_only_in_per_lane_settings_share_a_task(home: Path, catalog) -> None:
    """Rows 3 and 4 of the notes differ in the learning rate only: their seeds are lanes of one
    kernel call, each stored as a run of its own preset with its own numbers."""
    three = catalog.get("exp03").with_overrides(samples=150, epochs=2)
    four = catalog.get("exp04").with_overrides(samples=150, epochs=2)
    with Store(home) as store:
        planned = plan(store, [three, four], FUSED, [0, 1])
    assert [t.lanes for t in planned.tasks] == [4] and planned.tasks[0].lanes_kernel
    from fnn_tui.runs.execute import train_tasks

    ended = train_tasks(home, planned.tasks, 1, lambda *_: None).results
    alone = [record_run(home / "alone", p.with_overrides(seed=s), FUSED) for p in (three, four) for s in (0, 1)]
    presets = set()
    with Store(home) as store, Store(home / "alone") as other:
        for together, single in zip(ended, alone):
            g, a = store.get_run(together.run_id), other.get_run(single.run_id)
            assert (g.preset, g.seed, g.grouped, g.status) == (a.preset, a.seed, 1, a.status)
            assert (g.final is None) == (a.final is None)
            if g.final is not None:
                assert g.final.train_loss == pytest.approx(a.final.train_loss, rel=1e-3)
            presets.add(g.preset)
    assert presets == {"exp03", "exp04"}


def test_a_group_stores_each_seed_as_the_run_it_would_be_alone(tmp_path: Path, tiny08) -> None:
    """Float32 lanes and the single-seed kernel round differently: the issue's tolerance is
    1e-4 on the weights over 100 steps, so one epoch of 100 samples."""
    preset = tiny08.with_overrides(samples=125, epochs=1)
    seeds = [0, 1, 2]
    seen: list[tuple[int, object]] = []
    together = train(tmp_path / "group", [preset], seeds, on_event=lambda run_id, event: seen.append((run_id, event)))
    alone = [record_run(tmp_path / "single", preset.with_overrides(seed=s), FUSED) for s in seeds]
    assert [isinstance(r.end, RunFinished) for r in together] == [True] * 3
    # every run gets its own start, epochs and end, under its own id
    ids = [r.run_id for r in together]
    for run_id in ids:
        kinds = [type(e).__name__ for rid, e in seen if rid == run_id and not type(e).__name__ == "StepProgress"]
        assert kinds == ["RunStarted", "EpochFinished", "RunFinished"]
    assert [e.seed for _, e in seen if isinstance(e, RunStarted)] == seeds
    for group_run, single_run, seed in zip(together, alone, seeds):
        g, s = _final(tmp_path / "group", group_run.run_id), _final(tmp_path / "single", single_run.run_id)
        assert (g.seed, g.status, g.epochs_done, g.study) == (seed, RunStatus.FINISHED, 1, s.study)
        assert g.preset_hash == s.preset_hash
        with Store(tmp_path / "group") as store:
            assert len(store.fits(g.id)) == 1  # y_hat on the grid, as single runs store it
        for name in ("train_loss", "train_ratio", "test_loss", "test_ratio"):
            assert getattr(g.final, name) == pytest.approx(getattr(s.final, name), rel=1e-3, abs=1e-6), name
        a, b = load_checkpoint(g.checkpoint_path), load_checkpoint(s.checkpoint_path)
        for key in a.params:
            assert torch.allclose(a.params[key], b.params[key], rtol=0, atol=1e-4)


def test_a_stopped_group_goes_on_together_to_the_uninterrupted_numbers(tmp_path: Path, tiny08) -> None:
    """Stopped inside its second epoch, each lane is an interrupted run with its checkpoint;
    the runs go on together (the same lanes) and end with the uninterrupted group's numbers."""
    from fnn_tui.core.stopping import StopRequest

    preset = tiny08.with_overrides(samples=150, epochs=3)
    straight = train(tmp_path / "straight", [preset], [4, 5])
    stop = StopRequest()

    def stop_in_epoch_two(_run_id: int, event) -> None:
        if isinstance(event, EpochFinished) and event.metrics.epoch == 1:
            stop.set(RunStatus.INTERRUPTED)

    home = tmp_path / "stopped"
    broken = train(home, [preset], [4, 5], on_event=stop_in_epoch_two, stop=stop)
    assert all(isinstance(r.end, EndEvent) and _final(home, r.run_id).status == RunStatus.INTERRUPTED for r in broken)
    again = resume(home, [r.run_id for r in broken])
    assert [r.run_id for r in again] == [r.run_id for r in broken]
    assert all(isinstance(r.end, RunFinished) for r in again)
    for a, b in zip(broken, straight):
        with Store(home) as mine, Store(tmp_path / "straight") as theirs:
            ours = [dataclasses.replace(m, seconds=0.0) for m in mine.epochs(a.run_id)]
            ref = [dataclasses.replace(m, seconds=0.0) for m in theirs.epochs(b.run_id)]
        assert ours == ref  # bit for bit: the same lanes went on


def test_a_killed_group_resumes_from_its_older_checkpoints_with_every_epoch(tmp_path: Path) -> None:
    """A group checkpoints every few seconds, not every epoch: killed (SIGKILL) with more epochs
    stored than checkpointed, each run resumes from its checkpoint and retrains the epochs after
    it; none is lost or doubled, and the numbers are those of an uninterrupted group."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    script = (
        "import sys; from pathlib import Path\n"
        "import fnn_tui.runs.group as g; g.CHECKPOINT_SECONDS = 1e9  # only the first and last epochs\n"
        "from fnn_tui.core.catalog import discover; from fnn_tui.core.trainer import RunOptions\n"
        "from fnn_tui.runs.execute import train_tasks; from fnn_tui.runs.plan import plan\n"
        "from fnn_tui.store.runs import Store\n"
        "p = discover(include_user=False).get('exp08').with_overrides(samples=300, epochs=300)\n"
        "with Store(Path(sys.argv[1])) as store: planned = plan(store, [p], RunOptions(engine='fused', device='cpu'), [0, 1])\n"
        "train_tasks(Path(sys.argv[1]), planned.tasks, 1, lambda *a: None)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-c", script, str(straight)], env=env, check=True, timeout=300)
    home = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", script, str(home)], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (home / "runs.sqlite3").exists():
                with Store(home) as store:
                    runs = store.list_runs()
                if len(runs) == 2 and min(r.epochs_done for r in runs) >= 3:
                    break
            time.sleep(0.02)
        else:
            raise AssertionError("the group never stored three epochs")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    with Store(home) as store:
        runs = sorted(store.list_runs(), key=lambda r: r.seed)
    # the store has more epochs than the checkpoints: the case this test is about
    assert all(load_checkpoint(r.checkpoint_path).epoch < r.epochs_done < 300 for r in runs)
    again = resume(home, [r.id for r in runs])
    assert all(isinstance(r.end, RunFinished) for r in again)
    with Store(home) as mine, Store(straight) as theirs:
        for r in runs:
            twin = next(t for t in theirs.list_runs() if t.seed == r.seed)
            ours = [dataclasses.replace(m, seconds=0.0) for m in mine.epochs(r.id)]
            ref = [dataclasses.replace(m, seconds=0.0) for m in theirs.epochs(twin.id)]
            assert [m.epoch for m in ours] == list(range(1, 301))
            assert ours == ref  # the group went on from its older checkpoints, exactly


def test_the_pool_sends_progress_at_most_every_interval_and_every_end() -> None:
    from fnn_tui.core.events import EpochMetrics, StepProgress
    from fnn_tui.runs.pool import ProgressThrottle

    def epoch(n: int, of: int = 5) -> EpochFinished:
        return EpochFinished(EpochMetrics(n, 1.0, 1.0, 1.0, 1.0, 1.0, 0.01, 0.0), of)

    throttle = ProgressThrottle(seconds=3600.0)  # nothing is "later" within this test
    sent = [throttle(1, e) for e in (StepProgress(1, 10, 100), epoch(1), epoch(2), StepProgress(3, 5, 100))]
    assert sent == [True, False, False, False]  # the first progress of run 1, then none within the interval
    assert throttle(2, epoch(1))  # each run has its own clock
    assert throttle(1, epoch(5))  # the last epoch always goes: the bar ends on the final loss
    final = EpochMetrics(5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.01, 0.0)
    assert throttle(1, RunFinished(final, 1.0)) and throttle(1, RunStarted("exp07", "fused", "cpu", 0, 5, 100))
    every = ProgressThrottle(seconds=0.0)
    assert all(every(1, epoch(2)) for _ in range(3))
