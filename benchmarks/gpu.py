"""The GPU group engine against the CPU multi-seed kernel, and the table over many seeds on a GPU.

Run on a machine with a CUDA device and a CUDA toolkit that Numba compiles with
(``CUDA_HOME`` or ``/usr/local/cuda``): ``python benchmarks/gpu.py`` (a few minutes; the
table part stops at ``--table-limit`` seconds and projects the rest). In one run it prints:

- the launch overhead: an empty kernel launched and waited for, and a ``run_steps`` call
  of zero steps (what each chunk of a group pays on top of its steps);
- the cost per seed-step at 1k, 4k and 16k lanes (``--lanes``) on exp08 and exp06, for
  each training kernel (``block``: a warp a lane, its weights in shared memory, the one
  ``auto`` takes where a shape fits; ``thread``: a thread a lane, its weights in local
  memory), with the per-step latency of one lane (a launch's wall time over its steps) and
  the host's preparation time; the CPU multi-seed kernel at its default lane count on the same
  steps in the same run (CPU time of the thread, fastest of three), and the ratio;
- the wall time of the eleven presets over 100 seeds (``--seeds``): one GPU group per
  preset, all eleven driven at once from threads of their own (one CUDA stream each), each
  preset's own wall time beside it.

Without a GPU it prints one line and exits 0. ``--cpu-only`` measures the CPU side alone.
``--ptxas`` needs no GPU, only a CUDA toolkit (libNVVM and ``ptxas``): it compiles both
training kernels of exp08's and exp06's shapes for an H100/H200 (sm_90) and prints what
``ptxas`` says they use (registers, local memory, shared memory) and how many lanes an SM
can then hold.
Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the GPU parts run in Python at
tiny sizes: that checks the script, and measures nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time

from numba import cuda  # a global: the simulator swaps the kernels' global ``cuda`` for its own

from fnn_tui.core.catalog import discover
from fnn_tui.core.group import default_lanes

PRESETS = ("exp08", "exp06")
LANES = (1024, 4096, 16384)


def positive_ints(text: str) -> tuple[int, ...]:
    """``1024,4096`` as a tuple of positive integers (argparse type)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, found {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers of at least 1, found {text!r}")
    return values


def positive(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    values = positive_ints(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one whole number, found {text!r}")
    return values[0]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=positive_ints, default=LANES, metavar="N,N",
                        help="lane counts for the per-seed-step cost (default 1024,4096,16384)")
    parser.add_argument("--steps", type=positive, default=400, metavar="N",
                        help="steps per measurement launch (default 400)")
    parser.add_argument("--seeds", type=positive, default=100, metavar="N", help="seeds per preset in the table")
    parser.add_argument("--table-limit", type=float, default=150.0, metavar="S",
                        help="stop the table after S seconds and project the rest (default 150)")
    parser.add_argument("--table-epochs", type=positive, metavar="N", help="override every preset's epochs")
    parser.add_argument("--table-samples", type=positive, metavar="N", help="override every preset's samples")
    parser.add_argument("--no-table", action="store_true", help="skip the table")
    parser.add_argument("--cpu-only", action="store_true", help="measure the CPU kernel alone (no GPU needed)")
    parser.add_argument("--ptxas", action="store_true",
                        help="compile the training kernels for sm_90 and print their resources (no GPU needed)")
    args = parser.parse_args(argv)
    if args.table_limit <= 0:
        parser.error(f"--table-limit: expected seconds > 0, found {args.table_limit:g}")
    return args


def measure_preset(name: str, steps: int):
    """A preset with just the samples for two kernels' warm-ups of 20 steps and measured
    launches of ``steps`` (the cost of a step does not depend on the epoch's length;
    preparing the lanes' data does)."""
    preset = discover(include_user=False).get(name)
    samples = int(2 * (steps + 20) / preset.data.train_fraction) + 2
    return preset.with_overrides(samples=max(samples, 10))


def cpu_us(preset, lanes: int, steps: int) -> float:
    """µs per seed-step of the CPU multi-seed kernel over ``steps`` steps (thread CPU time, fastest of 3)."""
    import torch

    from fnn_tui.core.engines.multi_engine import MultiFusedEngine

    torch.set_num_threads(1)
    engine = MultiFusedEngine(preset, list(range(lanes)))
    engine.set_epoch(0, 0.001)
    engine.run_steps(0, 20)  # compiles or loads the kernel
    best = float("inf")
    for r in range(3):
        engine.set_epoch(r + 1, 0.001)
        start = time.thread_time()
        engine.run_steps(0, steps)
        best = min(best, time.thread_time() - start)
    return best / steps / lanes * 1e6


def launch_overhead_us() -> tuple[float, float]:
    """µs per empty kernel launch + wait, and per zero-step ``run_steps`` of a one-lane group."""
    from fnn_tui.core.engines.cuda_group import CudaGroupEngine

    @cuda.jit
    def noop(a):
        i = cuda.grid(1)
        if i < a.size:
            a[i] += 1

    d = cuda.device_array(32, dtype="float32")
    noop[1, 32](d)
    cuda.synchronize()
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        noop[1, 32](d)
        cuda.synchronize()
    empty = (time.perf_counter() - start) / n * 1e6
    engine = CudaGroupEngine(measure_preset("exp08", 10), [0])
    engine.set_epoch(0, 0.001)
    engine.run_steps(0, 1)  # compiles
    start = time.perf_counter()
    for _ in range(n):
        engine.run_steps(1, 1)
    return empty, (time.perf_counter() - start) / n * 1e6


def gpu_costs(preset, lanes: int, steps: int) -> tuple[dict[str, tuple[float, float]], float]:
    """Per training kernel that trains this shape (``block``: a warp a lane, its state in
    shared memory; ``thread``: a thread a lane), (ns per seed-step, µs per step of one lane)
    at ``lanes`` lanes; and the host's preparation in s. One group, both kernels on the same
    lanes one after the other (each warmed up and compiled first)."""
    from fnn_tui.core.engines.cuda_group import CudaGroupEngine, training_kernel

    start = time.perf_counter()
    engine = CudaGroupEngine(preset, list(range(lanes)))
    engine.set_epoch(0, 0.001)
    prep = time.perf_counter() - start
    out = {}
    kinds = ["block", "thread"] if training_kernel(preset.model.sizes, preset.training.batch_size) == "block" else ["thread"]
    at = 0
    for kind in kinds:
        engine.use_kernel(kind)
        engine.run_steps(at, at + 20)  # compiles this shape's kernel the first time
        start = time.perf_counter()
        engine.run_steps(at + 20, at + 20 + steps)  # waits for the device
        wall = time.perf_counter() - start
        at += 20 + steps
        out[kind] = (wall / steps / lanes * 1e9, wall / steps * 1e6)
    return out, prep


def warm_up(presets) -> tuple[int, float]:
    """Compile the kernels of every network shape in ``presets`` (one lane, one step, one
    prediction each); returns (shapes, seconds). Numba compiles one kernel at a time, so
    eleven groups starting at once would otherwise wait on each other's compiles."""
    from fnn_tui.core.engines.cuda_group import CudaGroupEngine

    start = time.perf_counter()
    shapes = {}
    for p in presets:
        shapes.setdefault((p.model.sizes, p.training.batch_size, p.model.normalised), p)
    for p in shapes.values():
        engine = CudaGroupEngine(p.with_overrides(samples=max(20, 2 * p.training.batch_size + 10)), [0])
        engine.set_epoch(0, 0.001)
        engine.run_steps(0, 1)
        engine.evaluate()
    return len(shapes), time.perf_counter() - start


class Deadline:
    """A stop flag that turns on at a time (``train_group``'s stop check)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def is_set(self) -> bool:
        return time.perf_counter() >= self.at


def table(args: argparse.Namespace) -> None:
    """The eleven presets over ``args.seeds`` seeds, one GPU group each, all at once."""
    from fnn_tui.core.events import GroupEpochFinished, RunStarted, StepProgress
    from fnn_tui.core.group import train_group
    from fnn_tui.core.trainer import RunOptions

    catalog = discover(include_user=False)
    presets = [catalog.get(n).with_overrides(epochs=args.table_epochs, samples=args.table_samples)
               for n in catalog.names()]
    seeds = list(range(args.seeds))
    options = RunOptions(device="cuda", engine="fused-cuda")
    compiled = warm_up(presets)
    print(f"\n(the table's {compiled[0]} kernel shapes compiled or loaded first, in {compiled[1]:.1f} s, not counted)")
    started = time.perf_counter()
    deadline = Deadline(started + args.table_limit)
    results: dict[str, dict] = {}

    def one(preset) -> None:
        row = {"done": 0, "steps": 0, "start": time.perf_counter(), "ends": []}
        results[preset.name] = row

        def emit(event) -> None:
            if isinstance(event, RunStarted) and event.lane == 0:
                row["steps"] = event.steps_per_epoch * event.epochs
            elif isinstance(event, StepProgress):
                row["done"] = (event.epoch - 1) * event.steps_per_epoch + event.step
            elif isinstance(event, GroupEpochFinished):
                row["done"] = event.epoch * (row["steps"] // preset.training.epochs)

        try:
            row["ends"] = train_group(preset, seeds, options, emit, stop_event=deadline)
        except Exception as exc:  # reported in the table, not a traceback from a thread
            row["error"] = f"{exc.__class__.__name__}: {exc}"
        row["wall"] = time.perf_counter() - row["start"]

    from fnn_tui.core.engines.cuda_group import simulated

    # the simulator swaps the kernel module's ``cuda`` while a kernel runs: one group at a time there
    together = not simulated()
    threads = [threading.Thread(target=one, args=(p,), name=p.name) for p in presets]
    for t in threads:
        t.start()
        if not together:
            t.join()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    how = "all at once" if together else "one after another (the simulator)"
    print(f"\nthe eleven presets x {args.seeds} seeds, one GPU group each, {how}: {wall:.1f} s wall"
          f"{' (stopped at the limit)' if deadline.is_set() else ''}")
    projected = 0.0
    for p in presets:
        row = results[p.name]
        if "error" in row:
            print(f"  {p.name}: failed: {row['error']}")
            continue
        fraction = row["done"] / row["steps"] if row["steps"] else 0.0
        kinds = ",".join(sorted({type(e).__name__ for e in row["ends"]}))
        if fraction > 0:
            full = row["wall"] / fraction
            projected = max(projected, full)
            whole = f"whole run ~{full:.0f} s"
        else:
            whole = "no epoch done"
        print(f"  {p.name}: {row['wall']:6.1f} s for {fraction:6.1%} of its {row['steps']} steps ({whole}), {kinds}")
    if deadline.is_set():
        print(f"  projected wall time of the whole table at this pace: ~{projected:.0f} s (the slowest preset)")


def ptxas_report() -> int:
    """Both training kernels of exp08's and exp06's shapes compiled for sm_90, as ``ptxas -v``
    reports them, with the lanes an H100/H200 SM holds (64k registers, 228 KB of shared memory,
    1 KB more a block, at most 2048 threads and 32 blocks). Numba asks the current device for
    its compute capability while it compiles device functions: without a GPU it is told 9.0."""
    import re
    import shutil
    import subprocess
    import tempfile
    import types
    from pathlib import Path

    import numba.cuda.dispatcher
    from numba import float32, int32, int64

    from fnn_tui.core.engines import cuda_block
    from fnn_tui.core.engines.cuda_kernels import THREADS, kernels

    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    ptxas = str(Path(home) / "bin" / "ptxas") if (Path(home) / "bin" / "ptxas").is_file() else shutil.which("ptxas")
    if ptxas is None:
        print("benchmarks/gpu.py: no ptxas here (set CUDA_HOME to a CUDA toolkit)", file=sys.stderr)
        return 0
    if not numba.cuda.is_available():  # a GPU answers for itself
        numba.cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
    f2, f1 = float32[:, :], float32[:]
    args = (f2, f2, f2, f2, int32[:, :], int32[:], int64, int64, f1, f1, f1, f1, f1, int64[:], f2, f2)
    print("training kernels compiled for sm_90 (ptxas -v -O3), and the lanes one H100/H200 SM holds:")
    for name in PRESETS:
        preset = discover(include_user=False).get(name)
        sizes, norm = tuple(preset.model.sizes), preset.model.normalised
        candidates = [("thread", kernels(sizes, 1, norm)[0], THREADS)]
        if cuda_block.fits(sizes, 1):
            candidates.insert(0, ("block", cuda_block.train_kernel(sizes, norm), cuda_block.THREADS))
        for kind, kernel, threads in candidates:
            ptx, _ = numba.cuda.compile_ptx(kernel.py_func, args, cc=(9, 0))
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / "k.ptx"
                source.write_text(ptx)
                done = subprocess.run([ptxas, "-arch=sm_90", "-v", "-O3", str(source), "-o", str(Path(tmp) / "k.cubin")],
                                      capture_output=True, text=True)
            info = done.stderr
            regs = int(re.search(r"Used (\d+) registers", info).group(1))
            stack = int(re.search(r"(\d+) bytes stack frame", info).group(1))
            spills = re.search(r"(\d+) bytes spill stores", info).group(1)
            smem = int(m.group(1)) if (m := re.search(r"(\d+) bytes smem", info)) else 0
            blocks = min(32, 65536 // (regs * threads), 2048 // threads,
                         (228 * 1024) // (smem + 1024) if smem else 32)
            lanes = blocks * (1 if kind == "block" else threads)
            print(f"  {name} {kind:6s}: {regs:3d} registers a thread, {stack:6d} bytes of local memory a thread "
                  f"({spills} spilled), {smem:6d} bytes shared a block -> {lanes:4d} lanes an SM "
                  f"({lanes * 132} on an H200's 132 SMs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure and print; 0 also when there is no GPU to measure."""
    args = parse(argv)
    if args.ptxas:
        return ptxas_report()
    if not args.cpu_only:
        from fnn_tui.core.engines.cuda_group import simulated, unusable_reason

        why = unusable_reason()
        if why is not None:
            print(f"benchmarks/gpu.py: no GPU to measure ({why}); --cpu-only measures the CPU side", file=sys.stderr)
            return 0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"CPU group lanes {default_lanes()}")
    if not args.cpu_only:
        if simulated():
            print("CUDA SIMULATOR (NUMBA_ENABLE_CUDASIM=1): this checks the script; no number is a GPU's")
        else:
            name = cuda.get_current_device().name
            print(f"device: {name.decode() if isinstance(name, bytes) else name}")
        empty, chunk = launch_overhead_us()
        print(f"launch overhead: empty kernel + wait {empty:.1f} us; zero-step run_steps (1 lane) {chunk:.1f} us")
    lanes_cpu = default_lanes()
    for name in PRESETS:
        preset = measure_preset(name, args.steps)
        sizes = "-".join(str(s) for s in preset.model.sizes)
        print(f"\n{name} ({sizes}, norm {preset.model.norm}, clip {preset.training.clip}), {args.steps} steps:")
        cpu = cpu_us(preset, lanes_cpu, args.steps)
        print(f"  CPU multi-seed kernel, {lanes_cpu} lanes: {cpu * 1e3:8.1f} ns per seed-step")
        if args.cpu_only:
            continue
        for lanes in args.lanes:
            costs, prep = gpu_costs(preset, lanes, args.steps)
            for kind, (ns, latency) in costs.items():
                print(f"  GPU {lanes:6d} lanes, {kind:6s} kernel: {ns:8.2f} ns per seed-step "
                      f"({cpu * 1e3 / ns:7.1f}x cheaper than the CPU), {latency:7.1f} us per step of a lane")
            print(f"  GPU {lanes:6d} lanes: host preparation {prep:.1f} s (auto trains this shape with the "
                  f"{'block' if 'block' in costs else 'thread'} kernel)")
    if not args.cpu_only and not args.no_table:
        table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
