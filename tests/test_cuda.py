"""The torch engine on a CUDA device: the same training as on the CPU, recorded, resumed and
predicted. Skipped where no GPU is present (CI); run on a lent GPU machine by hand."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from fnn_tui.core.events import EpochFinished, RunFinished
from fnn_tui.core.status import RunStatus
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions, train
from fnn_tui.runs.record import record_run, resume_run
from fnn_tui.store.runs import Store

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def _epochs(preset, device: str) -> list:
    seen: list = []
    end = train(preset, RunOptions(device=device, engine="torch"), seen.append)
    assert isinstance(end, RunFinished)
    return [e for e in seen if isinstance(e, EpochFinished)]


def test_cuda_training_follows_the_cpu(tiny08) -> None:
    # per-sample SGD amplifies float32 rounding: over 720 steps CPU and CUDA drift 2% apart
    # (seen on an H200), so the comparison is over one epoch of 100 steps
    preset = tiny08.with_overrides(samples=125, epochs=1)
    cpu = _epochs(preset, "cpu")
    gpu = _epochs(preset, "cuda")
    for a, b in zip(cpu, gpu):
        # different kernels, same algorithm: float32 rounding apart, the same run
        assert b.metrics.train_loss == pytest.approx(a.metrics.train_loss, rel=1e-3, abs=1e-5)
        assert b.metrics.test_loss == pytest.approx(a.metrics.test_loss, rel=1e-3, abs=1e-5)
        assert b.metrics.dead == a.metrics.dead
    assert gpu[-1].fit is not None
    np.testing.assert_allclose(gpu[-1].fit, cpu[-1].fit, rtol=1e-3, atol=1e-4)


def test_cuda_run_is_recorded_interrupted_and_resumed_exactly(home: Path, tiny08) -> None:
    preset = tiny08.with_overrides(epochs=4)
    straight = record_run(home, preset, RunOptions(device="cuda", engine="torch"))
    stop = StopRequest()

    def interrupt(_run_id: int, event) -> None:
        if isinstance(event, EpochFinished) and event.metrics.epoch == 2:
            stop.set(RunStatus.INTERRUPTED, signal.SIGTERM)

    broken = record_run(home, preset, RunOptions(device="cuda", engine="torch"), interrupt, stop)
    with Store(home) as store:
        assert store.get_run(broken.run_id).status == RunStatus.INTERRUPTED
        assert store.get_run(broken.run_id).device == "cuda:0"
    assert isinstance(resume_run(home, broken.run_id).end, RunFinished)
    with Store(home) as store:
        ours = [dataclasses.replace(m, seconds=0.0) for m in store.epochs(broken.run_id)]
        reference = [dataclasses.replace(m, seconds=0.0) for m in store.epochs(straight.run_id)]
    assert [m.epoch for m in ours] == [1, 2, 3, 4]
    for a, b in zip(ours, reference):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5, abs=1e-7)


def test_auto_picks_the_gpu_for_big_batches_only(tiny08) -> None:
    from fnn_tui.core.devices import resolve_device

    assert resolve_device("auto", batch_size=1) == "cpu"
    assert resolve_device("auto", batch_size=512).startswith("cuda")
    assert resolve_device("cuda") == "cuda:0"
