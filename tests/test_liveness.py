"""A run whose process is known dead on this machine is crashed at once (real processes,
real kill -9); only runs whose process cannot be checked from here wait for their heartbeat
to go stale, and the run's message says which it was."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.processes import own_mark, start_mark
from fnn_tui.runs.liveness import process_alive, reap
from fnn_tui.store.runs import STALE_SECONDS, Store

from .helpers import wait_for

runner = CliRunner()


def _run(home: Path, run_id: int):
    with Store(home) as store:
        return store.get_run(run_id)


def test_the_start_mark_tells_a_process_from_a_later_one_with_the_same_pid() -> None:
    if own_mark() is None:
        pytest.skip("no /proc: a pid is all this machine tells")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mark = start_mark(child.pid)
        assert mark is not None and mark != own_mark()
        assert process_alive(child.pid, mark) is True
        # the same pid with another process's start: what a reused pid looks like
        assert process_alive(child.pid, own_mark()) is False
        assert process_alive(child.pid, None) is True  # an old row without a mark: the pid alone
        assert process_alive(None, None) is None
        boot, namespace, ticks = mark.split(" ")
        assert process_alive(child.pid, f"another-boot {namespace} {ticks}") is None  # cannot be checked here
    finally:
        child.kill()
        child.wait()
    assert process_alive(child.pid, mark) is False


def test_a_kill_9_crashes_the_run_at_once_and_the_same_command_trains_it(home: Path) -> None:
    args = ["run", "exp08", "--seeds", "2", "--epochs", "4", "--samples", "200", "--engine", "torch"]
    proc = subprocess.Popen([sys.executable, "-m", "fnn_tui", "--home", str(home), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: Path(home, "runs.sqlite3").exists() and (r := _run(home, 1)) and r.epochs_done >= 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(home) as store:
        active = [r.id for r in store.active_runs()]
        assert active and all(time.time() - store.get_run(i).heartbeat_at < 5 for i in active)  # fresh heartbeats
        started = [i for i in active if store.get_run(i).status == "running"]
        assert sorted(reap(store)) == started  # crashed at once
        assert store.active_runs() == []
        # seed 1, queued behind seed 0 on the torch engine and never started, left no row
        assert all(store.get_run(i) is None for i in active if i not in started)
        message = store.get_run(1).message
    assert f"(pid {proc.pid}) on this machine is gone" in message and "fnn-tui resume" in message
    # the reproduction: the same command right away trains the seeds, not "2 training now"
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert "training now" not in again.stderr and "resuming" in again.stderr
    with Store(home) as store:
        finished = {r.seed: r.epochs_done for r in store.list_runs("exp08") if r.status == "finished"}
    assert finished == {0: 4, 1: 4}


def test_a_run_of_another_host_keeps_the_grace_and_its_message_says_so(home: Path, tiny08) -> None:
    with Store(home) as store:
        mine = store.create_run(tiny08, engine="torch", device="cpu")
        other = store.create_run(tiny08, engine="torch", device="cpu")
        store.conn.execute("UPDATE runs SET host = ?, pid = ? WHERE id = ?", ("elsewhere-" + socket.gethostname(),
                                                                           999_999, other))
        assert reap(store) == []  # a pid there says nothing here: it waits for its heartbeat
        assert store.get_run(other).status == "running" and store.get_run(mine).status == "running"
        store.conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time() - STALE_SECONDS - 5, other))
        assert reap(store, grace=0) == [other]
        record = store.get_run(other)
        assert record.status == "crashed" and f"from host elsewhere-{socket.gethostname()}" in record.message
        assert store.get_run(mine).status == "running"  # this process, alive


def test_a_queued_run_whose_launcher_died_is_gone_or_cancelled_at_once(home: Path, tiny08) -> None:
    """Never started (no epoch): deleted with its process (the planner claims runs queued
    before training; a killed command leaves no empty rows). With epochs (a resumption that
    never went on): cancelled, resumable."""
    from fnn_tui.core.status import RunStatus

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    with Store(home) as store:
        run_id = store.create_run(tiny08, engine="torch", device="cpu", status=RunStatus.QUEUED)
        store.set_pid([run_id], dead.pid)  # its mark is read while the child is there (not yet reaped)
        assert store.get_run(run_id).pid_mark is not None or own_mark() is None
        resumed = store.create_run(tiny08, engine="torch", device="cpu", status=RunStatus.QUEUED)
        store.conn.execute("UPDATE runs SET epochs_done = 1 WHERE id = ?", (resumed,))
        store.set_pid([resumed], dead.pid)
        dead.wait()
        assert reap(store) == []  # a queued run is cancelled or gone, not crashed
        assert store.get_run(run_id) is None
        record = store.get_run(resumed)
    assert record.status == "cancelled" and "on this machine is gone" in record.message
