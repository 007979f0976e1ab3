"""The one planner (runs/plan.py) and where its tasks train (runs/execute.py), with real
processes and real signals: a study stopped over the pool and run again, two commands on
one study, a rerun right after kill -9, a full disk in the middle of a group, and the app,
`run` and `run --seeds` planning the same tasks."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fnn_tui.core.status import RunStatus
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store

from .helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _args(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fnn_tui", "--home", str(home), *args]


def _start(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(_args(home, *args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_args(home, *args), env=_env(), capture_output=True, text=True, timeout=timeout)


def _runs(home: Path):
    if not (home / DB_NAME).exists():
        return []
    with Store(home) as store:
        return store.list_runs()


def _numbers(home: Path) -> dict[tuple[str, int], list]:
    """Every run's stored epochs (without their timings), by (preset, seed); one run each."""
    out: dict[tuple[str, int], list] = {}
    with Store(home) as store:
        for r in store.list_runs():
            assert (r.preset, r.seed) not in out, f"two runs of {r.preset} seed {r.seed}"
            out[(r.preset, r.seed)] = [dataclasses.replace(m, seconds=0.0) for m in store.epochs(r.id)]
    return out


def _assert_like_straight(home: Path, straight: Path, epochs: int) -> None:
    ours, ref = _numbers(home), _numbers(straight)
    assert sorted(ours) == sorted(ref)
    for key, rows in ours.items():
        assert [m.epoch for m in rows] == list(range(1, epochs + 1)), key  # each epoch once
        assert rows == ref[key], key  # bit for bit: the numbers of an uninterrupted study
    assert all(r.status == RunStatus.FINISHED for r in _runs(home))


def _stop_when(proc: subprocess.Popen, home: Path, ready, signum: int) -> str:
    """Send ``signum`` once ``ready(runs)`` holds (the runs are training), and return stderr."""
    try:
        wait_for(lambda: proc.poll() is None and ready(_runs(home)) or proc.poll() is not None, timeout=240)
        assert proc.poll() is None, f"ended before it could be stopped: {proc.communicate()}"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return err


# --- a study stopped over the pool, run again (the resume crash) ---------------------------


POOL_EPOCHS = 300  # row 8's group needs seconds more once both groups have two epochs
POOL = ("run", "8", "9", "--seeds", "2", "--jobs", "2", "--epochs", str(POOL_EPOCHS))


def _straight(tmp_path: Path, *command: str) -> Path:
    """The same study trained without a stop: the numbers to equal."""
    straight = tmp_path / "straight"
    done = _cli(straight, *command)
    assert done.returncode == 0, done.stderr
    return straight


