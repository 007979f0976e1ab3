"""The Ray executor (runs/ray_executor.py) on a real Ray cluster: one cluster for every test
(``ray.cluster_utils.Cluster``: a head with no CPU and two one-CPU worker nodes, so the
pieces train on the worker nodes), and real commands pointed at it with ``--ray-address``.

A node killed mid-study, the command stopped by SIGINT and by SIGKILL: each ends, after the
same command again where needed, with every epoch stored once and the numbers of an
uninterrupted local study, bit for bit. Skipped where Ray is not installed (it is an
optional extra: ``pip install '.[ray]'``); the "Ray missing" test runs everywhere."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fnn_tui.core.status import RunStatus

from .helpers import wait_for
from .test_plan import _assert_like_straight, _cli, _env, _runs, _start, _stop_when, _straight

ray_needed = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import ray"], capture_output=True).returncode != 0,
    reason="Ray is not installed (pip install '.[ray]')")

SMALL = ("--samples", "300")


@pytest.fixture(scope="module")
def cluster():
    """One Ray cluster for this file: the head (no CPU) and two worker nodes of one CPU."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        c.shutdown()


def _on(cluster) -> tuple[str, ...]:
    return ("--executor", "ray", "--ray-address", cluster.address)


LONG = ("run", "8", "10", "--seeds", "2", "--epochs", "300", *SMALL)  # two groups, seconds each


@pytest.fixture(scope="module")
def long_straight(tmp_path_factory) -> Path:
    """:data:`LONG` trained locally without a stop, once for the tests that stop it."""
    return _straight(tmp_path_factory.mktemp("long"), *LONG)


@ray_needed
def test_a_study_on_ray_equals_the_local_one_and_says_where_it_trained(tmp_path: Path, cluster) -> None:
    command = ("run", "8", "10", "--seeds", "2", "--epochs", "4", *SMALL)
    straight = _straight(tmp_path, *command)
    home = tmp_path / "ray"
    done = _cli(home, *command, *_on(cluster))
    assert done.returncode == 0, done.stderr
    assert "training on Ray: 3 nodes, 2 CPUs" in done.stderr
    assert "4 runs in 2 tasks" in done.stderr and "over 2 Ray workers" in done.stderr
    assert "Runs: ours" in done.stdout and done.stdout.count("finished") == 4
    _assert_like_straight(home, straight, 4)


@ray_needed
def test_a_node_killed_mid_study_loses_nothing(tmp_path: Path, cluster, long_straight: Path) -> None:
    """Two groups train, one per worker node; the nodes are killed (their processes, for
    real), one after the other, a fresh node added after each. A lost piece goes on from the
    checkpoint the command stored, on a node left, and the study ends with every epoch once
    and the uninterrupted numbers. (Both nodes go: the faster group may have ended by the
    time the slower has 20 epochs, and which node trains which group is Ray's choice.)"""
    epochs, command, straight = 300, LONG, long_straight
    home = tmp_path / "ray"
    proc = _start(home, *command, *_on(cluster))
    try:
        wait_for(lambda: proc.poll() is not None or (
            len(runs := _runs(home)) == 4 and all(r.epochs_done >= 20 for r in runs)), timeout=240)
        assert proc.poll() is None, proc.communicate()
        for victim in list(cluster.worker_nodes):
            cluster.remove_node(victim, allow_graceful=False)
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
        while len(cluster.worker_nodes) < 2:  # the cluster as the other tests expect it
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
    assert proc.returncode == 0, err
    assert "lost its Ray worker" in err and "goes on from epoch" in err
    assert out.count("finished") == 4
    _assert_like_straight(home, straight, epochs)


@ray_needed
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_the_command_stopped_goes_on_with_the_same_command(tmp_path: Path, cluster, long_straight: Path,
                                                           signum: int) -> None:
    epochs, command, straight = 300, LONG, long_straight
    home = tmp_path / "ray"
    proc = _start(home, *command, *_on(cluster))
    err = _stop_when(proc, home, lambda runs: len(runs) == 4 and all(r.epochs_done >= 5 for r in runs), signum)
    stopped = _runs(home)
    # a group may have reached its last epoch before the stop got to it: finished, and kept
    going = [r for r in stopped if r.status != RunStatus.FINISHED]
    assert going, "every run finished before the stop"
    if signum == signal.SIGINT:
        assert proc.returncode == 130, err
        assert {r.status for r in going} == {RunStatus.INTERRUPTED}
    else:  # the command's pid is dead: the next command sees the runs as crashed
        assert proc.returncode == -signal.SIGKILL
    assert all(5 <= r.epochs_done < epochs for r in going)
    again = _cli(home, *command, *_on(cluster))
    assert again.returncode == 0, again.stderr
    assert f"resuming {len(going)} stopped" in again.stderr
    _assert_like_straight(home, straight, epochs)


