"""Faults in a run's lifecycle, made real: SIGKILL between a checkpoint and its epoch's row,
a full disk (RLIMIT_FSIZE), signals to a ``--jobs`` pool, two resumes at once, huge numbers."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.events import EpochFinished
from fnn_tui.core.state import CheckpointError, check_state, load_checkpoint, previous_path
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.background import stop_run
from fnn_tui.runs.liveness import pid_alive, reap
from fnn_tui.runs.record import ResumeError, record_run, resume_run
from fnn_tui.store.runs import Store, run_folder

from .helpers import launch_presets, wait_for

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
# torch, 60 samples: about 0.1 s an epoch, slow enough to act inside one, fast enough to finish
SMALL = ("--samples", "60", "--engine", "torch")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fnn_tui", "--home", str(home), *args], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)



def _run(home: Path, run_id: int):
    if not (home / "runs.sqlite3").exists():
        return None
    with Store(home) as store:
        return store.get_run(run_id)


def _started(home: Path, run_id: int = 1) -> bool:
    record = _run(home, run_id)
    return record is not None and record.steps_per_epoch > 0


def _numbers(home: Path, run_id: int) -> list:
    """A run's epochs without their wall-clock seconds, which differ between runs."""
    with Store(home) as store:
        return [dataclasses.replace(m, seconds=0.0) for m in store.epochs(run_id)]


def _fits(home: Path, run_id: int) -> list:
    with Store(home) as store:
        return store.fits(run_id)


def _straight(home: Path, catalog, epochs: int, engine: str = "torch") -> int:
    preset = catalog.get("exp08").with_overrides(samples=60, epochs=epochs)
    return record_run(home, preset, RunOptions(engine=engine)).run_id


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return load_checkpoint(path).epoch
    except ValueError:  # between the two renames of an atomic save, or not written yet
        return None


def _assert_like_straight(home: Path, run_id: int, straight: int, epochs: int) -> None:
    record = _run(home, run_id)
    assert record.status == RunStatus.FINISHED and record.epochs_done == epochs
    numbers = _numbers(home, run_id)
    assert [m.epoch for m in numbers] == list(range(1, epochs + 1))  # no gap, no duplicate
    assert numbers == _numbers(home, straight)
    assert _fits(home, run_id) == _fits(home, straight)


# --- 1. an epoch's checkpoint and its row ------------------------------------------------------


