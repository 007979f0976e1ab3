"""The GPU group engine's tests run on every machine: under Numba's CUDA simulator here.

``NUMBA_ENABLE_CUDASIM`` is read when Numba is first imported, and this process has long
imported it for the CPU kernels, so ``test_cuda_group.py`` runs in a Python of its own with
the simulator on. Also here: what this process (no simulator) decides for groups.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fnn_tui.core.devices import DeviceError
from fnn_tui.core.engines import EngineError
from fnn_tui.core.group import GPU_MIN_LANES, gpu_pays, group_run
from fnn_tui.core.trainer import RunOptions

ROOT = Path(__file__).resolve().parents[1]


def _simulator_env() -> dict[str, str]:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _simulator_works() -> bool:
    probe = "from numba import cuda; import sys; sys.exit(0 if cuda.is_available() else 1)"
    try:
        return subprocess.run([sys.executable, "-c", probe], env=_simulator_env(), timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _simulator_works(), reason="Numba's CUDA simulator does not run here")
def test_the_gpu_group_tests_pass_on_the_cuda_simulator() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(ROOT / "tests" / "test_cuda_group.py")],
        env=_simulator_env(), cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert " passed" in out and "skipped" not in out and "failed" not in out, out[-2000:]


def test_auto_keeps_groups_on_the_cpu_without_a_real_gpu_or_small_work(catalog) -> None:
    preset = catalog.get("exp08")
    run = group_run(preset, RunOptions(), 16)
    assert (run.engine, run.device) == ("fused", "cpu")
    assert not gpu_pays(preset, GPU_MIN_LANES - 1)  # too few lanes, whatever the machine
    assert not gpu_pays(catalog.get("exp01").with_overrides(samples=100, epochs=1), 100_000)  # too little work


def test_a_gpu_group_without_a_gpu_is_refused_before_any_work(catalog) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    with pytest.raises((DeviceError, EngineError)):
        group_run(catalog.get("exp08"), RunOptions(device="cuda"), 16)
    with pytest.raises(EngineError, match="fused-cuda"):
        group_run(catalog.get("exp08"), RunOptions(device="cpu", engine="fused-cuda"), 16)


def _nvvm() -> bool:
    try:
        from numba.cuda.cudadrv import nvvm

        return bool(nvvm.is_available())
    except Exception:
        return False


@pytest.mark.skipif(not _nvvm(), reason="no libNVVM here to compile CUDA kernels with")
@pytest.mark.parametrize("batch", [1, 4])
def test_the_kernels_compile_for_a_real_gpu(monkeypatch, batch) -> None:
    # the simulator runs the kernels as Python and types nothing; this compiles them to PTX
    # for an H100/H200 (sm_90) as a GPU would, with no GPU: Numba asks the current device
    # for its compute capability while typing device functions, so that one answer is given
    import re
    import types

    import numba.cuda.dispatcher
    from numba import cuda, float32, float64, int32, int64

    from fnn_tui.core.engines.cuda_kernels import kernels

    from_device = types.SimpleNamespace(compute_capability=(9, 0))
    if not cuda.is_available():  # (a GPU answers for itself; numba-cuda may have no such name)
        monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: from_device, raising=False)
    train, predict, evaluate, means = kernels((1, 20, 20, 30, 1), batch, True)
    f2, f1 = float32[:, :], float32[:]
    args = (f2, f2, f2, f2, int32[:, :], int32[:], int64, int64, f1, f1, f1, f1, f1, int64[:], f2, f2)
    ptx, _ = cuda.compile_ptx(train.py_func, args, cc=(9, 0))
    assert ".entry" in ptx and "fma.rn.f32" in ptx
    assert not re.search(r"\.f64\b", ptx)  # float32 throughout: no sum promoted to float64
    for kernel, types_ in ((predict, (f2, f2, f2)), (evaluate, (f2, f2, f2, float64[:, :])),
                           (means, (f2, float64[:]))):
        ptx, _ = cuda.compile_ptx(kernel.py_func, types_, cc=(9, 0))
        assert ".entry" in ptx


def _ptxas() -> str | None:
    import shutil

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    found = Path(home) / "bin" / "ptxas"
    return str(found) if found.is_file() else shutil.which("ptxas")


@pytest.mark.skipif(not _nvvm(), reason="no libNVVM here to compile CUDA kernels with")
@pytest.mark.parametrize(("sizes", "norm"), [((1, 20, 20, 30, 1), True), ((1, 50, 50, 1), False)])
def test_the_block_kernel_keeps_a_lane_on_chip_on_a_real_gpu(monkeypatch, tmp_path, sizes, norm) -> None:
    # compiled for an H100/H200 (sm_90) as above; then ptxas, the assembler a GPU's driver
    # runs, says where the kernel keeps its data: a lane's weights in shared memory, nothing
    # in local memory (a stack frame or spills would live in device memory)
    import re
    import types

    import numba.cuda.dispatcher
    from numba import cuda, float32, int32, int64

    from fnn_tui.core.engines import cuda_block

    if not cuda.is_available():  # (a GPU answers for itself; numba-cuda may have no such name)
        monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device",
                            lambda: types.SimpleNamespace(compute_capability=(9, 0)), raising=False)
    train = cuda_block.train_kernel(sizes, norm)
    f2, f1 = float32[:, :], float32[:]
    args = (f2, f2, f2, f2, int32[:, :], int32[:], int64, int64, f1, f1, f1, f1, f1, int64[:], f2, f2)
    ptx, _ = cuda.compile_ptx(train.py_func, args, cc=(9, 0))
    assert ".entry" in ptx and "bar.sync" in ptx and "ld.shared.f32" in ptx
    assert not re.search(r"\.f64\b", ptx) and ".local" not in ptx
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("no ptxas here to assemble the PTX with")
    source = tmp_path / "train.ptx"
    source.write_text(ptx)
    done = subprocess.run([ptxas, "-arch=sm_90", "-v", "-O3", str(source), "-o", str(tmp_path / "train.cubin")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    info = done.stderr
    assert re.search(r"\b0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads", info), info
    registers = int(re.search(r"Used (\d+) registers", info).group(1))
    shared = int(re.search(r"(\d+) bytes smem", info).group(1))
    assert shared <= cuda_block.shared_bytes(sizes) <= cuda_block.SHARED_BYTES, info
    # the lanes an H200 SM holds are capped by its 228 KB of shared memory (1 KB more a block),
    # not by its 64k registers: the warps of that many lanes fit the register file
    lanes = (228 * 1024) // (shared + 1024)
    assert lanes >= 9 and registers * cuda_block.THREADS * lanes <= 65536, (lanes, info)
