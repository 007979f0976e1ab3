"""Sweeps: a grid of settings x seeds stored by name, trained until every pair is done,
refused whole before any work when anything in it is wrong, and resumed after a kill to
the numbers of an uninterrupted sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.status import RunStatus
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store
from fnn_tui.store.sweeps import get_sweep, list_sweeps

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
TINY = ("--epochs", "1", "--samples", "200")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_sweep_trains_the_grid_once_and_reports_it(home: Path, tmp_path: Path) -> None:
    args = ("sweep", "8", "--set", "lr=0.001,0.1", "--set", "hidden=[20,20,30],[8,8]", "--seeds", "2", *TINY)
    dry = invoke(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert ("sweep exp08-lr-hidden: exp08 (samples=200, epochs=1), lr 2 x hidden 2 = 4 variants x 2 seeds (0,1) "
            "= 8 runs") in " ".join(dry.stdout.split())
    assert "done 0, training now 0, to resume 0, to start 8" in dry.output
    assert "estimate: none yet" in dry.output  # nothing finished in this store to measure from
    with Store(home) as store:  # the dry run stored nothing
        assert store.list_runs() == [] and list_sweeps(store) == []
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "training 8 of 8 runs" in result.output
    assert "| **" in result.output and "(best)" in result.output
    with Store(home) as store:
        runs = store.list_runs()
        sweep = get_sweep(store, "exp08-lr-hidden")
    assert len(runs) == 8 and {r.status for r in runs} == {RunStatus.FINISHED}
    assert sweep is not None and sweep.seeds == [0, 1] and sweep.preset == "exp08"
    assert sweep.grid == [["training.lr", [0.001, 0.1], "list"], ["model.hidden", [[20, 20, 30], [8, 8]], "list"]]
    # again, by its name or by the same command: nothing to train
    for again in (invoke("sweep", "exp08-lr-hidden"), invoke(*args)):
        assert again.exit_code == 0 and "all 8 runs are done" in again.output, again.output
    dry = invoke("sweep", "exp08-lr-hidden", "--seeds", "3", "--dry-run")
    assert "done 8, training now 0, to resume 0, to start 4" in dry.output
    assert "estimate: " in dry.output and "measured over" in dry.output
    # the report in three formats, and its figures
    md = invoke("report", "--sweep", "exp08-lr-hidden")
    assert md.exit_code == 0, md.output
    assert md.stdout.startswith("Sweep exp08-lr-hidden: exp08 (samples=200, epochs=1), 4 variants x 2 seeds")
    rows = [line for line in md.stdout.splitlines() if line.startswith("| ") and "variant" not in line]
    assert len(rows) == 4 and sum("(best)" in r for r in rows) == 1
    assert all(" 2/" in r for r in rows)
    doc = json.loads(invoke("report", "--sweep", "exp08-lr-hidden", "-f", "json").stdout)
    assert [v["variant"] for v in doc["variants"]] == [
        "lr=0.001, hidden=[20,20,30]", "lr=0.001, hidden=[8,8]", "lr=0.1, hidden=[20,20,30]", "lr=0.1, hidden=[8,8]"]
    best = min(doc["variants"], key=lambda v: v["metrics"]["test_loss"]["median"])
    assert best["best"] and sum(v["best"] for v in doc["variants"]) == 1
    assert sorted(i for v in doc["variants"] for i in v["runs"]) == sorted(r.id for r in runs)
    assert doc["provenance"]["command"] == "fnn-tui report --sweep exp08-lr-hidden -f json"
    assert (doc["provenance"]["device"], doc["provenance"]["engine"]) == ("cpu", "fused")
    csv_text = invoke("report", "--sweep", "exp08-lr-hidden", "-f", "csv").stdout
    assert csv_text.splitlines()[0].startswith("# made ") and "runs on cpu, engine fused" in csv_text.splitlines()[0]
    assert csv_text.splitlines()[1].startswith("variant,lr,hidden,finished,dead,diverged,missing,best,")
    figures = tmp_path / "figs"
    out = tmp_path / "sweep.md"
    written = invoke("report", "--sweep", "exp08-lr-hidden", "--figures", str(figures), "-o", str(out))
    assert written.exit_code == 0, written.output
    assert "wrote 2 figures to" in written.output
    pngs = sorted(p.name for p in figures.iterdir())
    assert pngs == ["sweep-exp08-lr-hidden-hidden.png", "sweep-exp08-lr-hidden-lr.png"]
    assert all((figures / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert "](figs/sweep-exp08-lr-hidden-lr.png)" in out.read_text()
    assert out.read_text().startswith("---\nmade: ")  # a file made by the command says how
    listed = invoke("sweeps")
    assert "exp08-lr-hidden" in listed.output and "8/8" in listed.output
    # the runs list names each run's variant
    assert "· lr=0.1" in invoke("results").output


def test_sweep_file(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "sweeps" / "momentum.toml"
    path.parent.mkdir()
    path.write_text('[sweep]\nname = "mom"\npreset = 8\nseeds = [0]\n\n[sweep.set]\nepochs = 1\nsamples = 200\n\n'
                    '[sweep.grid]\nmomentum = "lin(0.0,0.9,3)"\n')
    # the plan says what every variant shares, and a one-value setting is no axis of the grid
    dry = " ".join(invoke("sweep", str(path), "--dry-run").stdout.split())
    assert "sweep mom: exp08 (epochs=1, samples=200), momentum 3 = 3 variants x 1 seed (0) = 3 runs" in dry, dry
    result = invoke("sweep", str(path))
    assert result.exit_code == 0, result.output
    with Store(home) as store:
        sweep = get_sweep(store, "mom")
        runs = store.list_runs()
    assert sweep is not None and len(runs) == 3
    assert sorted(r.preset_toml.split("momentum = ")[1].split("\n")[0] for r in runs) == ["0.0", "0.45", "0.9"]
    assert "momentum=0.45" in invoke("report", "--sweep", "mom").stdout


def test_bad_sweeps_are_one_line_and_store_nothing(home: Path, tmp_path: Path) -> None:
    bad_file = tmp_path / "bad.toml"
    cases = [
        (["sweep", "8", "--set", "lr=0.1,abc"], "--set lr=0.1,abc: training.lr: expected a finite number > 0, "
                                                "found string 'abc'"),
        (["sweep", "8", "--set", "lrr=0.1,0.2"], "lrr: unknown key; did you mean 'lr'?"),
        (["sweep", "8", "--set", "lr=log(1e-3,1e-1)"], "expected log(low,high,n)"),
        (["sweep", "8", "--set", "lr=log(1e-3,1,100)", "--set", "momentum=lin(0,0.9,10)", "--seeds", "20"],
         "the grid is 100 x 10 = 1000 variants x 20 seeds = 20000 runs, over the bound of 10000 runs"),
        (["sweep", "8", "--set", "batch_size=1,400", *TINY], "training.batch_size: expected at most data.samples"),
        (["sweep", "nosuch"], "no stored sweep named 'nosuch'"),
        (["sweep", "8", "--set", "lr=0.1,0.2", "--seeds", "x"], "--seeds x: cannot read 'x'"),
        (["sweep", str(bad_file)], "bad.toml: sweep.grid.lrr: unknown key; did you mean 'lr'?"),
        (["report", "--sweep", "nosuch"], "no stored sweep named 'nosuch'"),
    ]
    bad_file.write_text('[sweep]\npreset = "exp08"\n[sweep.grid]\nlrr = [0.1, 0.2]\n')
    for args, message in cases:
        line = _one_error_line(invoke(*args))
        assert message in line, (args, line)
    for text, message in [
        ('[sweep]\npreset = "exp08"\nseed = 3\n', "sweep.seed: unknown key; did you mean 'seeds'?"),
        ('[sweep]\npreset = "exp08"\n[sweep.grid]\nhidden = [20, 30]\n', "sweep.grid.model.hidden: expected a non-empty"),
        ('[sweep]\npreset = "exp08"\n[sweep.grid]\nlr = 0.1\n', "sweep.grid.lr: expected an array of values or a range"),
        ('[sweep]\npreset = "exp08"\n[sweep.grid]\nlr = "log(0,1,3)"\n', "expected log() ends > 0"),
        ("[sweep\n", "TOML syntax error"),
    ]:
        bad_file.write_text(text)
        assert message in _one_error_line(invoke("sweep", str(bad_file))), text
    assert not (home / DB_NAME).exists()


def test_a_stored_name_with_another_grid_is_refused(home: Path) -> None:
    first = invoke("sweep", "8", "--set", "lr=0.1,0.2", *TINY, "--name", "mine")
    assert first.exit_code == 0, first.output
    line = _one_error_line(invoke("sweep", "8", "--set", "lr=0.3,0.2", *TINY, "--name", "mine"))
    assert "a sweep named 'mine' is stored with another grid or base" in line
    with Store(home) as store:
        assert len(store.list_runs()) == 2


def _final_numbers(home: Path) -> dict[tuple[str, int], list[tuple]]:
    with Store(home) as store:
        out = {}
        for r in store.list_runs(statuses=(RunStatus.FINISHED,)):
            lr = r.preset_toml.split("\nlr = ")[1].split("\n")[0]
            out[(lr, r.seed)] = [(m.epoch, m.train_loss, m.test_loss, m.train_ratio, m.test_ratio)
                                 for m in store.epochs(r.id)]
    return out


def test_a_killed_sweep_goes_on_to_the_numbers_of_an_uninterrupted_one(home: Path, tmp_path: Path) -> None:
    """A real SIGKILL of `fnn-tui sweep` mid-way, then the same command again: every
    (variant, seed) ends with the epochs of a sweep that was never stopped, to the bit."""
    # 150 epochs of 600 samples: about half a second of training, so that a kill after the third
    # epoch lands mid-way (30 epochs of 300 samples took 50 ms: the sweep could end before the kill)
    args = ["sweep", "8", "--set", "lr=0.01,0.02", "--seeds", "2", "--epochs", "150", "--samples", "600",
            "--engine", "fused"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "fnn_tui", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            if (home / DB_NAME).exists():
                with Store(home) as store:
                    runs = store.list_runs()
                if runs and min(r.epochs_done for r in runs) >= 3:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the sweep never trained three epochs")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    with Store(home) as store:
        killed = store.list_runs()
    assert killed and all(r.epochs_done < 150 for r in killed)  # stopped mid-way: not every pair done
    time.sleep(6)  # the killed process's runs are crashed once their heartbeat is older than the grace
    again = subprocess.run([sys.executable, "-m", "fnn_tui", *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    straight_home = tmp_path / "straight"
    straight = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(straight_home), *args],
                              env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    resumed, expected = _final_numbers(home), _final_numbers(straight_home)
    assert sorted(resumed) == [("0.01", 0), ("0.01", 1), ("0.02", 0), ("0.02", 1)]
    assert resumed == expected
