"""Per-step cost on exp08: the notes' own loop vs our PyTorch engine vs the fused engine,
its kernel alone and end to end.

Run: ``python benchmarks/steps.py`` (about a minute; ``--no-end-to-end`` skips the
commands). All are measured in this one run on this machine, single-threaded, and the
ratios are of medians over repeats. The notes-style loop is written from the lab notes: a
Dataset of tensors, DataLoader with batch size 1 and shuffling, an nn.Module, the L2 sum in
the loss, clip_grad_norm_, SGD with momentum and ``.item()`` twice per step.

End to end is the command a user types, ``fnn-tui run exp08 --engine fused`` with
``--epochs 1`` and ``--epochs 30`` in a fresh store: the difference of the two wall times
over the 29 epochs' steps leaves out the start (imports, loading the cached kernels) and
keeps everything a run does per epoch. Where the time beside the kernel goes is measured
in this process, one piece at a time, on the same state: the test evaluation, the fit on
the plot grid, the snapshot, the checkpoint (``torch.save`` alone and the atomic, fsynced
write of the store) and the epoch's row in the store.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn, optim
from torch.utils import data as tud

from fnn_tui.core.catalog import discover
from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.engines.fused_engine import FusedEngine
from fnn_tui.core.engines.torch_engine import TorchEngine
from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.grid import grid_x
from fnn_tui.core.state import TrainState, save_checkpoint
from fnn_tui.store.runs import Store

END_TO_END_EPOCHS = (1, 30)


class NotesDataset(tud.Dataset):
    """The notes' MyDataset: tensors indexed one sample at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.data, self.target = x, y

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[idx], self.target[idx]


class NotesNet(nn.Module):
    """The notes' model: Linear, (x-mean)/var, relu per hidden layer, final Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1, self.layer2 = nn.Linear(1, 20), nn.Linear(20, 20)
        self.layer3, self.layer4 = nn.Linear(20, 30), nn.Linear(30, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.layer1, self.layer2, self.layer3):
            x = layer(x)
            x = (x - torch.mean(x)) / torch.var(x)
            x = torch.relu(x)
        return self.layer4(x)


def notes_loop_us(x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int) -> float:
    """Median microseconds per step of the notes-style loop."""
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        model = NotesNet()
        loader = tud.DataLoader(NotesDataset(x, y), batch_size=1, shuffle=True)
        optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        criterion = nn.MSELoss()
        l2_lambda, train_loss, train_acc, done = 1e-4, 0.0, 0.0, 0
        start = time.perf_counter()
        for xb, yb in loader:
            out = model(xb)
            l2_regularization = sum(torch.sum(torch.pow(param, 2)) for param in model.parameters())
            loss = criterion(out, yb) + l2_lambda * l2_regularization
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1)
            optimizer.step()
            train_loss += (loss - l2_lambda * l2_regularization).item()
            train_acc += abs(out * 1.0 / yb).item()
            done += 1
            if done == steps:
                break
        times.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(times)


def engine_us(engine, n_train: int, steps: int, repeats: int, clock=time.perf_counter) -> float:
    """Median microseconds per step of one of our engines, after a warm-up chunk (by ``clock``:
    wall time, or ``time.thread_time`` for the CPU time of this thread)."""
    engine.set_epoch(0, epoch_order(n_train, 0, 0), 0.001)
    engine.run_steps(0, min(10, steps))
    times = []
    for r in range(repeats):
        engine.set_epoch(r + 1, epoch_order(n_train, 0, r + 1), 0.001)
        start = clock()
        engine.run_steps(0, steps)
        times.append((clock() - start) / steps * 1e6)
    return statistics.median(times)


def compile_seconds(cache_dir: str) -> float:
    """Seconds from import to the first finished fused step, in a fresh process."""
    code = (
        "import time; t=time.perf_counter();"
        "from fnn_tui.core.catalog import discover; from fnn_tui.core.data import make_dataset, epoch_order;"
        "from fnn_tui.core.engines.fused_engine import FusedEngine;"
        "p=discover(include_user=False).get('exp08').with_overrides(samples=100); d=make_dataset(p.data);"
        "e=FusedEngine(p,d); e.set_epoch(0, epoch_order(d.n_train,0,0), 0.01); e.run_steps(0,1);"
        "e.evaluate(); print(time.perf_counter()-t)"
    )
    env = dict(os.environ, FNN_TUI_CACHE=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def command_seconds(epochs: int, home: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``fnn-tui run exp08 --engine fused --epochs N`` in store ``home``
    (CPU time leaves out waiting: for the disk, and for the cores on a loaded machine)."""
    args = [sys.executable, "-m", "fnn_tui", "--home", home, "run", "exp08", "--engine", "fused", "--epochs",
            str(epochs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, NO_COLOR="1"))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def end_to_end_us(steps_per_epoch: int, repeats: int) -> dict[str, tuple[float, dict[int, float]]]:
    """Microseconds per step of the command, by wall and by CPU time, from the medians of both
    lengths (taken in turn), with those medians."""
    times: dict[int, list[tuple[float, float]]] = {e: [] for e in END_TO_END_EPOCHS}
    with tempfile.TemporaryDirectory() as home:
        command_seconds(1, home)  # the kernels in the cache, the store made
        for _ in range(repeats):
            for epochs in END_TO_END_EPOCHS:
                times[epochs].append(command_seconds(epochs, home))
    short, long = END_TO_END_EPOCHS
    out = {}
    for i, clock in enumerate(("wall", "cpu")):
        medians = {e: statistics.median(t[i] for t in ts) for e, ts in times.items()}
        out[clock] = ((medians[long] - medians[short]) / ((long - short) * steps_per_epoch) * 1e6, medians)
    return out


