"""Nothing lost: signals, dropped sessions, crashes, resume, faults in the store and checkpoints."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.events import EpochFinished, RunCancelled, RunDiverged, RunFinished
from fnn_tui.core.state import (
    CheckpointError,
    load_checkpoint,
    load_latest_checkpoint,
    previous_path,
    save_checkpoint,
)
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.background import stop_run
from fnn_tui.runs.liveness import reap
from fnn_tui.runs.record import ResumeError, record_run, resume_run
from fnn_tui.store.runs import Store

from .helpers import launch_presets, wait_for
from .test_training import inject_infinite_target

runner = CliRunner()


def _cli(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fnn_tui", "--home", str(home), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)



def _run(home: Path, run_id: int):
    with Store(home) as store:
        return store.get_run(run_id)


def _metrics(home: Path, run_id: int) -> list:
    with Store(home) as store:
        return [dataclasses.replace(m, seconds=0.0) for m in store.epochs(run_id)]


# --- signals and sessions ----------------------------------------------------------------


def test_sigterm_interrupts_cleanly_with_exit_143(home: Path) -> None:
    proc = _cli(home, "run", "exp08", "--epochs", "60", "--samples", "400", "--engine", "torch")
    wait_for(lambda: Path(home, "runs.sqlite3").exists() and (_run(home, 1) or None) and _run(home, 1).epochs_done >= 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    record = _run(home, 1)
    assert record.status == "interrupted" and 1 <= record.epochs_done < 60
    state = load_checkpoint(record.checkpoint_path)
    assert state.epoch == record.epochs_done
    assert b"fnn-tui resume 1" in err


def test_detached_run_survives_sighup_to_the_parent_group(home: Path) -> None:
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -m fnn_tui --home {home} run exp08 --epochs 40 --samples 400 "
                       "--engine torch --detach && sleep 60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        wait_for(lambda: Path(home, "runs.sqlite3").exists() and _run(home, 1) and _run(home, 1).epochs_done >= 1)
        os.killpg(shell.pid, signal.SIGHUP)  # what a dropped SSH session does to its terminal's group
        shell.wait(timeout=10)
        done = _run(home, 1).epochs_done
        wait_for(lambda: _run(home, 1).epochs_done >= done + 2, timeout=60)
        assert _run(home, 1).status == "running"
    finally:
        stop_run(home, 1)
    record = wait_for(lambda: (r := _run(home, 1)).status != "running" and r)
    assert record.status == "cancelled"


def test_stale_heartbeat_of_a_dead_process_is_marked_crashed(home: Path, tiny08) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store(home) as store:
        run_id = store.create_run(tiny08, engine="torch", device="cpu")
        store.conn.execute("UPDATE runs SET pid = ?, heartbeat_at = ? WHERE id = ?", (dead.pid, time.time() - 120, run_id))
        fresh = store.create_run(tiny08, engine="torch", device="cpu")  # this process: alive
        assert reap(store) == [run_id]
        assert store.get_run(run_id).status == "crashed"
        assert store.get_run(fresh).status == "running"


# --- resume, exactly ---------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["torch", "fused"])
def test_interrupt_and_resume_gives_the_uninterrupted_numbers(home: Path, tiny08, engine: str) -> None:
    preset = tiny08.with_overrides(epochs=5)
    straight = record_run(home, preset, RunOptions(engine=engine))
    stop = StopRequest()

    def interrupt_after_two(_run_id, event) -> None:
        if isinstance(event, EpochFinished) and event.metrics.epoch == 2:
            stop.set(RunStatus.INTERRUPTED, signal.SIGTERM)

    broken = record_run(home, preset, RunOptions(engine=engine), interrupt_after_two, stop)
    assert isinstance(broken.end, RunCancelled) and _run(home, broken.run_id).status == "interrupted"
    assert _run(home, broken.run_id).epochs_done == 2
    resumed = resume_run(home, broken.run_id)
    assert isinstance(resumed.end, RunFinished)
    assert _metrics(home, broken.run_id) == _metrics(home, straight.run_id)  # bit-identical on the CPU
    a = load_checkpoint(_run(home, straight.run_id).checkpoint_path)
    b = load_checkpoint(_run(home, broken.run_id).checkpoint_path)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert all(torch.equal(a.momentum[k], b.momentum[k]) for k in a.momentum)


def test_a_resumed_run_s_time_is_the_sum_of_its_legs(home: Path, tiny08) -> None:
    stop = StopRequest()

    def interrupt_after_one(_run_id, event) -> None:
        if isinstance(event, EpochFinished) and event.metrics.epoch == 1:
            stop.set(RunStatus.INTERRUPTED, signal.SIGTERM)

    first = record_run(home, tiny08, RunOptions(engine="torch"), interrupt_after_one, stop)
    assert isinstance(first.end, RunCancelled)
    assert _run(home, first.run_id).wall_seconds == pytest.approx(first.end.wall_seconds)
    second = resume_run(home, first.run_id)
    assert isinstance(second.end, RunFinished)
    total = first.end.wall_seconds + second.end.wall_seconds
    assert _run(home, first.run_id).wall_seconds >= total * (1 - 1e-9)  # not only the last leg


@pytest.mark.parametrize("engine", ["torch", "fused"])
def test_a_run_stopped_inside_an_epoch_resumes_from_that_step(home: Path, tiny08, engine: str, monkeypatch) -> None:
    from fnn_tui.core import trainer
    from fnn_tui.core.events import StepProgress

    monkeypatch.setattr(trainer, "CHUNK_SECONDS", 1e-4)  # small chunks: many stop points per epoch
    preset = tiny08.with_overrides(epochs=4)
    straight = record_run(home, preset, RunOptions(engine=engine))
    stop = StopRequest()

    def interrupt_inside_epoch_three(_run_id, event) -> None:
        if isinstance(event, StepProgress) and event.epoch == 3 and 0 < event.step < event.steps_per_epoch:
            stop.set(RunStatus.INTERRUPTED, signal.SIGTERM)

    broken = record_run(home, preset, RunOptions(engine=engine), interrupt_inside_epoch_three, stop)
    record = _run(home, broken.run_id)
    assert record.status == "interrupted" and record.epochs_done == 2
    state = load_checkpoint(record.checkpoint_path)
    assert state.epoch == 2 and 0 < state.step < 240 and state.step_losses.numel() == state.step
    assert f"at epoch 3, step {state.step}" in record.message
    assert load_checkpoint(previous_path(record.checkpoint_path)).step == 0  # the epoch-2 checkpoint is kept
    resumed = resume_run(home, broken.run_id)
    assert isinstance(resumed.end, RunFinished)
    assert _metrics(home, broken.run_id) == _metrics(home, straight.run_id)
    a = load_checkpoint(_run(home, straight.run_id).checkpoint_path)
    b = load_checkpoint(_run(home, broken.run_id).checkpoint_path)
    assert b.step == 0 and all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_resume_on_another_device_records_it(home: Path, tiny08) -> None:
    stop = StopRequest()
    run = record_run(home, tiny08, RunOptions(engine="torch"),
                     lambda _run_id, e: isinstance(e, EpochFinished) and stop.set(RunStatus.INTERRUPTED), stop)
    with Store(home) as store:  # as if it had been made on a GPU box and copied here
        store.conn.execute("UPDATE runs SET device = 'cuda:0' WHERE id = ?", (run.run_id,))
    result = runner.invoke(app, ["--home", str(home), "resume", str(run.run_id), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = _run(home, run.run_id)
    assert (record.status, record.device, record.epochs_done) == ("finished", "cpu", 3)


def test_a_gpu_group_lane_resumes_on_the_cpu_as_a_lane(home: Path, tiny08) -> None:
    """``resume N --device cpu`` of a lane the GPU group engine trained (its engine column
    ``fused-cuda``) goes on in the CPU multi-seed kernel; it used to stop at "unknown engine"."""
    from .helpers import train

    stop = StopRequest()
    first = train(home, [tiny08], [0, 1], stop=stop,
                  on_event=lambda _rid, e: isinstance(e, EpochFinished) and stop.set(RunStatus.INTERRUPTED))
    lane = first[0].run_id
    assert _run(home, lane).grouped and _run(home, lane).status == "interrupted"
    with Store(home) as store:  # as if a GPU box had trained it and the store were copied here
        store.conn.execute("UPDATE runs SET engine = 'fused-cuda', device = 'cuda:0' WHERE id = ?", (lane,))
    result = runner.invoke(app, ["--home", str(home), "resume", str(lane), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = _run(home, lane)
    assert (record.status, record.engine, record.device, record.epochs_done) == ("finished", "fused", "cpu", 3)
    # on a device this machine lacks: one line, exit 2, and the run is left as it was
    other = first[1].run_id
    before = _run(home, other)
    result = runner.invoke(app, ["--home", str(home), "resume", str(other), "--device", "cuda:7"])
    assert result.exit_code == 2 and "cuda:7" in result.output
    after = _run(home, other)
    assert (after.status, after.engine, after.device) == (before.status, before.engine, before.device)


def test_corrupt_latest_checkpoint_falls_back_then_fails_clearly(home: Path, tiny08) -> None:
    stop = StopRequest()
    result = record_run(home, tiny08, RunOptions(engine="fused"),
                        lambda _run_id, e: isinstance(e, EpochFinished) and e.metrics.epoch == 2 and stop.set(RunStatus.INTERRUPTED), stop)
    path = _run(home, result.run_id).checkpoint_path
    assert load_checkpoint(path).epoch == 2 and load_checkpoint(previous_path(path)).epoch == 1
    path.write_bytes(b"garbage, not a zip")
    state, used = load_latest_checkpoint(path)
    assert used == previous_path(path) and state.epoch == 1
    resumed = resume_run(home, result.run_id)
    assert isinstance(resumed.end, RunFinished)
    assert [m.epoch for m in _metrics(home, result.run_id)] == [1, 2, 3]
    # both gone: a clear error and exit code 2, never a silent fresh start
    with Store(home) as store:
        store.end_run(result.run_id, "interrupted")
    path.unlink()
    previous_path(path).unlink()
    with pytest.raises(ResumeError, match="no checkpoint"):
        resume_run(home, result.run_id)
    cli = runner.invoke(app, ["--home", str(home), "resume", str(result.run_id)])
    assert cli.exit_code == 2 and "no checkpoint" in cli.output


def test_a_save_that_fails_halfway_keeps_the_previous_checkpoint(tmp_path: Path, home: Path, tiny08, monkeypatch) -> None:
    result = record_run(home, tiny08.with_overrides(epochs=1), RunOptions(engine="fused"))
    good = load_checkpoint(_run(home, result.run_id).checkpoint_path)
    target = tmp_path / "ck" / "checkpoint.pt"
    save_checkpoint(good, target)

    def half_save(obj, fh) -> None:
        fh.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_save)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(dataclasses.replace(good, epoch=2), target)
    assert load_checkpoint(target).epoch == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint.pt"]


# a full disk during a run: tests/test_run_faults.py, with a real one (RLIMIT_FSIZE)


def test_checkpoints_of_the_first_format_still_load(tmp_path: Path, home: Path, tiny08) -> None:
    result = record_run(home, tiny08.with_overrides(epochs=1), RunOptions(engine="fused"))
    payload = load_checkpoint(_run(home, result.run_id).checkpoint_path).to_payload()
    old = {k: v for k, v in payload.items() if not k.startswith("step")} | {"version": 1}
    torch.save(old, tmp_path / "v1.pt")
    state = load_checkpoint(tmp_path / "v1.pt")
    assert state.epoch == 1 and state.step == 0 and state.step_losses is None
    torch.save(payload | {"step": 5}, tmp_path / "bad.pt")  # a position without its step log
    with pytest.raises(CheckpointError, match="missing fields"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps(Evil(), protocol=2))  # torch.load's own protocol: no warning
    with pytest.raises(CheckpointError, match="not an fnn-tui checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an fnn-tui checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    assert not marker.exists()


def test_infinite_loss_keeps_the_last_finite_checkpoint(home: Path, tiny08, monkeypatch) -> None:
    inject_infinite_target(monkeypatch, epoch=2, step=3)
    result = record_run(home, tiny08.with_overrides(epochs=4), RunOptions(engine="fused"))
    assert isinstance(result.end, RunDiverged) and (result.end.epoch, result.end.step) == (3, 4)
    record = _run(home, result.run_id)
    assert record.status == "diverged" and record.epochs_done == 2 and record.diverged_epoch == 3
    state = load_checkpoint(record.checkpoint_path)
    assert state.epoch == 2 and all(torch.isfinite(t).all() for t in state.params.values())
    listed = runner.invoke(app, ["--home", str(home), "table", "--all-runs", "--format", "csv"])
    assert "diverged@3" in listed.output


# --- the store under faults --------------------------------------------------------------


def test_two_processes_write_the_store_at_once(home: Path) -> None:
    # two studies (one seed of one study is claimed by one process only: tests/test_plan.py)
    procs = [_cli(home, "run", name, "--epochs", "4", "--samples", "300", "--engine", e)
             for name, e in (("exp07", "torch"), ("exp08", "fused"))]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert b"locked" not in err
    with Store(home) as store:
        runs = store.list_runs()
        assert sorted(r.status for r in runs) == ["finished", "finished"]
        assert all(len(store.epochs(r.id)) == 4 for r in runs)
        assert store.integrity_ok()


WRITER = """
import sys, time
from pathlib import Path
from fnn_tui.core.catalog import discover
from fnn_tui.core.events import EpochMetrics
from fnn_tui.store.runs import Store
store = Store(Path(sys.argv[1]))
run_id = store.create_run(discover(include_user=False).get("exp08"), engine="torch", device="cpu")
print(run_id, flush=True)
epoch = 0
while True:
    epoch += 1
    store.add_epoch(run_id, EpochMetrics(epoch, 1.0 / epoch, 1.0, 0.5, 1.0, 0.3, 0.01, 0.001))
