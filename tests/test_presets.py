"""Presets: the eleven built-ins match the notes' table; every class of mistake is one clear line."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import time
from pathlib import Path

import pytest
import torch

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
    # hostile files: bounded sizes, arithmetic errors and control characters
    "target_div_zero": "data.target: expected a finite value, found '1/0 + x' divides by zero",
    "target_overflow": "data.target: expected a finite value, found '10.0**400 * x' overflows",
    "target_too_long": "data.target: expected at most 400 characters, found 5999 ('x+x+x+x+",
    "target_too_deep": "data.target: expected at most 32 nested parentheses, found 60 ('sin(sin(",
    "huge_integer": "data.samples: expected an integer from 2 to 10_000_000, found 99999999... (23 digits)",
    "seed_too_big": "data.seed: expected an integer from 0 to 4_294_967_295, found 4294967296",
    "too_many_samples": "data.samples: expected an integer from 2 to 10_000_000, found 1000000000",
    "too_wide": "model.hidden: expected a non-empty array of at most 64 integers from 1 to 4096, found 100000",
    "escape_in_notes": "experiment.notes: expected text without control characters, found U+001B (escape)",
    "carriage_return": "experiment.name: expected text without control characters, found U+000D (carriage return)",
    "batch_over_samples": "training.batch_size: expected at most data.samples (100), found 101",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_fixture_gives_its_line(name: str) -> None:
    path = FIXTURES / "broken" / f"{name}.toml"
    with pytest.raises(PresetError) as info:
        load_preset(path)
    line = info.value.first_line()
    assert line.startswith(f"{path}: ")
    assert BROKEN[name] in line
    assert "\n" not in line and len(line) < 300  # one readable line, even for a 6 kB target


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


def test_overrides_obey_the_same_bounds(catalog) -> None:
    p = catalog.get("exp08")
    for kwargs, line in [
        ({"epochs": 1_000_001}, "override: training.epochs: expected an integer from 1 to 1_000_000, found 1000001"),
        ({"seed": 2**32}, "override: data.seed: expected an integer from 0 to 4_294_967_295, found 4294967296"),
        ({"seed": -1}, "override: data.seed: expected an integer from 0 to 4_294_967_295, found -1"),
        ({"samples": 10**9}, "override: data.samples: expected an integer from 2 to 10_000_000, found 1000000000"),
        ({"samples": 2**70}, "override: data.samples: expected an integer from 2 to 10_000_000, found 11805916"),
    ]:
        with pytest.raises(PresetError) as info:
            p.with_overrides(**kwargs)
        assert line in info.value.first_line()
    assert p.with_overrides(seed=2**32 - 1, epochs=1_000_000).data.seed == 2**32 - 1


def test_largest_seed_and_epoch_give_a_sample_order() -> None:
    from fnn_tui.core.data import epoch_order
    from fnn_tui.core.presets import MAX_EPOCHS, MAX_SEED

    order = epoch_order(50, MAX_SEED, MAX_EPOCHS - 1)
    assert sorted(order.tolist()) == list(range(50))
    assert not torch.equal(order, epoch_order(50, MAX_SEED, MAX_EPOCHS - 2))


def test_a_run_too_big_for_memory_is_refused_with_its_size(catalog) -> None:
    from fnn_tui.core.budget import estimate, memory_problems

    p = catalog.get("exp08")
    assert memory_problems(p, available=18 * 10**9) == []
    wide = dataclasses.replace(p, model=dataclasses.replace(p.model, hidden=(4096,) * 64))
    lines = memory_problems(wide, available=18 * 10**9)
    assert len(lines) == 1 and lines[0].startswith("model.hidden: needs about ")
    assert lines[0].endswith(" GB of memory, 18 GB available")
    many = p.with_overrides(samples=10_000_000)
    assert memory_problems(many, available=500 * 10**6)[0].startswith("data.samples: needs about 1.")
    need = estimate(wide)
    assert need.total > 64 * 4096 * 4096 * 4  # at least the float32 weights themselves


def test_validation_refuses_what_this_machine_cannot_hold(catalog) -> None:
    from fnn_tui.core.budget import available_memory

    text = catalog.get("exp08").to_toml().replace("hidden = [20, 20, 30]", "hidden = [" + ", ".join(["4096"] * 64) + "]")
    room = available_memory()
    assert room > 0
    if room > 200 * 10**9:
        pytest.skip("this machine holds even the largest network the bounds allow")
    started = time.perf_counter()
    with pytest.raises(PresetError) as info:
        parse_preset(text, source="big.toml", name="big")
    assert time.perf_counter() - started < 1.0  # arithmetic, no allocation
    assert info.value.first_line().startswith("big.toml: model.hidden: needs about ")


def test_old_norm_spelling_loads_with_a_notice_and_the_same_digest(catalog) -> None:
    p = catalog.get("exp08")
    assert p.model.norm == "mean-var" and p.notices == ()
    old_text = p.to_toml().replace('norm = "mean-var"', 'norm = "seed"')
    old = parse_preset(old_text, source="old.toml", name="exp08")
    assert old.model.norm == "mean-var" and old.to_toml() == p.to_toml()
    assert old.notices == ('model.norm: norm = "seed" is now called "mean-var"; the old name still loads',)
    # the digest runs stored before the rename carry: sha256 of their stored text
    assert p.digest() == old.digest() == hashlib.sha256(old_text.encode()).hexdigest()[:16]


def test_strings_with_control_characters_are_refused_by_key(catalog) -> None:
    base = catalog.get("exp01").to_toml()
    for char in ["\r", "\n", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u202e", "\u2028"]:
        escaped = f"\\u{ord(char):04X}"
        for key in ("name", "description", "notes"):
            text = re.sub(rf'(?m)^{key} = "', lambda m, e=escaped: f'{m[0]}a{e}', base)
            with pytest.raises(PresetError) as info:
                parse_preset(text, source="c.toml", name="c")
            assert info.value.first_line().startswith(f"c.toml: experiment.{key}: expected text without control")
            assert f"U+{ord(char):04X}" in info.value.first_line()


def test_every_accepted_string_round_trips(catalog) -> None:
    # property style: random text from all of Unicode (seeded), every accepted one must
    # come back unchanged through to_toml and parse_preset, with the same digest
    rng = random.Random(20240611)
    base = catalog.get("exp01")
    pools = ["\\\"'#[]=\n\t\r\x1b\x00\x7f\x85 ", "".join(chr(c) for c in range(0x20, 0x7F)), "éß€日本😀\u200d\ufeff"]
    accepted = 0
    for _ in range(400):
        chars = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(pools)
            chars.append(rng.choice(pool) if rng.random() < 0.8 else chr(rng.randint(0x20, 0x2FFFF)))
        value = "".join(chars)
        if 0xD800 <= max(map(ord, value)) <= 0xDFFF:
            continue
        try:
            preset = dataclasses.replace(base, experiment=dataclasses.replace(base.experiment, notes=value))
            text = preset.to_toml()
            again = parse_preset(text, source="r.toml", name=base.name)
        except PresetError as exc:
            assert "experiment.notes: expected text without control characters" in exc.first_line()
            continue
        accepted += 1
        assert again.experiment.notes == value and again.digest() == preset.digest()
    assert accepted > 100


def test_a_hostile_user_preset_breaks_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    good = (FIXTURES / "broken" / "negative_lr.toml").read_text().replace("lr = -0.1", "lr = 0.01")
    (folder / "exp07.toml").write_text(good.replace("log2(x) + cos(pi*x/2)", "2**100000"))
    (folder / "deep.toml").write_text("a = " + "[" * 40_000 + "]" * 40_000 + "\n")
    (folder / "fine.toml").write_text(good)
    cat = discover([folder])
    entries = {e.name: e for e in cat.entries}
    assert entries["fine"].ok and len(cat.valid()) == 11  # 10 built-ins (exp07 shadowed) + fine
    assert "data.target: expected a finite value, found '2**100000' overflows" in entries["exp07"].error.first_line()
    assert not entries["deep"].ok and "deep.toml: TOML" in entries["deep"].error.first_line()
    with pytest.raises(PresetError, match="overflows"):
        cat.get("exp07")

    # whatever else goes wrong inside one file's loading stays that file's error
    import fnn_tui.core.catalog as catalog_module

    real = catalog_module.load_preset

    def flaky(path: Path):
        if path.name == "fine.toml":
            raise RuntimeError("disk on fire")
        return real(path)

    monkeypatch.setattr(catalog_module, "load_preset", flaky)
    entries = {e.name: e for e in discover([folder]).entries}
    assert entries["fine"].error.first_line().endswith("fine.toml: cannot load the file (RuntimeError: disk on fire)")
    assert entries["exp08"].ok


def test_setting_strings_tell_every_builtin_apart_and_name_lr_decay_and_unusual_settings(catalog) -> None:
    settings = {p.name: p.setting() for p in catalog.valid()}
    assert len(set(settings.values())) == len(settings)  # exp03/exp04 and exp10/exp11 differ too
    assert settings["exp04"] == "(10,20,20), plain, 10000, 500, lr 0.5, decay 0.1"
    assert settings["exp10"] == "(50,50), norm+clip+L2, 5000, 150, lr 0.01, no decay"
    assert settings["exp11"] == "(50,50), norm+clip+L2, 5000, 150, lr 0.01, decay 0.5"
    p = catalog.get("exp08")
    changed = dataclasses.replace(p, training=dataclasses.replace(p.training, lr=0.02, batch_size=8, momentum=0.9,
                                                                  decay_every=3, l2=1e-3, clip=2.0),
                                  data=dataclasses.replace(p.data, train_fraction=0.5, target="sin(x)"))
    assert changed.setting() == ("(20,20,30), norm+clip+L2, 5000, 150, lr 0.02, decay 0.5 every 3, batch 8, "
                                 "momentum 0.9, train 0.5, L2 0.001, clip 2, y=sin(x)")
    # the seed is no setting: two seeds of one study read the same
    assert p.with_overrides(seed=7).setting() == p.setting()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("log(x - 4)", "expected a function defined on the whole domain [1, 16], found 'log(x - 4)' undefined at x=1"),
        ("1/(x-1)", "found '1/(x-1)' undefined at x=1"),
        ("exp(100*x)", "found 'exp(100*x)' undefined at x=7.1"),  # beyond float64 from x = 7.098 on
        ("exp(20*x)", "expected values that fit float32 (|y| < 3.4e38), found 'exp(20*x)' = 3.86425e+38 at x=4.4425"),
    ],
)
def test_a_target_undefined_or_too_large_somewhere_on_the_domain_names_where(catalog, target, expected) -> None:
    text = Path(catalog.get("exp08").source).read_text()
    text = re.sub(r'(?m)^target = .*$', f'target = "{target}"', text)
    assert re.search(r'(?m)^domain = \[1\.0, 16\.0\]|^domain = \[1, 16\]', text), "exp08's domain is [1, 16]"
    with pytest.raises(PresetError) as info:
        parse_preset(text, source="t.toml", name="t")
    assert expected in info.value.first_line()
