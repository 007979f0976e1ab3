#!/usr/bin/env bash
# The GPU checks of issue 20 as one prepared script, for a lent GPU machine whose Python
# already has torch (CUDA), numba and a CUDA toolkit, but no package registry.
#
#   benchmarks/gpu_session.sh prepare   # here, with a registry: the wheels the machine
#                                       # lacks into .whl/ (git-ignored; about 1.5 MB)
#   benchmarks/gpu_session.sh           # there, from the checkout's root (carry .whl):
#                                       # everything below, logs into $OUT (or /tmp/gpu-out)
#
# In order, each with a time limit so that the whole fits one 10-minute command:
#   1. what the machine is (GPU, torch, numba);
#   2. the GPU engine's tests on the real GPU (tests/test_cuda_group.py: every lane within
#      float32 rounding of the CPU kernel, both training kernels; the sm_90 compile checks);
#   3. `fnn-tui run` on cuda: a study of 1024 seeds of exp08 for 3 epochs, then the same
#      with FNN_TUI_CUDA_KERNEL=thread (the other kernel), each with its stored engine column;
#   4. benchmarks/gpu.py: launch overhead, ns per seed-step of both kernels at 1k/4k/16k
#      lanes on exp08 and exp06 beside the CPU kernel, and the eleven presets x 100 seeds
#      (stopped at 120 s and projected).
# The limits add up to under 10 minutes (not yet run on a GPU): give it a timeout of 600 s. Paste gpu.txt into README.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ "${1:-}" = prepare ]; then
    rm -rf .whl && mkdir -p .whl
    # our dependencies the image lacks (it has torch, numba, numba-cuda, scipy, rich, typer,
    # matplotlib, pytest): Python 3.12 wheels, no dependencies pulled beyond these
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl textual textual-plotext plotext platformdirs linkify-it-py uc-micro-py mdit-py-plugins \
        pytest-asyncio || exit 2
    ls .whl
    exit 0
fi

OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NO_COLOR=1
export FNN_TUI_HOME=/tmp/fnn-gpu-home FNN_TUI_CONFIG=/tmp/fnn-gpu-config FNN_TUI_CACHE=/tmp/fnn-gpu-cache
export PYTHONPATH="$PWD"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_session.sh: the carried wheels did not install" >&2; exit 2; }
    export PYTHONPATH="$PWD:/tmp/site"
fi

step() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }

{
    step "the machine"
    nvidia-smi -L 2>&1
    "$PYTHON" - <<'EOF'
import sys, torch, numba
from numba import cuda
print("python", sys.version.split()[0], "| torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), "| numba", numba.__version__, "cuda", cuda.is_available())
from fnn_tui.core.engines.cuda_group import unusable_reason
print("GPU group engine:", unusable_reason() or "usable")
EOF
} 2>&1 | tee "$OUT/env.txt"

{
    step "the GPU engine's tests on the GPU"
    timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider -rs -x tests/test_cuda_group.py \
        tests/test_cuda_sim.py -k "not the_gpu_group_tests_pass_on_the_cuda_simulator"
    echo "pytest exit: $?"
} 2>&1 | tee "$OUT/tests.txt"

{
    for kernel in auto thread; do
        step "fnn-tui run 8 --seeds 1024 --device cuda --epochs 3 (FNN_TUI_CUDA_KERNEL=$kernel)"
        rm -rf "$FNN_TUI_HOME"
        start=$(date +%s%N)
        FNN_TUI_CUDA_KERNEL=$kernel timeout 60 "$PYTHON" -m fnn_tui run 8 --seeds 1024 --device cuda --epochs 3 \
            > "$OUT/run-$kernel.txt"
        echo "exit $?, $(( ($(date +%s%N) - start) / 1000000 )) ms wall; the results table's last lines:"
        tail -4 "$OUT/run-$kernel.txt"
        "$PYTHON" -c "import collections, os
from fnn_tui.store.runs import Store
from pathlib import Path
with Store(Path(os.environ['FNN_TUI_HOME'])) as store:
    print('stored runs by engine, device, status:', dict(collections.Counter(
        (r.engine, r.device, r.status.value) for r in store.list_runs())))"
    done
} 2>&1 | tee "$OUT/cli.txt"

{
    step "benchmarks/gpu.py"
    timeout 300 "$PYTHON" benchmarks/gpu.py --table-limit 120
    echo "gpu.py exit: $?"
} 2>&1 | tee "$OUT/gpu.txt"
