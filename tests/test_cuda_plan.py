"""`--device cuda` with several seeds plans GPU groups (the fused-cuda engine), and `auto`
keeps groups on the CPU here.

The commands run as real processes with Numba's CUDA simulator switched on in their
environment only (``NUMBA_ENABLE_CUDASIM=1``: read when Numba is first imported, so it never
reaches this process, whose CPU kernels use the real Numba). The simulator runs each GPU
thread as a Python thread, so the cases are three seeds of a few hundred samples. The
planner's own rules are tested in this process, with no simulator and no GPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fnn_tui.core.devices import DeviceError
from fnn_tui.core.group import (
    GPU_MAX_LANES,
    default_lanes,
    group_capacity,
    group_sizes,
    planned_runs,
    task_run,
)
from fnn_tui.core.status import RunStatus
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.plan import plan
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store

from .helpers import train, wait_for

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--set", "samples=200", "--set", "epochs=2")


def _env(simulator: bool, kernel: str = "thread") -> dict[str, str]:
    # the planner's tests train on the thread kernel, which the simulator runs ~5x faster (no
    # barriers between Python threads); one runs the default block kernel end to end
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FNN_TUI_CUDA_KERNEL": kernel}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return env


def _args(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fnn_tui", "--home", str(home), *args]


def _cli(home: Path, *args: str, simulator: bool = True, kernel: str = "thread") -> subprocess.CompletedProcess:
    return subprocess.run(_args(home, *args), env=_env(simulator, kernel), capture_output=True, text=True, timeout=300)


def _simulator_works() -> bool:
    probe = "from numba import cuda; import sys; sys.exit(0 if cuda.is_available() else 1)"
    try:
        return subprocess.run([sys.executable, "-c", probe], env=_env(True), timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


simulator = pytest.mark.skipif(not _simulator_works(), reason="Numba's CUDA simulator does not run here")


def _runs(home: Path):
    if not (home / DB_NAME).exists():
        return []
    with Store(home) as store:
        return sorted(store.list_runs(), key=lambda r: r.seed)


def _epochs(home: Path) -> dict[int, list]:
    """Each run's stored epochs without their timings, by seed."""
    with Store(home) as store:
        return {r.seed: [dataclasses.replace(m, seconds=0.0) for m in store.epochs(r.id)] for r in store.list_runs()}


def _cpu_reference(home: Path, catalog, samples: int, epochs: int) -> dict[int, list]:
    """The CPU multi-seed kernel's epochs of exp08's seeds 0-2 at these overrides (trained here)."""
    train(home, [catalog.get("exp08").with_overrides(samples=samples, epochs=epochs)], [0, 1, 2])
    assert {(r.engine, bool(r.grouped)) for r in _runs(home)} == {("fused", True)}
    return _epochs(home)


def _assert_close(ours: dict[int, list], cpu: dict[int, list], epochs: int) -> None:
    """Every seed's epochs 1..epochs once each, equal to the CPU multi-seed kernel's to float32 rounding."""
    assert sorted(ours) == sorted(cpu)
    for seed, rows in ours.items():
        assert [m.epoch for m in rows] == list(range(1, epochs + 1)), seed
        for a, b in zip(rows, cpu[seed], strict=True):
            for name in ("train_loss", "train_ratio", "test_loss", "test_ratio", "test_mae", "lr"):
                x, y = getattr(a, name), getattr(b, name)
                assert math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6), (seed, a.epoch, name, x, y)
            assert a.dead == b.dead


# --- the planner's rules, in this process (no GPU, no simulator) ---------------------------


