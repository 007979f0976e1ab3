"""The Ray executor against the local pool, end to end: ``run --all --seeds 10``.

Run: ``python benchmarks/ray_executor.py`` (a few minutes on 2 cores; needs
``pip install 'fnn-tui[ray]'``). In one run on one machine it times, as a user would, the
whole command in a fresh store each time (start-up, planning, training, the table):

- ``fnn-tui run --all --seeds 10 --jobs 0`` (the local pool, one process per core);
- ``fnn-tui run --all --seeds 10 --executor ray`` (a local Ray started by the command:
  its start, the workers' start, every event sent back and written by the command).

The two are run in turns (``--repeats`` pairs), after one untimed warm-up run that fills the
Numba kernel cache, so a change in the machine's load falls on both. Printed: each wall
time, the medians and ray / pool. The target: at most 1.25.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "pool": ["run", "--all", "--seeds", "10", "--jobs", "0"],
    "ray": ["run", "--all", "--seeds", "10", "--executor", "ray"],
}


def timed(args: list[str], extra: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="fnn-bench-") as home:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", home, *args, *extra],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode not in (0, 1):  # 1: row 4 diverges, as in the notes
            raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        last = [line for line in done.stderr.splitlines() if " runs in " in line]
        print(f"  {' '.join(args):45s} {wall:6.1f} s wall   ({last[-1].strip() if last else ''})", flush=True)
        return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed pairs (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="cut every preset's epochs (a quick look)")
    a = parser.parse_args()
    extra = [] if a.epochs is None else ["--epochs", str(a.epochs)]
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; warm-up (kernel cache) ...", flush=True)
    timed(COMMANDS["pool"], extra)
    walls: dict[str, list[float]] = {"pool": [], "ray": []}
    for _ in range(a.repeats):
        for name, args in COMMANDS.items():
            walls[name].append(timed(args, extra))
    pool, ray = statistics.median(walls["pool"]), statistics.median(walls["ray"])
    print(f"median wall: pool {pool:.1f} s, ray {ray:.1f} s; ray / pool = {ray / pool:.2f} (target <= 1.25)")


if __name__ == "__main__":
    main()