def median_ms(work, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def epoch_pieces_ms(preset, data) -> dict[str, float]:
    """Median milliseconds of each piece of one exp08 epoch, beside the kernel."""
    engine = FusedEngine(preset, data)
    engine.set_epoch(0, epoch_order(data.n_train, 0, 0), 0.001)
    engine.run_steps(0, engine.steps_per_epoch)
    fit_x = grid_x(preset)
    toml, digest = preset.to_toml(), preset.digest()
    params, momentum = engine.snapshot()
    state = TrainState(1, params, momentum, toml, digest, "fused", 0)
    pieces = {
        "kernel (one epoch)": median_ms(lambda: engine.run_steps(0, engine.steps_per_epoch), 7),
        "test evaluation": median_ms(engine.evaluate),
        "fit on the plot grid": median_ms(lambda: engine.predict(fit_x)),
        "snapshot": median_ms(engine.snapshot),
        "order and schedule": median_ms(lambda: engine.set_epoch(1, epoch_order(data.n_train, 0, 1), 0.001)),
    }
    pieces["checkpoint: torch.save"] = median_ms(lambda: torch.save(state.to_payload(), io.BytesIO()))
    with tempfile.TemporaryDirectory() as home:
        # in a store's own folder, as a run writes it
        with Store(Path(home)) as store:
            run_id = store.create_run(preset, engine="fused", device="cpu")
            folder = store.get_run(run_id).folder
            pieces["checkpoint: atomic write"] = median_ms(lambda: save_checkpoint(state, folder / "checkpoint.pt"))
            store.start_run(run_id, steps_per_epoch=engine.steps_per_epoch)
            metrics = []
            def add() -> None:
                metrics.append(len(metrics) + 1)
                store.add_epoch(run_id, EpochMetrics(len(metrics), 1.0, 1.0, 1.0, 1.0, 1.0, 0.001, 0.01), None)

            pieces["epoch row in the store"] = median_ms(add)
    return pieces


def main() -> None:
    """Measure and print µs per step and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the fnn-tui commands")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = discover(include_user=False).get("exp08")
    data = make_dataset(preset.data)
    print(f"exp08 (1-20-20-30-1, mean-var norm, clip, L2), {data.n_train} training samples, batch size 1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    notes = notes_loop_us(data.x_train, data.y_train, steps=1000, repeats=3)
    ours_torch = engine_us(TorchEngine(preset, data, "cpu"), data.n_train, steps=2000, repeats=3)
    fused = engine_us(FusedEngine(preset, data), data.n_train, steps=data.n_train, repeats=7)
    fused_cpu = engine_us(FusedEngine(preset, data), data.n_train, steps=data.n_train, repeats=7, clock=time.thread_time)
    print(f"notes-style loop {notes:10.1f} us/step   (median of 3 x 1000 steps)")
    print(f"torch engine     {ours_torch:10.1f} us/step   (median of 3 x 2000 steps)")
    print(f"fused engine     {fused:10.2f} us/step   (kernel only, median of 7 x {data.n_train} steps; "
          f"CPU time {fused_cpu:.2f})")
    if not args.no_end_to_end:
        steps = FusedEngine(preset, data).steps_per_epoch
        clocks = end_to_end_us(steps, repeats=3)
        short, long = END_TO_END_EPOCHS
        for clock, (us, medians) in clocks.items():
            print(f"fused end to end {us:10.2f} us/step   ({clock}: `fnn-tui run exp08 --engine fused`, median of 3 "
                  f"x {long} epochs {medians[long]:.2f} s minus 3 x {short} {medians[short]:.2f} s)")
        e2e = clocks["wall"][0]
    print(f"ratio notes/torch {notes / ours_torch:9.1f}x")
    print(f"ratio notes/fused {notes / fused:9.0f}x   (kernel only)")
    if not args.no_end_to_end:
        print(f"ratio notes/fused {notes / e2e:9.0f}x   (end to end)")
        print(f"ratio end to end / kernel {e2e / fused:5.2f}   (wall; by CPU time {clocks['cpu'][0] / fused_cpu:.2f})")
    pieces = epoch_pieces_ms(preset, data)
    kernel = pieces["kernel (one epoch)"]
    print("one exp08 epoch, piece by piece (median ms; share of the kernel's time):")
    for name, ms in pieces.items():
        print(f"  {name:26s} {ms:8.3f} ms  {ms / kernel:6.1%}")
    with tempfile.TemporaryDirectory() as cache:
        cold = compile_seconds(cache)
        warm = compile_seconds(cache)
    print(f"fused first call: {cold:.1f} s with an empty Numba cache, {warm:.1f} s from the cache (incl. imports)")


if __name__ == "__main__":
    main()