def test_capacities(catalog) -> None:
    preset = catalog.get("exp08")
    assert group_capacity(preset, RunOptions("cpu", "fused")) == default_lanes()
    assert group_capacity(preset, RunOptions("auto", "auto")) == default_lanes()  # auto answers for the CPU
    assert group_capacity(preset, RunOptions("cpu", "torch")) == 1
    with pytest.raises(ValueError, match="fused-cuda"):  # the GPU group engine on the CPU: refused
        group_capacity(preset, RunOptions("cpu", "fused-cuda"))
    assert group_sizes(3, GPU_MAX_LANES) == [3]
    assert group_sizes(GPU_MAX_LANES, GPU_MAX_LANES) == [GPU_MAX_LANES]
    assert group_sizes(20_000, GPU_MAX_LANES) == [10_000, 10_000]  # even, not 16384 + 3616
    assert group_sizes(2 * GPU_MAX_LANES + 1, GPU_MAX_LANES) == [10923, 10923, 10923]
    assert sum(group_sizes(12345, 16)) == 12345 and max(group_sizes(12345, 16)) <= 16


def test_auto_keeps_studies_and_sweeps_on_the_cpu_here(catalog, home: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    preset = catalog.get("exp08").with_overrides(samples=200, epochs=2)
    runs = [preset.with_overrides(seed=s) for s in range(40)]
    assert {(r.engine, r.device) for r in planned_runs(runs, RunOptions())} == {("fused", "cpu")}
    with Store(home) as store:
        planned = plan(store, [preset], RunOptions(), list(range(20)))
        records = store.list_runs()
    assert {(r.engine, r.device) for r in records} == {("fused", "cpu")}
    assert [t.lanes for t in planned.tasks] == [default_lanes(), 20 - default_lanes()]
    assert all(t.lanes_kernel and t.engine == "fused" for t in planned.tasks)
    # a preset the fused kernels cannot train goes to the torch engine, one run alone each
    torch_only = [p.with_overrides(seed=s) for p in [catalog.get("exp08")] for s in range(3)]
    torch_only = [dataclasses.replace(p, model=dataclasses.replace(p.model, activation="tanh")) for p in torch_only]
    assert {r.engine for r in planned_runs(torch_only, RunOptions())} == {"torch"}


def test_cuda_without_a_gpu_is_one_line_before_any_work(catalog, home: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    preset = catalog.get("exp08").with_overrides(samples=200, epochs=2)
    with pytest.raises(DeviceError):
        planned_runs([preset.with_overrides(seed=s) for s in range(3)], RunOptions(device="cuda"))
    with Store(home) as store:
        with pytest.raises(DeviceError):
            plan(store, [preset], RunOptions(device="cuda"), [0, 1, 2])
        assert store.list_runs() == []  # nothing claimed
    done = _cli(home, "run", "8", "--seeds", "3", "--device", "cuda", *TINY, simulator=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cuda" in done.stderr, done.stderr


def test_a_bad_kernel_setting_is_one_line_before_any_work(home: Path) -> None:
    env = {**_env(False), "FNN_TUI_CUDA_KERNEL": "warp"}
    done = subprocess.run(_args(home, "run", "8", "--seeds", "3", "--device", "cuda", *TINY), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: FNN_TUI_CUDA_KERNEL: expected auto or thread, found 'warp'"
    assert _runs(home) == []


def test_a_cpu_group_task_resolves_to_the_multi_seed_kernel(catalog) -> None:
    preset = catalog.get("exp08")
    run = task_run(preset, RunOptions("cpu", "fused"), 3, True)
    assert (run.engine, run.device) == ("fused", "cpu")
    with pytest.raises(ValueError, match="fused-cuda"):
        task_run(preset, RunOptions("cpu", "fused-cuda"), 3, True)


# --- the commands, on the simulator --------------------------------------------------------


@simulator
def test_run_seeds_on_cuda_trains_one_gpu_group_with_the_cpu_kernels_numbers(tmp_path: Path, catalog) -> None:
    """`run 8 --seeds 3 --device cuda`: one task of three lanes on fused-cuda, each lane its own
    stored run (engine fused-cuda, grouped), with the CPU multi-seed kernel's numbers."""
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    # the block kernel (the default), which the simulator runs slowly: a quarter of TINY's samples
    done = _cli(gpu, "run", "8", "--seeds", "3", "--device", "cuda", "--set", "samples=50", "--set", "epochs=2",
                kernel="auto")
    assert done.returncode == 0, done.stderr
    assert "cuda:0: the fused-cuda GPU group engine, 3 lanes" in done.stderr, done.stderr
    assert "PyTorch engine" not in done.stderr  # no warning about the torch engine on cuda
    assert done.stdout.count("fused-cuda") == 3  # the results table's engine column
    runs = _runs(gpu)
    assert [(r.seed, r.engine, r.device, r.status, bool(r.grouped)) for r in runs] == [
        (s, "fused-cuda", "cuda:0", RunStatus.FINISHED, True) for s in range(3)]
    _assert_close(_epochs(gpu), _cpu_reference(cpu, catalog, 50, 2), 2)


@simulator
def test_one_seed_on_cuda_keeps_the_single_run_rule(tmp_path: Path) -> None:
    """One new run is no group: it gets the single-run rule, the torch engine on cuda, which
    the simulator is not (torch sees no GPU here): the usual one-line device error."""
    done = _cli(tmp_path, "run", "8", "--device", "cuda", *TINY)
    assert done.returncode == 2 and "not available" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert _runs(tmp_path) == []


@simulator
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_stopped_gpu_group_goes_on_on_the_gpu_group_engine(tmp_path: Path, catalog, signum: int) -> None:
    """A cuda group stopped (Ctrl-C, kill -9) once it has an epoch, then the same command:
    it resumes on fused-cuda, and every run ends with epochs 1..n once each and the CPU
    kernel's numbers."""
    epochs = 4
    command = ("run", "8", "--seeds", "3", "--device", "cuda", "--set", "samples=200", "--set", f"epochs={epochs}")
    home = tmp_path / "stopped"
    proc = subprocess.Popen(_args(home, *command), env=_env(True), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: proc.poll() is not None or (lambda rs: len(rs) == 3 and all(r.epochs_done >= 1 for r in rs)
                                                        )(_runs(home)) or None, timeout=240, every=0.05)
        assert proc.poll() is None, f"ended before it could be stopped: {proc.communicate()}"
        proc.send_signal(signum)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    stopped = _runs(home)
    assert all(r.epochs_done < epochs for r in stopped), [r.epochs_done for r in stopped]
    again = _cli(home, *command)
    assert again.returncode == 0, again.stderr
    assert "resuming 3 stopped" in again.stderr and "fused-cuda GPU group engine, 3 lanes" in again.stderr, again.stderr
    runs = _runs(home)
    assert [(r.engine, r.device, r.status) for r in runs] == [("fused-cuda", "cuda:0", RunStatus.FINISHED)] * 3
    _assert_close(_epochs(home), _cpu_reference(tmp_path / "cpu", catalog, 200, epochs), epochs)


@simulator
def test_a_sweep_on_cuda_trains_its_variants_as_one_gpu_group(tmp_path: Path) -> None:
    """Two learning rates of exp08 over two seeds on cuda: four lanes of one fused-cuda group."""
    done = _cli(tmp_path, "sweep", "8", "--set", "lr=0.001,0.01", "--set", "samples=200", "--set", "epochs=2",
                "--seeds", "2", "--device", "cuda")
    assert done.returncode == 0, done.stderr
    assert "in 1 task" in done.stderr and "fused-cuda GPU group engine, 4 lanes" in done.stderr, done.stderr
    runs = _runs(tmp_path)
    assert len(runs) == 4 and {(r.engine, r.status, bool(r.grouped)) for r in runs} == {
        ("fused-cuda", RunStatus.FINISHED, True)}
    from fnn_tui.runs.record import stored_preset

    assert sorted((stored_preset(r).training.lr, r.seed) for r in runs) == [(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)]