@pytest.mark.parametrize("point", ["before the commit", "after the commit"])
def test_sigkill_around_the_epoch_commit_loses_no_epoch(home: Path, catalog, point: str) -> None:
    epochs = 6
    proc = _cli(home, "run", "exp08", "--epochs", str(epochs), *SMALL)
    wait_for(lambda: _started(home))
    checkpoint = run_folder(home, 1) / "checkpoint.pt"
    if point == "before the commit":
        # hold the store's write lock: the trainer writes epoch k's checkpoint, then waits for
        # the lock to commit epoch k's row; kill it there
        lock = sqlite3.connect(home / "runs.sqlite3", timeout=60, isolation_level=None)
        while True:
            lock.execute("BEGIN IMMEDIATE")
            stored = lock.execute("SELECT epochs_done FROM runs WHERE id = 1").fetchone()[0]
            assert stored < epochs - 1, "the run got too far before the lock caught it"
            try:
                wait_for(lambda s=stored: _checkpoint_epoch(checkpoint) == s + 1, timeout=3)
                break
            except AssertionError:  # parked at a heartbeat instead (a slow epoch): let it pass, try again
                beat = lock.execute("SELECT heartbeat_at FROM runs WHERE id = 1").fetchone()[0]
                lock.execute("ROLLBACK")
                wait_for(lambda b=beat: _run(home, 1).heartbeat_at != b)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        lock.execute("ROLLBACK")
        lock.close()
        assert (_run(home, 1).epochs_done, load_checkpoint(checkpoint).epoch) == (stored, stored + 1)
    else:
        wait_for(lambda: _run(home, 1).epochs_done >= 1, every=0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stored, at = _run(home, 1).epochs_done, _checkpoint_epoch(checkpoint)
        assert 1 <= stored < epochs and at in (stored, stored + 1)
    assert _run(home, 1).status == RunStatus.RUNNING  # as the kill left it
    result = runner.invoke(app, ["--home", str(home), "resume", "1"])  # at once: the pid is dead
    assert result.exit_code == 0, result.output
    _assert_like_straight(home, 1, _straight(home, catalog, epochs), epochs)


def test_a_checkpoint_ahead_of_the_store_without_metrics_falls_back_to_the_previous(home: Path, catalog) -> None:
    """A checkpoint of the format before version 3 carries no metrics: resume goes back to the
    kept previous checkpoint instead of skipping the epoch the store missed."""
    epochs = 4
    straight = _straight(home, catalog, epochs, "fused")
    stop = StopRequest()
    preset = catalog.get("exp08").with_overrides(samples=60, epochs=epochs)
    broken = record_run(home, preset, RunOptions(engine="fused"),
                        lambda _id, e: isinstance(e, EpochFinished) and e.metrics.epoch == 2
                        and stop.set(RunStatus.INTERRUPTED), stop)
    path = _run(home, broken.run_id).checkpoint_path
    payload = load_checkpoint(path).to_payload()
    old = {k: v for k, v in payload.items() if k not in ("metrics", "fit")} | {"version": 2}
    torch.save(old, path)  # epoch 2 in the old format, and the store as if its row never came
    with Store(home) as store:
        store.conn.execute("DELETE FROM epochs WHERE run_id = ? AND epoch = 2", (broken.run_id,))
        store.conn.execute("UPDATE runs SET epochs_done = 1 WHERE id = ?", (broken.run_id,))
    assert load_checkpoint(path).metrics is None and load_checkpoint(previous_path(path)).epoch == 1
    resume_run(home, broken.run_id)
    _assert_like_straight(home, broken.run_id, straight, epochs)


# --- 1b. a real full disk ----------------------------------------------------------------------


FULL_DISK = """
import runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
sys.argv = ["fnn-tui", *sys.argv[1:]]
runpy.run_module("fnn_tui", run_name="__main__")
"""


@pytest.mark.parametrize("where", ["checkpoint", "store"])
def test_a_real_full_disk_loses_no_epoch(home: Path, catalog, where: str) -> None:
    import resource

    epochs = 6
    proc = subprocess.Popen([sys.executable, "-c", FULL_DISK, "--home", str(home), "run", "exp08",
                             "--epochs", str(epochs), *SMALL], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = run_folder(home, 1) / "checkpoint.pt"
    wait_for(lambda: _started(home) and _run(home, 1).epochs_done >= 2, every=0.005)
    files = [home / "runs.sqlite3", home / "runs.sqlite3-wal", checkpoint]
    sizes = {f.name: f.stat().st_size for f in files if f.exists()}
    if where == "checkpoint":  # the next checkpoint does not fit (nor does the store's next write)
        limit = sizes["checkpoint.pt"] - 1
    else:  # the checkpoint fits, the store's next page does not (the WAL grows with every commit)
        limit = max(sizes["checkpoint.pt"], sizes.get("runs.sqlite3-wal", 0)) + 1
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
    _, err = proc.communicate(timeout=120)
    record = _run(home, 1)
    assert proc.returncode != 0 and record.status != RunStatus.FINISHED, err.decode()
    assert "Traceback" not in err.decode() and "disk" in err.decode()  # one line: the disk is full
    assert 2 <= record.epochs_done < epochs
    if where == "checkpoint":
        assert _checkpoint_epoch(checkpoint) == record.epochs_done  # the failed save left the last good one
    result = runner.invoke(app, ["--home", str(home), "resume", "1"])  # without the limit
    assert result.exit_code == 0, result.output
    _assert_like_straight(home, 1, _straight(home, catalog, epochs), epochs)


# --- 2. a --jobs pool and signals --------------------------------------------------------------


def _children(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(entry.name))
    return kids


@pytest.mark.skipif(not Path("/proc").exists(), reason="lists child processes through /proc")
# SIGHUP and SIGINT take SIGTERM's path through the pool (one handler for all three), so
# SIGTERM stands for them; SIGKILL is the command dying without a word
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signal_to_a_pool_stops_every_worker_as_interrupted(home: Path, signum: int) -> None:
    proc = _cli(home, "run", "exp07", "exp08", "exp09", "--jobs", "2", "--epochs", "300", *SMALL)
    children: set[int] = set()
    try:
        wait_for(lambda: _run(home, 2) and all(_run(home, i).epochs_done >= 1 for i in (1, 2)))
        children = _children(proc.pid)
        workers = {_run(home, 1).pid, _run(home, 2).pid}
        assert workers <= children
        proc.send_signal(signum)
        proc.wait(timeout=120)
        if signum == signal.SIGKILL:  # the workers notice that the command died and stop themselves
            assert proc.returncode == -signum
            wait_for(lambda: not any(pid_alive(p) for p in workers), timeout=60)
        else:
            assert proc.returncode == 128 + signum
            assert not any(pid_alive(p) for p in workers)  # stopped before the command exited
        err = proc.stderr.read().decode()  # every writer of the pipe has ended
        if signum != signal.SIGKILL:
            assert "1 run was not started" in err and "`fnn-tui resume 1`" in err, err
        wait_for(lambda: not any(pid_alive(p) for p in children), timeout=30)  # nothing outlives it
    finally:
        for pid in children | {proc.pid}:  # a failed test leaves no process of its own behind
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    with Store(home) as store:
        reap(store, grace=0)  # after a kill -9 the never-started exp09, claimed queued, goes with its process
        records = store.list_runs()
    assert sorted(r.preset for r in records) == ["exp07", "exp08"]  # exp09 was never started
    for record in records:
        assert record.status == RunStatus.INTERRUPTED, (record.status, record.message)
        assert 1 <= record.epochs_done < 300


# --- 3. two resumes at once --------------------------------------------------------------------


BARRIER = """
import sys, time
from pathlib import Path
from fnn_tui.cli import main
Path(sys.argv[2]).touch()  # imported and ready
barrier = Path(sys.argv[1])
while not barrier.exists():
    time.sleep(0.002)
sys.argv = ["fnn-tui", *sys.argv[3:]]
main()
"""


def test_two_resumes_started_together_train_the_run_once(home: Path, catalog, tmp_path: Path) -> None:
    epochs = 5
    stop = StopRequest()
    preset = catalog.get("exp08").with_overrides(samples=60, epochs=epochs)
    broken = record_run(home, preset, RunOptions(engine="torch"),
                        lambda _id, e: isinstance(e, EpochFinished) and stop.set(RunStatus.INTERRUPTED), stop)
    barrier = tmp_path / "go"
    ready = [tmp_path / f"ready{n}" for n in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER, str(barrier), str(r), "--home", str(home), "resume",
                               str(broken.run_id)], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for r in ready]
    wait_for(lambda: all(r.exists() for r in ready))
    barrier.touch()
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], errs
    winner = next(p for p in procs if p.returncode == 0)
    loser_err = errs[[p.returncode for p in procs].index(2)]
    lines = [line for line in loser_err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in loser_err, loser_err
    assert re.search(rf"run {broken.run_id} is already being (trained|resumed) by pid {winner.pid}\b", lines[0]), lines
    _assert_like_straight(home, broken.run_id, _straight(home, catalog, epochs), epochs)


def test_resume_refuses_a_run_another_process_holds(home: Path, tiny08) -> None:
    result = record_run(home, tiny08, RunOptions(engine="fused"))
    with Store(home) as store:  # someone else (this test process, alive) holds it now
        store.conn.execute("UPDATE runs SET status = 'running', pid = ? WHERE id = ?", (os.getpid(), result.run_id))
    with pytest.raises(ResumeError, match=f"already being trained by pid {os.getpid()}"):
        resume_run(home, result.run_id)
    with Store(home) as store:  # the claim itself: only from a resumable status, only once
        store.conn.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (result.run_id,))
        assert store.claim_run(result.run_id, (RunStatus.INTERRUPTED,), status=RunStatus.RUNNING, epochs_done=3)
        assert not store.claim_run(result.run_id, (RunStatus.INTERRUPTED,), status=RunStatus.RUNNING, epochs_done=3)