@pytest.fixture(scope="module")
def pool_straight(tmp_path_factory) -> Path:
    """:data:`POOL` trained without a stop, once for the tests that stop it."""
    return _straight(tmp_path_factory.mktemp("pool"), *POOL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_study_stopped_over_the_pool_goes_on_to_the_uninterrupted_numbers(tmp_path: Path, signum: int,
                                                                            pool_straight: Path) -> None:
    """The issue's `run 8 9 --seeds 2 --jobs 2` (two tasks: rows 8 and 9 differ in their
    samples, so one process each), stopped while both groups train, then the same command:
    exit 0, the table of the runs, every run finished with epochs 1..n once each and the
    numbers of an uninterrupted study. (It crashed with three AttributeErrors after training.)"""
    epochs, command, straight = POOL_EPOCHS, POOL, pool_straight
    home = tmp_path / "stopped"
    proc = _start(home, *command)
    _stop_when(proc, home, lambda runs: len(runs) == 4 and all(r.epochs_done >= 2 for r in runs), signum)
    if signum == signal.SIGKILL:  # the workers notice and stop themselves as interrupted
        wait_for(lambda: all(not r.status.active for r in _runs(home)) or None, timeout=180)
    stopped = _runs(home)
    assert {r.status for r in stopped} == {RunStatus.INTERRUPTED}
    assert all(2 <= r.epochs_done < epochs for r in stopped)
    again = _cli(home, *command)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "resuming 4 stopped" in again.stderr
    assert "Runs: ours" in again.stdout and again.stdout.count("finished") == 4  # the table of the runs
    _assert_like_straight(home, straight, epochs)


def test_every_preset_stopped_over_every_core_goes_on(tmp_path: Path) -> None:
    """`run --all --seeds 2 --jobs 0` on tiny overrides, SIGINT while it trains, then again."""
    epochs = 6
    command = ("run", "--all", "--seeds", "2", "--jobs", "0", "--epochs", str(epochs), "--samples", "300")
    straight = tmp_path / "straight"
    assert _cli(straight, *command, timeout=600).returncode in (0, 1)  # a row may diverge: exit 1
    home = tmp_path / "stopped"
    proc = _start(home, *command)
    _stop_when(proc, home, lambda runs: any(r.epochs_done >= 1 for r in runs)
               and any(r.status.active and r.epochs_done < epochs for r in runs), signal.SIGINT)
    assert proc.returncode == 128 + signal.SIGINT
    assert not any(r.status.active for r in _runs(home))
    again = _cli(home, *command, timeout=600)
    assert again.returncode in (0, 1) and "Traceback" not in again.stderr, again.stderr
    assert "Runs: ours" in again.stdout
    ours, ref = _numbers(home), _numbers(straight)
    assert sorted(ours) == sorted(ref) and len(ours) == 22
    for key in ours:
        assert ours[key] == ref[key], key


# --- what is done, what trains together, and what the command says -------------------------


def test_tasks_stand_where_their_first_run_was_asked_for(home: Path, catalog) -> None:
    """Runs that train alone keep the order they were asked in: exp07, exp08, exp09 on the
    torch engine were planned 07, 09, 08 (07 and 09 share a network shape, so one key), and a
    queue a student lined up trained out of order. Lanes of one shape still group, at the place
    of their first run."""
    from fnn_tui.core.group import lane_key
    from fnn_tui.core.trainer import RunOptions
    from fnn_tui.runs.plan import plan

    tiny = {"samples": 150, "epochs": 2}
    quick, last = (catalog.get(n).with_overrides(**tiny) for n in ("exp07", "exp09"))
    slow = catalog.get("exp08").with_overrides(samples=300, epochs=3)
    assert lane_key(quick) == lane_key(last) != lane_key(slow)
    with Store(home) as store:
        alone = plan(store, [quick, slow, last], RunOptions(engine="torch"))
        presets = {r.id: r.preset for r in store.list_runs()}
    assert [[presets[i] for i in t.run_ids] for t in alone.tasks] == [["exp07"], ["exp08"], ["exp09"]]
    assert [t.lanes_kernel for t in alone.tasks] == [False] * 3

    other = catalog.get("exp01").with_overrides(**tiny)
    with Store(home) as store:
        grouped = plan(store, [quick, other, last], RunOptions(engine="fused", device="cpu"), seeds=[5, 6])
        presets = {r.id: r.preset for r in store.list_runs()}
    assert [[presets[i] for i in t.run_ids] for t in grouped.tasks] == [["exp07"] * 2 + ["exp09"] * 2, ["exp01"] * 2]
    assert all(t.lanes_kernel for t in grouped.tasks)


def test_a_plain_run_of_a_done_seed_trains_nothing_unless_asked(home: Path) -> None:
    tiny = ("--epochs", "2", "--samples", "150")
    first = _cli(home, "run", "8", *tiny)
    assert first.returncode == 0, first.stderr
    again = _cli(home, "run", "8", *tiny)
    assert again.returncode == 0 and "nothing to train: 1 seed done" in again.stderr and "--again" in again.stderr
    assert len(_runs(home)) == 1
    repeat = _cli(home, "run", "8", *tiny, "--again")
    assert repeat.returncode == 0 and "training 1 done seed again" in repeat.stderr, repeat.stderr
    runs = _runs(home)
    assert [(r.seed, r.status) for r in runs] == [(0, RunStatus.FINISHED)] * 2


def test_the_processes_message_says_what_happened(home: Path) -> None:
    """Up to 16 seeds of one study are one task: `--jobs 4` trains them in this process and
    says nothing of processes (it said "over 4 processes"); two tasks go over two."""
    tiny = ("--epochs", "2", "--samples", "150")
    one = _cli(home, "run", "7", "--seeds", "3", "--jobs", "4", *tiny)
    assert one.returncode == 0 and "process" not in one.stderr, one.stderr
    two = _cli(home, "run", "7", "1", "--seeds", "0-4", "--jobs", "4", *tiny)  # two network shapes
    assert two.returncode in (0, 1), two.stderr
    assert re.search(r"7 runs in 2 tasks, [\d.]+ s over 2 processes", two.stderr), two.stderr  # 3 seeds were done


def test_two_commands_started_together_train_each_seed_once(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    assert _cli(home, "list").returncode == 0  # the store exists: both race on the seeds, not on its creation
    command = ("run", "exp07", "--seeds", "4", "--epochs", "10", "--samples", "300")
    procs = [_start(home, *command) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    runs = _runs(home)
    assert sorted(r.seed for r in runs) == [0, 1, 2, 3]  # one run per seed, not two
    assert all(r.status == RunStatus.FINISHED for r in runs)
    said = " ".join(err for _, err in outputs)
    assert "training now in another process" in said, said


def test_a_rerun_right_after_kill_9_trains_at_once(tmp_path: Path) -> None:
    """Within a second of a kill -9 the runs' process is known dead on this machine: the same
    command resumes them (it said "nothing to train: 4 training now")."""
    home = tmp_path / "killed"
    command = ("run", "exp07", "--seeds", "4", "--epochs", "400", "--samples", "3000", "--engine", "fused")
    proc = _start(home, *command)
    _stop_when(proc, home, lambda runs: len(runs) == 4 and all(r.epochs_done >= 1 for r in runs), signal.SIGKILL)
    again = _cli(home, *command)
    assert again.returncode == 0, again.stderr
    assert "resuming 4 stopped" in again.stderr and "training now" not in again.stderr
    assert [r.status for r in _runs(home)] == [RunStatus.FINISHED] * 4


# --- a full disk in the middle of a group ---------------------------------------------------


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a small tmpfs is a Linux mount")
def test_a_group_stopped_by_a_full_disk_goes_on_to_the_uninterrupted_numbers(tmp_path: Path) -> None:
    """A real full disk (a small tmpfs, filled up to a few budgets of free bytes) stops an
    8-seed group while it writes checkpoints and epochs; some lanes' checkpoints were
    written and others not. Once space is freed the same command goes on, and every seed
    ends with the numbers of an uninterrupted study, bit for bit."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    epochs = 15
    command = ("run", "exp08", "--seeds", "8", "--epochs", str(epochs), "--samples", "400", "--engine", "fused")
    straight = tmp_path / "straight"
    assert _cli(straight, *command).returncode == 0
    outcomes = []
    try:
        for budget in (60_000, 150_000, 300_000, 450_000):
            home = disk / f"home{budget}"
            assert _cli(home, "list").returncode == 0
            filler = disk / "filler"
            free = shutil.disk_usage(disk).free
            with open(filler, "wb") as f:
                f.write(b"\0" * max(0, free - budget))
            first = _cli(home, *command)
            outcomes.append((budget, first.returncode))
            assert first.returncode in (0, 2), first.stderr
            if first.returncode == 2:
                lines = [line for line in first.stderr.splitlines() if line.strip() and "━" not in line]
                assert "Traceback" not in first.stderr and lines, first.stderr
            filler.unlink()
            again = _cli(home, *command)
            assert again.returncode == 0, again.stderr
            _assert_like_straight(home, straight, epochs)
            shutil.rmtree(home)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert any(code == 2 for _, code in outcomes), outcomes  # the disk did fill at some budget


# --- one planner for the app, `run` and `run --seeds` ---------------------------------------


def _worker_tasks(home: Path) -> str:
    """The tasks line the background worker logged (it trains them, then the log is read)."""
    def line():
        for log in home.glob("runs/*/worker.log"):
            found = re.search(r"worker: tasks (.*) over", log.read_text())
            if found:
                return found[1]
        return None

    return wait_for(line, timeout=60)


def _small_presets(folder: Path, catalog) -> list[str]:
    """Rows 3, 4 and 7 on 150 samples, as presets of their own (the app has no samples field)."""
    folder.mkdir()
    names = []
    for row in ("exp03", "exp04", "exp07"):
        text = Path(catalog.get(row).source).read_text()
        text = re.sub(r"(?m)^samples = .*$", "samples = 150", text)
        name = f"small{row[3:]}"
        (folder / f"{name}.toml").write_text(text)
        names.append(name)
    return names


async def test_the_app_and_run_plan_the_same_tasks(tmp_path: Path, catalog) -> None:
    """The same request (three presets over seeds 0-2, 2 epochs) from `run --detach`, from
    `run` in the foreground and from the app's Run all: the same tasks, the same runs."""
    from fnn_tui.tui.app import FnnApp
    from fnn_tui.tui.widgets.preset_list import PresetList

    presets = tmp_path / "presets"
    names = _small_presets(presets, catalog)
    request = ("--presets", str(presets), "run", *names, "--seeds", "0-2", "--epochs", "2")

    detached = tmp_path / "detached"
    done = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(detached), *request, "--detach"],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cli_tasks = _worker_tasks(detached)
    # rows 3 and 4 differ in their learning rate only: one kernel call for their six seeds
    assert cli_tasks == "g1,2,3,4,5,6 g7,8,9"

    foreground = tmp_path / "foreground"
    ran = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(foreground), *request],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert ran.returncode in (0, 1), ran.stderr  # row 4's recipe may diverge: exit 1

    app_home = tmp_path / "app"
    app = FnnApp(home=app_home, preset_dirs=[presets], engine="auto")
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if not app.runs.checking:
                break
        listing = app.query_one(PresetList)
        for name in names:
            assert listing.select_name(name)
            await pilot.pause()
            listing.action_toggle_mark()
        app.screen.query_one("#epochs").value = "2"
        app.screen.query_one("#seeds").value = "0-2"
        await pilot.pause()
        await pilot.press("a")
        for _ in range(1200):
            await pilot.pause(0.05)
            if app.runs.followed is not None:
                break
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert _worker_tasks(app_home) == cli_tasks

    def layout(home: Path) -> list[tuple]:
        return sorted((r.id, r.preset, r.seed, r.grouped, r.status.final) for r in _runs(home))

    assert layout(app_home) == layout(foreground) == layout(detached_done(detached))


def detached_done(home: Path) -> Path:
    wait_for(lambda: _runs(home) and not any(r.status.active for r in _runs(home)), timeout=240)
    return home
