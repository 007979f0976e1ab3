"""Seeds as a dimension: reading ``--seeds``, planning what is still to train, and the CLI
training only the seeds not yet done (real runs, a real store, a real SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.plan import MAX_SEEDS, SeedsError, parse_seeds, plan
from fnn_tui.runs.record import record_run
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--epochs", "1", "--samples", "200")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(("text", "seeds"), [
    ("3", [0, 1, 2]),
    ("1", [0]),
    ("3,7,11", [3, 7, 11]),
    ("11, 3,7,3", [3, 7, 11]),
    ("0-4", [0, 1, 2, 3, 4]),
    ("5-5", [5]),
    ("0-2,10", [0, 1, 2, 10]),
    (f"{MAX_SEEDS}", list(range(MAX_SEEDS))),
])
def test_seeds_are_a_count_a_list_or_a_range(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "says"), [
    ("", "no seeds given"),
    ("0", "from 1 to 16384"),
    (f"{MAX_SEEDS + 1}", "from 1 to 16384"),
    ("9-3", "runs backwards; write 3-9"),
    ("0-20000", "at most 16384 seeds"),
    ("a,b", "cannot read 'a'"),
    ("-3", "cannot read '-3'"),
    ("1.5", "cannot read '1.5'"),
    ("4294967296,1", "above the largest seed"),
])
def test_bad_seeds_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(SeedsError, match=None) as info:
        parse_seeds(text)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_bad_seeds_on_the_command_line_are_one_line_and_exit_2(home: Path) -> None:
    for args, says in ((("--seeds", "9-3"), "runs backwards"), (("--seeds", "2", "--seed", "4"), "--seed and --seeds")):
        result = runner.invoke(app, ["run", "exp07", *args, *TINY])
        assert result.exit_code == 2
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (home / DB_NAME).exists()  # nothing was written before the error


def test_run_seeds_then_again_trains_only_what_is_missing(home: Path) -> None:
    first = invoke("run", "exp07", "--seeds", "1", *TINY)
    assert first.exit_code == 0, first.output
    # the rest of the study: seed 0 is done, 1 and 2 are trained
    second = invoke("run", "exp07", "--seeds", "3", *TINY)
    assert second.exit_code == 0, second.output
    assert "skipped: 1 seed done with these settings" in second.stderr
    with Store(home) as store:
        runs = store.list_runs("exp07")
    assert sorted(r.seed for r in runs) == [0, 1, 2]
    assert len({r.study for r in runs}) == 1 and all(r.status == RunStatus.FINISHED for r in runs)
    # the same request again trains nothing, and says so in one line
    third = invoke("run", "exp07", "--seeds", "3", *TINY)
    assert third.exit_code == 0
    assert third.stderr.startswith("nothing to train: 3 seeds done with these settings")
    with Store(home) as store:
        assert len(store.list_runs()) == 3
    # other settings are another study: all three seeds train again
    other = invoke("run", "exp07", "--seeds", "0-2", "--epochs", "2", "--samples", "200", "--jobs", "2")
    assert other.exit_code == 0, other.output
    with Store(home) as store:
        runs = store.list_runs("exp07")
    assert len(runs) == 6 and len({r.study for r in runs}) == 2
    assert sorted(r.seed for r in runs if r.epochs_total == 2) == [0, 1, 2]


def test_a_diverged_seed_is_done_and_a_stopped_one_is_resumed(home: Path, catalog) -> None:
    from fnn_tui.core.presets import load_preset

    from .conftest import FIXTURES

    diverges = load_preset(FIXTURES / "diverges.toml")
    record_run(home, diverges.with_overrides(seed=0), RunOptions(engine="fused"))
    tiny = catalog.get("exp07").with_overrides(samples=200, epochs=2)
    stopped = record_run(home, tiny.with_overrides(seed=1), RunOptions(engine="fused"))
    with Store(home) as store:
        store.conn.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (stopped.run_id,))
        store.conn.commit()
        # its checkpoint is at the last epoch: it goes on from the kept previous one (the last
        # epoch is trained again, to the same numbers) rather than as a new run of seed 1
        planned = plan(store, [diverges, tiny], RunOptions(engine="fused"), [0, 1])
        runs = [store.get_run(rid) for rid in planned.run_ids]
    assert len(planned.done) == 1  # the diverged seed 0 of "diverges"
    assert planned.resumed == [stopped.run_id]
    kinds = [(r.preset, r.seed, "resume" if r.id == stopped.run_id else "new") for r in runs]
    assert kinds == [("diverges", 1, "new"), ("exp07", 0, "new"), ("exp07", 1, "resume")]


def test_seeds_after_a_sigterm_resume_the_stopped_seed(home: Path) -> None:
    """A real SIGTERM to `run --seeds 2` mid-way (the two seeds train together, one per lane);
    the same command again resumes both from their checkpoints: two runs in all, both finished."""
    args = [sys.executable, "-m", "fnn_tui", "run", "exp07", "--seeds", "2", "--epochs", "60", "--samples", "300",
            "--engine", "fused"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            if (home / DB_NAME).exists():
                with Store(home) as store:
                    runs = store.list_runs()
                if runs and min(r.epochs_done for r in runs) >= 1:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the seeds never finished an epoch")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    with Store(home) as store:
        stopped = sorted(store.list_runs(), key=lambda r: r.seed)
    assert [(r.seed, r.status) for r in stopped] == [(0, RunStatus.INTERRUPTED), (1, RunStatus.INTERRUPTED)]
    assert all(1 <= r.epochs_done < 60 for r in stopped)
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming 2 stopped" in again.stderr
    with Store(home) as store:
        runs = sorted(store.list_runs(), key=lambda r: r.seed)
    assert [(r.id, r.seed, r.status.value, r.epochs_done) for r in runs] == [
        (r.id, r.seed, "finished", 60) for r in stopped]  # each seed went on in its own run
