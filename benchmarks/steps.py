"""Per-step cost on exp08: the notes' own loop vs our PyTorch engine vs the fused engine.

Run: ``python benchmarks/steps.py`` (about 30 s). All three are measured in this one run
on this machine, single-threaded, and the ratios are of medians over repeats. The
notes-style loop is written from the lab notes: a Dataset of tensors, DataLoader with
batch size 1 and shuffling, an nn.Module, the L2 sum in the loss, clip_grad_norm_, SGD
with momentum and ``.item()`` twice per step.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn, optim
from torch.utils import data as tud

from fnn_tui.core.catalog import discover
from fnn_tui.core.data import epoch_order, make_dataset
from fnn_tui.core.engines.fused_engine import FusedEngine
from fnn_tui.core.engines.torch_engine import TorchEngine


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


def engine_us(engine, n_train: int, steps: int, repeats: int) -> float:
    """Median microseconds per step of one of our engines, after a warm-up chunk."""
    engine.set_epoch(0, epoch_order(n_train, 0, 0), 0.001)
    engine.run_steps(0, min(10, steps))
    times = []
    for r in range(repeats):
        engine.set_epoch(r + 1, epoch_order(n_train, 0, r + 1), 0.001)
        start = time.perf_counter()
        engine.run_steps(0, steps)
        times.append((time.perf_counter() - start) / steps * 1e6)
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
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Measure and print µs per step and the ratios."""
    torch.set_num_threads(1)
    preset = discover(include_user=False).get("exp08")
    data = make_dataset(preset.data)
    print(f"exp08 (1-20-20-30-1, mean-var norm, clip, L2), {data.n_train} training samples, batch size 1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    notes = notes_loop_us(data.x_train, data.y_train, steps=1000, repeats=3)
    ours_torch = engine_us(TorchEngine(preset, data, "cpu"), data.n_train, steps=2000, repeats=3)
    fused = engine_us(FusedEngine(preset, data), data.n_train, steps=data.n_train, repeats=7)
    print(f"notes-style loop {notes:10.1f} us/step   (median of 3 x 1000 steps)")
    print(f"torch engine     {ours_torch:10.1f} us/step   (median of 3 x 2000 steps)")
    print(f"fused engine     {fused:10.2f} us/step   (median of 7 x {data.n_train} steps)")
    print(f"ratio notes/torch {notes / ours_torch:9.1f}x")
    print(f"ratio notes/fused {notes / fused:9.0f}x")
    with tempfile.TemporaryDirectory() as cache:
        cold = compile_seconds(cache)
        warm = compile_seconds(cache)
    print(f"fused first call: {cold:.1f} s with an empty Numba cache, {warm:.1f} s from the cache (incl. imports)")


if __name__ == "__main__":
    main()
