"""Variants: ``--set`` parsed and validated as a preset file is, applied, and named everywhere."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core import variants as v
from fnn_tui.core.presets import PresetError
from fnn_tui.store.db import DB_NAME
from fnn_tui.store.runs import Store

runner = CliRunner()
TINY = ("--epochs", "2", "--samples", "200")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_every_section_can_be_set_with_full_or_short_keys(catalog) -> None:
    base = catalog.get("exp08")
    changes = v.parse_settings([
        "data.target=sin(x)", "domain=[-1.0, 2.0]", "train_fraction=0.5",  # [data]
        "hidden=[50,50]", "model.norm=none",  # [model]
        "lr=0.05", "training.momentum=0.9", "decay_factor=0.9", "decay_every=3", "l2=0.0", "clip=none",  # [training]
    ])
    variant = v.apply_settings(base, changes)
    assert variant.name == "exp08" and variant.reported == base.reported
    assert variant.data.target == "sin(x)" and variant.data.domain == (-1.0, 2.0) and variant.data.train_fraction == 0.5
    assert variant.model.hidden == (50, 50) and variant.model.norm == "none"
    t = variant.training
    assert (t.lr, t.momentum, t.decay_factor, t.decay_every, t.l2, t.clip) == (0.05, 0.9, 0.9, 3, 0.0, None)
    assert variant.study_digest() != base.study_digest()
    assert v.difference(base, variant) == (
        "target=sin(x), domain=[-1,2], train_fraction=0.5, hidden=[50,50], norm=none, lr=0.05, momentum=0.9, "
        "decay_factor=0.9, decay_every=3, l2=0, clip=none")
    assert v.label(base, v.apply_settings(base, {"training.lr": 0.05})) == "exp08 · lr=0.05"
    assert v.apply_settings(base, {"hidden": (50, 50)}).model.hidden == (50, 50)  # short key, tuple value
    # nothing changed is the preset itself, to the hash
    same = v.apply_settings(base, v.parse_settings(["lr=0.01"]))
    assert same.digest() == base.digest() and v.label(base, same) == "exp08"


@pytest.mark.parametrize(("text", "message"), [
    ("lrr=0.1", "--set lrr=0.1: lrr: unknown key; did you mean 'lr'?"),
    ("training.lrr=0.1", "training.lrr: unknown key; did you mean 'training.lr'?"),
    ("trainin.lr=0.1", "trainin.lr: unknown section; did you mean 'training'?"),
    ("lr=abc", "--set lr=abc: training.lr: expected a finite number > 0, found string 'abc'"),
    ("lr=-1", "training.lr: expected a finite number > 0, found -1"),
    ("hidden=[0]", "model.hidden: expected a non-empty array of at most 64 integers from 1 to 4096, found 0"),
    ("norm=seeds", "model.norm: expected one of 'none', 'mean-var', found 'seeds'"),
    ("epochs=1.5", "training.epochs: expected an integer from 1 to 1_000_000, found float 1.5"),
    ("seed=3", "data.seed: the seed is not a setting of a variant: use --seed N or --seeds N"),
    ("experiment.name=x", "experiment.name: [experiment] says what a preset is about"),
    ("lr", "expected key=value (for example lr=0.05), found 'lr'"),
    ("lr=", "training.lr: expected a value after '=', found nothing"),
    ("lr=0.1,0.2", "training.lr: expected one value, found a range"),
    ("target=x**", "data.target:"),
    ("batch_size=100000", "training.batch_size: expected at most data.samples (5000), found 100000"),
])
def test_a_bad_setting_is_the_preset_files_message(catalog, text: str, message: str) -> None:
    with pytest.raises(PresetError) as caught:
        v.apply_settings(catalog.get("exp08"), v.parse_settings([text]))
    assert message in caught.value.first_line()
    assert len(caught.value.problems) == 1


def test_ranges_lists_of_lists_log_and_lin() -> None:
    assert v.parse_values("hidden=[20,20,30],[50,50]") == ("model.hidden", [[20, 20, 30], [50, 50]], "list")
    assert v.parse_values("lr=0.001,0.01,0.1") == ("training.lr", [0.001, 0.01, 0.1], "list")
    assert v.parse_values("lr=log(1e-3,1e-1,3)") == ("training.lr", [0.001, 0.01, 0.1], "log")
    assert v.parse_values("epochs=lin(10,50,5)") == ("training.epochs", [10, 20, 30, 40, 50], "lin")
    assert v.parse_values("momentum=lin(0,0.9,4)")[1] == [0.0, 0.3, 0.6, 0.9]
    grid = v.parse_grid(["lr=0.001,0.01,0.1", "hidden=[20,20,30],[50,50]"])
    assert grid.size == 6 and grid.combinations()[1] == {"training.lr": 0.001, "model.hidden": [50, 50]}
    assert v.Grid.from_data(grid.to_data()) == grid
    for text, message in [
        ("lr=log(0,1,3)", "expected log() ends > 0"),
        ("lr=log(1e-3,1e-1)", "expected log(low,high,n)"),
        ("lr=lin(1,2,1)", "expected n, the number of values, from 2 to 1000, found 1"),
        ("lr=lin(-1,1,3)", "training.lr: expected a finite number > 0, found -1"),
        ("lr=0.1,0.1", "the value 0.1 is given twice"),
        ("hidden=20,30", "model.hidden: expected a non-empty array"),
    ]:
        with pytest.raises(PresetError) as caught:
            v.parse_values(text)
        assert message in caught.value.first_line(), text
    with pytest.raises(PresetError, match=r"the grid is 100 x 10 = 1000 variants x 20 seeds = 20000 runs, over"):
        v.check_size(v.parse_grid(["lr=log(1e-3,1,100)", "momentum=lin(0,0.9,10)"]), 20)


def test_run_set_trains_the_variant_and_names_it(home) -> None:
    result = invoke("run", "8", *TINY, "--set", "lr=0.05", "--set", "training.momentum=0.9")
    assert result.exit_code == 0, result.output
    assert "v1: exp08 · samples=200, epochs=2, lr=0.05, momentum=0.9" in result.output
    with Store(home) as store:
        (run,) = store.list_runs()
    assert run.preset == "exp08" and "lr = 0.05" in run.preset_toml and "momentum = 0.9" in run.preset_toml
    listed = invoke("results")
    assert "· lr=0.05" in listed.output and "· momentum=0.9" in listed.output
    exported = invoke("export", "-f", "csv")
    assert "samples=200, epochs=2, lr=0.05, momentum=0.9" in exported.output
    # --seeds on a variant: its seed 0 is done, seed 1 trains
    again = invoke("run", "8", *TINY, "--set", "lr=0.05", "--set", "momentum=0.9", "--seeds", "2")
    assert again.exit_code == 0, again.output
    assert "1 seed done with these settings" in again.output
    with Store(home) as store:
        assert sorted(r.seed for r in store.list_runs()) == [0, 1]


def test_run_set_refusals_are_one_line_and_store_nothing(home) -> None:
    for args in (["--set", "lrr=0.1"], ["--set", "lr=abc"], ["--set", "lr=0.1", "--set", "training.lr=0.2"],
                 ["--set", "lr=log(1e-3,1e-1,3)"]):
        result = invoke("run", "8", *TINY, *args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: --set"), result.output
    assert not (home / DB_NAME).exists()
