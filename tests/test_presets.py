"""Presets: the eleven built-ins match the notes' table; every class of mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnn_tui.core.catalog import UnknownPresetError, discover
from fnn_tui.core.presets import PresetError, load_preset, parse_preset

from .conftest import FIXTURES

# number: hidden, norm, lr, decay, samples, epochs, clip, l2>0
TABLE = {
    1: ((10, 10), "none", 0.01, 0.5, 10000, 500, None, False),
    2: ((20, 20), "none", 0.01, 0.5, 10000, 500, None, False),
    3: ((10, 20, 20), "none", 0.01, 0.5, 10000, 500, None, False),
    4: ((10, 20, 20), "none", 0.5, 0.1, 10000, 500, None, False),
    5: ((40, 40), "none", 0.01, 0.4, 10000, 500, None, False),
    6: ((50, 50), "none", 0.01, 0.4, 10000, 500, None, False),
    7: ((20, 20, 30), "mean-var", 0.01, 0.5, 1000, 150, 1.0, True),
    8: ((20, 20, 30), "mean-var", 0.01, 0.5, 5000, 150, 1.0, True),
    9: ((20, 20, 30), "mean-var", 0.01, 0.5, 10000, 150, 1.0, True),
    10: ((50, 50), "mean-var", 0.01, None, 5000, 150, 1.0, True),
    11: ((50, 50), "mean-var", 0.01, 0.5, 5000, 150, 1.0, True),
}


def test_every_builtin_preset_matches_the_notes_table(catalog) -> None:
    presets = catalog.valid()
    assert [p.name for p in presets] == [f"exp{n:02d}" for n in range(1, 12)]
    for p in presets:
        hidden, norm, lr, decay, samples, epochs, clip, has_l2 = TABLE[p.experiment.number]
        assert p.model.hidden == hidden
        assert p.model.norm == norm
        assert p.training.lr == lr
        assert p.training.decay_factor == decay
        assert p.training.decay_every == 5
        assert p.data.samples == samples
        assert p.training.epochs == epochs
        assert p.training.clip == clip
        assert (p.training.l2 > 0) == has_l2
        assert p.training.momentum == 0.5 and p.training.batch_size == 1
        assert p.data.target == "log2(x) + cos(pi*x/2)" and p.data.domain == (1.0, 16.0)
        assert p.data.n_train == int(samples * 0.8)
        assert p.experiment.name and p.experiment.description


def test_reported_numbers_are_carried(catalog) -> None:
    p8 = catalog.get("exp08")
    assert (p8.reported.train_loss, p8.reported.train_ratio) == (0.002960, 1.122541)
    assert (p8.reported.test_loss, p8.reported.test_ratio) == (0.002974, 1.013080)
    assert "15.x" in catalog.get("4").reported.note
    assert "assumption" in p8.experiment.notes


def test_learning_rate_schedule_is_a_step_decay(catalog) -> None:
    t = catalog.get("exp08").training
    assert [t.lr_at(e) for e in (0, 4, 5, 9, 10)] == [0.01, 0.01, 0.005, 0.005, 0.0025]
    assert catalog.get("exp10").training.lr_at(100) == 0.01


BROKEN = {
    "syntax_error": "TOML syntax error at line 9, column 11",
    "wrong_type": "training.epochs: expected an integer from 1 to 1_000_000, found string 'two'",
    "negative_lr": "training.lr: expected a finite number > 0, found -0.1",
    "zero_lr": "training.lr: expected a finite number > 0, found 0",
    "empty_hidden": "model.hidden: expected a non-empty array of at most 64 integers from 1 to 4096, found an empty array",
    "zero_width": "model.hidden: expected a non-empty array of at most 64 integers from 1 to 4096, found 0",
    "unknown_key": "training.momentun: unknown key; did you mean 'momentum'?",
    "unknown_section": "trainig: unknown key; did you mean 'training'?",
    "momentum_one": "training.momentum: expected a finite number >= 0 and < 1, found 1",
    "too_few_samples": "data.samples: expected an integer from 2 to 10_000_000, found 1",
    "log_domain": "data.target: expected a function defined on the whole domain [-1, 16]",
    "nan_value": "training.lr: expected a finite number > 0, found nan",
    "inf_clip": "training.clip: expected a finite number > 0, found inf",
    "unsafe_target": "data.target: call to \"__import__('os').system\" is not allowed",
    "missing_section": "model: expected a table [model], found nothing",
    "bad_domain": "data.domain: expected low < high",
    "norm_width_one": 'model.hidden: expected widths >= 2 with norm = "mean-var"',
    "bad_norm": "model.norm: expected one of 'none', 'mean-var', found 'batch'",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_fixture_gives_its_line(name: str) -> None:
    path = FIXTURES / "broken" / f"{name}.toml"
    with pytest.raises(PresetError) as info:
        load_preset(path)
    line = info.value.first_line()
    assert line.startswith(f"{path}: ")
    assert BROKEN[name] in line
    assert "\n" not in line


def test_fixture_folder_and_table_agree() -> None:
    assert {p.stem for p in (FIXTURES / "broken").glob("*.toml")} == set(BROKEN)


def test_every_problem_is_collected() -> None:
    text = (FIXTURES / "broken" / "negative_lr.toml").read_text().replace("epochs = 2", "epochs = 0\nfoo = 1")
    with pytest.raises(PresetError) as info:
        parse_preset(text, source="mem.toml", name="mem")
    joined = "\n".join(info.value.problems)
    assert len(info.value.problems) == 3
    assert "training.epochs" in joined and "training.lr" in joined and "training.foo" in joined


def test_resolved_preset_round_trips_through_toml(catalog) -> None:
    for preset in catalog.valid():
        again = parse_preset(preset.to_toml(), source=preset.source, name=preset.name)
        assert again == preset
        assert again.digest() == preset.digest()


def test_overrides_are_validated(catalog) -> None:
    p = catalog.get("exp08")
    assert p.with_overrides(epochs=3, samples=300, seed=7).training.epochs == 3
    with pytest.raises(PresetError, match="data.samples"):
        p.with_overrides(samples=1)


def test_user_preset_shadows_builtin_visibly(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    text = (Path(discover(include_user=False).get("exp08").source)).read_text().replace("epochs = 150", "epochs = 7")
    (folder / "exp08.toml").write_text(text)
    (folder / "broken.toml").write_text("[experiment\n")
    cat = discover([folder])
    entry = next(e for e in cat.entries if e.name == "exp08")
    assert entry.origin == "dir" and entry.shadows is not None and entry.shadows.name == "exp08.toml"
    assert cat.get("exp08").training.epochs == 7
    broken = next(e for e in cat.entries if e.name == "broken")
    assert not broken.ok and "TOML syntax error" in broken.error.first_line()  # type: ignore[union-attr]


def test_unknown_preset_name_suggests(catalog) -> None:
    with pytest.raises(UnknownPresetError, match="did you mean 'exp08'"):
        catalog.get("exp8x")