@ray_needed
def test_no_cluster_at_the_address_is_one_line_before_any_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _cli(home, "run", "8", "--seeds", "2", *SMALL, "--executor", "ray", "--ray-address", "127.0.0.1:9")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Ray cluster answers at 127.0.0.1:9"), done.stderr
    assert _runs(home) == []


def test_without_ray_the_executor_says_how_to_install_it(tmp_path: Path) -> None:
    """Ray made unimportable (a module named ray that raises ImportError, first on the path)."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('No module named ray')\n")
    env = _env()
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(home), "run", "8", *SMALL,
                           "--executor", "ray"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --executor ray needs Ray, which is not installed: "
                                   "pip install 'fnn-tui[ray]'")
    assert _runs(home) == []
    bad = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(home), "run", "8", "--executor", "dask"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "expected local or ray" in bad.stderr


@ray_needed
def test_a_sweep_and_a_detached_run_train_on_ray(tmp_path: Path, cluster) -> None:
    home = tmp_path / "home"
    swept = _cli(home, "sweep", "8", "--set", "lr=0.01,0.05", "--seeds", "2", "--epochs", "3", *SMALL, *_on(cluster))
    assert swept.returncode == 0, swept.stderr
    assert "over 1 Ray worker" in swept.stderr  # the variants share one kernel: one piece
    runs = _runs(home)
    assert len(runs) == 4 and {r.status for r in runs} == {RunStatus.FINISHED}
    assert all(r.epochs_done == 3 for r in runs)

    detached = _cli(home, "run", "10", "--seeds", "2", "--epochs", "3", *SMALL, "--detach", *_on(cluster))
    assert detached.returncode == 0, detached.stderr
    wait_for(lambda: len(runs := _runs(home)) == 6 and all(r.status.final for r in runs), timeout=180)
    assert all(r.status == RunStatus.FINISHED and r.epochs_done == 3 for r in _runs(home))
    log = next(home.rglob("worker.log")).read_text()
    assert "on Ray: 3 nodes, 2 CPUs" in log


@ray_needed
async def test_the_apps_run_all_trains_on_ray(tmp_path: Path, cluster, catalog) -> None:
    """`fnn-tui tui --executor ray`: Run all hands its tasks to a background worker on Ray."""
    from fnn_tui.tui.app import FnnApp
    from fnn_tui.tui.widgets.preset_list import PresetList

    home = tmp_path / "app"
    app = FnnApp(home=home, executor="ray", ray_address=cluster.address)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if not app.runs.checking:
                break
        listing = app.query_one(PresetList)
        for name in ("exp08", "exp10"):
            assert listing.select_name(name)
            await pilot.pause()
            listing.action_toggle_mark()
        app.screen.query_one("#epochs").value = "2"
        app.screen.query_one("#seeds").value = "0-1"
        await pilot.pause()
        await pilot.press("a")
        for _ in range(1200):
            await pilot.pause(0.05)
            runs = _runs(home)
            if len(runs) == 4 and all(r.status.final for r in runs):
                break
    runs = _runs(home)
    assert len(runs) == 4 and {r.status for r in runs} == {RunStatus.FINISHED}, [(r.status, r.message) for r in runs]
    log = next(home.rglob("worker.log")).read_text()
    assert "on Ray" in log, textwrap.shorten(log, 300)


@ray_needed
def test_without_an_address_the_command_starts_a_local_ray_for_itself(tmp_path: Path) -> None:
    """No --ray-address and no RAY_ADDRESS: a local Ray of this machine's cores, started and
    ended by the command."""
    env = {k: v for k, v in _env().items() if k != "RAY_ADDRESS"}
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(home), "run", "8", "--seeds", "2",
                           "--epochs", "2", *SMALL, "--executor", "ray"], env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    assert "training on Ray: 1 node," in done.stderr and "over 1 Ray worker" in done.stderr
    runs = _runs(home)
    assert len(runs) == 2 and all(r.status == RunStatus.FINISHED and r.epochs_done == 2 for r in runs)
