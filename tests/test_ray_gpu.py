"""GPU tasks on a Ray cluster: each goes to a worker with a GPU of its own (``num_gpus=1``),
CPU tasks to the CPU workers; a cluster without a GPU is one line before any work.

The cluster's "GPU" is a resource the test node declares, and the commands run with Numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, passed to the Ray workers with the command's
``NUMBA_*`` environment) and the thread kernel, which the simulator runs fastest. Skipped
where Ray is not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fnn_tui.core.status import RunStatus

from .test_cuda_plan import _assert_close, _cpu_reference, _epochs, _runs, simulator

pytestmark = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import ray"], capture_output=True).returncode != 0,
    reason="Ray is not installed (pip install '.[ray]')")

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--set", "samples=200", "--set", "epochs=2")


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPU and one worker node of one CPU and no GPU (a GPU node is added by
    :func:`gpu_node`)."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def gpu_node(cluster):
    """The cluster with its CPU node swapped for a node of one GPU and no CPU: only a worker
    that asks for a GPU and no CPU can train there."""
    cpu_nodes = list(cluster.worker_nodes)
    cluster.add_node(num_cpus=0, num_gpus=1)
    for node in cpu_nodes:
        cluster.remove_node(node)
    cluster.wait_for_nodes()
    return cluster


def _cli(home: Path, cluster, *args: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_ENABLE_CUDASIM": "1", "FNN_TUI_CUDA_KERNEL": "thread"}
    command = [sys.executable, "-m", "fnn_tui", "--home", str(home), *args,
               "--executor", "ray", "--ray-address", cluster.address]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@simulator
def test_gpu_tasks_on_a_cluster_without_a_gpu_are_one_line_before_any_work(tmp_path: Path, cluster) -> None:
    done = _cli(tmp_path, cluster, "run", "8", "--seeds", "3", "--device", "cuda", *TINY)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: 1 task is for a GPU (cuda:0) and the Ray cluster has none: --device cpu, or --executor local "
        "on this machine's GPU"), done.stderr
    assert _runs(tmp_path) == []  # the claimed runs given back


@simulator
def test_a_gpu_group_trains_on_the_clusters_gpu_worker(tmp_path: Path, gpu_node, catalog) -> None:
    home = tmp_path / "ray"
    done = _cli(home, gpu_node, "run", "8", "--seeds", "3", "--device", "cuda", *TINY)
    assert done.returncode == 0, done.stderr
    assert "cuda:0: the fused-cuda GPU group engine, 3 lanes" in done.stderr, done.stderr
    assert "over 1 Ray worker" in done.stderr, done.stderr
    runs = _runs(home)
    assert [(r.seed, r.engine, r.status) for r in runs] == [(s, "fused-cuda", RunStatus.FINISHED) for s in range(3)]
    _assert_close(_epochs(home), _cpu_reference(tmp_path / "cpu", catalog, 200, 2), 2)