"""


def test_a_sigkilled_writer_leaves_whole_epochs_only(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(home)], stdout=subprocess.PIPE)
    run_id = int(proc.stdout.readline())
    wait_for(lambda: _run(home, run_id).epochs_done > 200, timeout=60, every=0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with Store(home) as store:
        assert store.integrity_ok()
        epochs = store.epochs(run_id)
        record = store.get_run(run_id)
        assert [m.epoch for m in epochs] == list(range(1, len(epochs) + 1))
        assert record.epochs_done == len(epochs) > 200
        reap(store, grace=0)
        assert store.get_run(run_id).status == "crashed"


# --- background batches and Run all ------------------------------------------------------


def test_background_batch_trains_in_order_and_stop_leaves_no_rows_of_the_rest(home: Path, catalog) -> None:
    """Changed with the planner: the runs of a stopped queue that never started are deleted
    again instead of stored as "cancelled 0/N" rows (what a student saw as clutter)."""
    quick = catalog.get("exp07").with_overrides(samples=200, epochs=2)
    slow = catalog.get("exp08").with_overrides(samples=400, epochs=200)
    last = catalog.get("exp09").with_overrides(samples=200, epochs=2)
    launched = launch_presets(home, [quick, slow, last], RunOptions(engine="torch"))
    first, second, third = launched.run_ids
    wait_for(lambda: _run(home, second).epochs_done >= 1, timeout=60)
    assert _run(home, first).status == "finished" and _run(home, third).status == "queued"
    stop_run(home, second)
    assert launched.process.wait(timeout=60) == 0
    assert _run(home, second).status == "cancelled" and _run(home, third) is None
    log = (_run(home, first).folder / "worker.log").read_text()
    assert log.count("epoch") >= 2
    # one line per event (and the worker's own lines): each stamped, nothing else is dumped there
    stamped = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (run (\d+)|worker): ")
    assert all(stamped.match(line) for line in log.splitlines()), log
    assert sum(1 for line in log.splitlines() if line.endswith(": finished")) == 1


def test_worker_log_keeps_a_many_line_error_on_one_line(capsys) -> None:
    from fnn_tui.core.events import RunFailed
    from fnn_tui.runs.worker import log_event

    log_event(3, RunFailed("RuntimeError: CUDA error: out of memory\nCompile with TORCH_USE_CUDA_DSA\n", 1.0))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].endswith("run 3: failed: RuntimeError: CUDA error: out of memory / "
                                                 "Compile with TORCH_USE_CUDA_DSA"), lines


def test_run_all_skips_finished_and_resumes_interrupted(home: Path, catalog) -> None:
    """Changed with the planner: Run all follows the one rule of `run` (a seed done on any
    engine is done; the report counts every engine's runs of a study in one row)."""
    from fnn_tui.runs.plan import plan
    from fnn_tui.store.runs import Store

    a = catalog.get("exp07").with_overrides(samples=200, epochs=3)
    b = catalog.get("exp08").with_overrides(samples=200, epochs=3)
    c = catalog.get("exp09").with_overrides(samples=200, epochs=3)
    done = record_run(home, a, RunOptions(engine="fused"))
    stop = StopRequest()
    interrupted = record_run(home, b, RunOptions(engine="fused"),
                             lambda _run_id, e: isinstance(e, EpochFinished) and stop.set(RunStatus.INTERRUPTED), stop)
    with Store(home) as store:
        planned = plan(store, [a, b, c], RunOptions(engine="fused"))
        runs = [store.get_run(rid) for rid in planned.run_ids]
    assert planned.done == [done.run_id] and planned.resumed == [interrupted.run_id]
    assert [(r.preset, r.id == interrupted.run_id) for r in runs] == [("exp08", True), ("exp09", False)]
    with Store(home) as store:
        other_engine = plan(store, [a], RunOptions(engine="torch"))
    assert other_engine.tasks == [] and other_engine.done == [done.run_id]


def test_stop_and_attach_answer_bad_input_with_exit_2(home: Path) -> None:
    for args in (["stop", "5"], ["attach"], ["attach", "9"]):
        result = runner.invoke(app, ["--home", str(home), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


def test_a_run_stopped_before_its_first_epoch_resumes_from_the_start(home: Path, tiny08) -> None:
    from fnn_tui.core.events import RunStarted

    straight = record_run(home, tiny08, RunOptions(engine="fused"))
    stop = StopRequest()
    early = record_run(home, tiny08, RunOptions(engine="fused"),
                       lambda _run_id, e: isinstance(e, RunStarted) and stop.set(RunStatus.INTERRUPTED), stop)
    assert _run(home, early.run_id).status == "interrupted" and _run(home, early.run_id).epochs_done == 0
    assert isinstance(resume_run(home, early.run_id).end, RunFinished)
    assert _metrics(home, early.run_id) == _metrics(home, straight.run_id)