# --- 4. numbers past 2^63 ----------------------------------------------------------------------


HUGE = "99999999999999999999"


@pytest.mark.parametrize("args", [
    ["resume", HUGE], ["attach", HUGE], ["stop", HUGE], ["resume", "0"], ["plot", "--run", HUGE],
    ["run", "exp08", "--epochs", HUGE], ["run", "exp08", "--seed", HUGE], ["run", "exp08", "--samples", HUGE],
])
def test_numbers_past_two_to_the_63_are_one_line_and_exit_2(home: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    assert not (home / "runs").exists()  # nothing was stored


def test_results_takes_a_huge_limit(home: Path, tiny08) -> None:
    record_run(home, tiny08.with_overrides(epochs=1), RunOptions(engine="fused"))
    result = runner.invoke(app, ["--home", str(home), "results", "--limit", HUGE])
    assert result.exit_code == 0 and "exp08" in result.output, result.output


# --- 5. worker.log ------------------------------------------------------------------------------


def test_worker_log_is_one_short_line_per_event(home: Path, catalog) -> None:
    preset = catalog.get("exp08").with_overrides(samples=60, epochs=300)
    launched = launch_presets(home, [preset], RunOptions(engine="torch"))
    run_id = launched.run_ids[0]
    wait_for(lambda: _run(home, run_id).epochs_done >= 2)
    stop_run(home, run_id)
    assert launched.process.wait(timeout=60) == 0
    lines = (_run(home, run_id).folder / "worker.log").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    # the worker's own first line says which tasks it trains (changed with the planner)
    assert re.match(stamp + rf"worker: tasks {run_id} over 1 process$", lines[0]), lines[0]
    lines = lines[1:]
    assert all(re.match(stamp + rf"run {run_id}: ", line) for line in lines), lines
    assert "started on cpu (torch)" in lines[0]
    epochs = [line for line in lines if " epoch " in line and "train loss" in line]
    assert len(epochs) == _run(home, run_id).epochs_done
    assert re.search(rf"run {run_id}: cancelled: stopped by the user( at epoch \d+, step \d+)?$", lines[-1]), lines[-1]
    assert all("tensor" not in line and len(line) < 340 for line in lines)


def test_a_damaged_checkpoint_fit_is_refused(tmp_path: Path, home: Path, tiny08) -> None:
    result = record_run(home, tiny08.with_overrides(epochs=1), RunOptions(engine="fused"))
    state = load_checkpoint(_run(home, result.run_id).checkpoint_path)
    assert state.metrics is not None and state.metrics.epoch == 1 and state.fit is not None  # v3 carries them
    with pytest.raises(CheckpointError, match="fit"):
        check_state(dataclasses.replace(state, fit=torch.zeros(3)), tiny08.with_overrides(epochs=1))
    bad = state.to_payload() | {"metrics": {"epoch": 7}}
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="missing fields"):
        load_checkpoint(tmp_path / "bad.pt")
