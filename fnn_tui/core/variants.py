"""Variants: a preset with some settings changed (``--set lr=0.05``), and grids of them.

A variant is not a new preset: it is the base preset with settings replaced, validated
exactly as a preset file is (the same :data:`~fnn_tui.core.presets.SCHEMA`, the same
messages, "did you mean" for unknown keys). Its runs are ordinary runs of the base preset
whose stored preset holds the changed settings; what makes it a variant is only its
difference to the base, which :func:`difference` names ("lr=0.05, hidden=[50,50]") and
:func:`label` puts after the preset's name ("exp08 · lr=0.05").

Keys are written in full (``training.lr``) or short (``lr``): every key of the sections
that change what a run computes (``[data]``, ``[model]``, ``[training]``) has a name of its
own. Values are TOML values (``0.05``, ``[50,50]``, ``"mean-var"``); a bare word that is not
TOML (``norm=mean-var``, ``target=sin(x)``) is taken as a string, and ``none`` clears an
optional setting (``clip=none``).

Ranges, for a sweep, name several values of one key (:func:`parse_values`):

- a list ``0.001,0.01,0.1`` (commas inside brackets or quotes belong to one value:
  ``hidden=[20,20,30],[50,50]`` is two values);
- ``log(a,b,n)``: ``n`` values from ``a`` to ``b``, evenly spaced on a log scale;
- ``lin(a,b,n)``: ``n`` values from ``a`` to ``b``, evenly spaced (integers when ``a``, ``b``
  and the step are whole numbers).

Everything here is checked before any work: a malformed key, value or range, and a grid of
more than :data:`MAX_GRID_RUNS` runs, is a :class:`~fnn_tui.core.presets.PresetError` of one
line naming the key and the value.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fnn_tui.core.expr import shorten
from fnn_tui.core.presets import (
    SCHEMA,
    Preset,
    PresetError,
    _structural_problems,
    dump_toml,
    parse_preset,
    preset_to_dict,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("data", "model", "training")  # what a run computes; [experiment] and [reported] are words about it
# data.seed is a dimension of its own (--seed, --seeds), never a setting of a variant
FIXED = {"data.seed": "the seed is not a setting of a variant: use --seed N or --seeds N"}
NULLABLE = ("training.decay_factor", "training.clip")  # optional keys whose absence means "none"
SHORT: dict[str, str] = {key: f"{section}.{key}" for section in SECTIONS for key in SCHEMA[section]}
assert len(SHORT) == sum(len(SCHEMA[s]) for s in SECTIONS), "short keys must be unique"
KEYS = tuple(SHORT.values())  # every settable key, in schema order

MAX_VALUES = 1000  # values of one key in one range
MAX_GRID_RUNS = 10_000  # variants x seeds of one sweep: far above the 160 of the example


@dataclass(frozen=True)
class Setting:
    """One ``key=value`` as typed, with its full key and its value."""

    text: str  # as typed, for messages
    key: str  # full key, e.g. "training.lr"
    value: Any  # a TOML value; ``None`` clears an optional setting


def _error(text: str, problem: str) -> PresetError:
    return PresetError(f"--set {shorten(text, 60)}", [problem])


def resolve_key(name: str, text: str | None = None) -> str:
    """The full key that ``name`` (``lr`` or ``training.lr``) stands for."""
    text = text if text is not None else name
    name = name.strip()
    if name in FIXED or SHORT.get(name) in FIXED:
        raise _error(text, f"{SHORT.get(name, name)}: {FIXED[SHORT.get(name, name)]}")
    if "." in name:
        section, _, key = name.partition(".")
        if section in ("experiment", "reported"):
            raise _error(text, f"{name}: [{section}] says what a preset is about; only the [data], [model] "
                               "and [training] settings of a run can be set")
        if section not in SECTIONS:
            match = difflib.get_close_matches(section, list(SECTIONS), n=1)
            hint = f"; did you mean {match[0]!r}?" if match else f" (known: {', '.join(SECTIONS)})"
            raise _error(text, f"{shorten(name)}: unknown section{hint}")
        if key not in SCHEMA[section]:
            match = difflib.get_close_matches(key, list(SCHEMA[section]), n=1)
            hint = f"; did you mean '{section}.{match[0]}'?" if match else f" (known: {', '.join(SCHEMA[section])})"
            raise _error(text, f"{shorten(name)}: unknown key{hint}")
        return name
    if name in SHORT:
        return SHORT[name]
    if not name:
        raise _error(text, "expected key=value (for example lr=0.05), found no key")
    match = difflib.get_close_matches(name, list(SHORT) + list(KEYS), n=1)
    hint = f"; did you mean {match[0]!r}?" if match else "; `fnn-tui show PRESET` lists the settings"
    raise _error(text, f"{shorten(name)}: unknown key{hint}")


def parse_value(raw: str, key: str, text: str) -> Any:
    """A value as TOML reads it; a bare word that is not TOML is a string; ``none`` clears
    an optional key."""
    raw = raw.strip()
    if not raw:
        raise _error(text, f"{key}: expected a value after '=', found nothing")
    if raw == "none" and key in NULLABLE:
        return None
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        pass
    if re.fullmatch(r"[^\[\]{}\"'=]+", raw):
        return raw  # norm=mean-var, target=sin(x)
    raise _error(text, f"{key}: expected a TOML value (a number, [20,30] or \"text\"), found {shorten(repr(raw))}")


def _check(setting: Setting) -> None:
    """The schema's own check of one value: the preset file's message, naming the key."""
    if setting.value is None:
        return
    section, _, key = setting.key.partition(".")
    message = SCHEMA[section][key][1](setting.value)
    if message:
        raise _error(setting.text, f"{setting.key}: {message}")


def parse_setting(text: str) -> Setting:
    """One ``key=value`` (a single value), checked against the schema."""
    name, eq, raw = text.partition("=")
    if not eq:
        raise _error(text, f"expected key=value (for example lr=0.05), found {shorten(repr(text))}")
    key = resolve_key(name, text)
    if _RANGE.match(raw.strip()) or len(split_top(raw)) > 1:
        raise _error(text, f"{key}: expected one value, found a range: several values are a sweep "
                           f"(`fnn-tui sweep PRESET --set {shorten(text, 40)}`)")
    setting = Setting(text=text, key=key, value=parse_value(raw, key, text))
    _check(setting)
    return setting


def parse_settings(texts: Sequence[str]) -> dict[str, Any]:
    """Several ``key=value``; a key given twice is an error (which one would win is a guess)."""
    settings: dict[str, Any] = {}
    for text in texts:
        s = parse_setting(text)
        if s.key in settings:
            raise _error(text, f"{s.key}: set twice; give each key once")
        settings[s.key] = s.value
    return settings


def apply_settings(preset: Preset, settings: Mapping[str, Any]) -> Preset:
    """``preset`` with ``settings`` (full keys, TOML values; ``None`` clears an optional key)
    replaced, validated as a preset file is. Its name, source and notes' numbers stay the
    base's: a variant's runs are runs of the base preset."""
    doc = preset_to_dict(preset)
    for full, value in settings.items():
        section, _, key = resolve_key(full).partition(".")
        if value is None:
            doc[section].pop(key, None)
        else:  # a tuple (a preset's own hidden widths) is the TOML array it stands for
            doc[section][key] = list(value) if isinstance(value, tuple) else value
    shown = ", ".join(f"{k.split('.')[-1]}={_show(v)}" for k, v in settings.items())
    source = f"--set {shorten(shown, 60)}" if settings else preset.source
    problems = _structural_problems(doc)  # a table where a value goes cannot even be written
    if problems:
        raise PresetError(source, problems)
    try:
        variant = parse_preset(dump_toml(doc), source=preset.source, name=preset.name)
    except PresetError as exc:
        raise PresetError(source, exc.problems) from None
    return variant


# --- naming a variant -------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as the user types it: ``0.05``, ``[50,50]``, ``mean-var``, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def changed(base: Preset, used: Preset) -> dict[str, Any]:
    """The settings of ``used`` that differ from ``base`` (full keys, schema order), the seed
    left out; a cleared optional setting is ``None``."""
    a, b = preset_to_dict(base), preset_to_dict(used)
    out: dict[str, Any] = {}
    for key in KEYS:
        section, _, name = key.partition(".")
        if key == "data.seed":
            continue
        if a[section].get(name) != b[section].get(name):
            out[key] = b[section].get(name)
    return out


def describe(settings: Mapping[str, Any]) -> str:
    """Settings in the words of ``--set``: ``lr=0.05, hidden=[50,50]``."""
    return ", ".join(f"{key.split('.', 1)[1]}={_show(value)}" for key, value in settings.items())


def difference(base: Preset, used: Preset) -> str:
    """What ``used`` (a stored run's preset) changes against ``base`` (the catalog's preset of
    the same name), in the words of ``--set``; "" when nothing that trains differs. The one
    function every front end names a variant with."""
    return describe(changed(base, used))


def label(base: Preset, used: Preset) -> str:
    """The name of a variant: ``exp08 · lr=0.05`` (just ``exp08`` for the preset itself)."""
    diff = difference(base, used)
    return f"{used.name} · {diff}" if diff else used.name


# --- ranges and grids ----------------------------------------------------------------------

_RANGE = re.compile(r"^(log|lin)\((.*)\)$", re.DOTALL)


def split_top(raw: str) -> list[str]:
    """Split on the commas that are outside brackets, parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(raw):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    return [p.strip() for p in parts]


def _nice(value: float) -> float:
    """A spaced value without the last-bit noise of the arithmetic (0.01, not 0.010000000000000002)."""
    return float(f"{value:.12g}")


def _range(kind: str, args: str, key: str, text: str) -> list[Any]:
    syntax = f"{kind}(low,high,n), e.g. {kind}(1e-3,1e-1,5)"
    parts = split_top(args)
    if len(parts) != 3:
        raise _error(text, f"{key}: expected {syntax}, found {shorten(repr(f'{kind}({args})'))}")
    try:
        numbers = [tomllib.loads(f"v = {p}")["v"] for p in parts]
    except (tomllib.TOMLDecodeError, ValueError):
        numbers = []
    if len(numbers) != 3 or any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in numbers):
        raise _error(text, f"{key}: expected {syntax} with numbers, found {shorten(repr(f'{kind}({args})'))}")
    low, high, n = numbers
    if isinstance(n, float) or not 2 <= n <= MAX_VALUES:
        raise _error(text, f"{key}: expected n, the number of values, from 2 to {MAX_VALUES}, found {_show(n)}")
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        raise _error(text, f"{key}: expected two different finite ends, found {_show(low)} and {_show(high)}")
    if kind == "log":
        if low <= 0 or high <= 0:
            raise _error(text, f"{key}: expected log() ends > 0, found {_show(low)} and {_show(high)}")
        a, b = math.log10(low), math.log10(high)
        return [_nice(10 ** (a + (b - a) * i / (n - 1))) for i in range(n)]
    step = (high - low) / (n - 1)
    if isinstance(low, int) and isinstance(high, int) and float(step).is_integer():
        return [low + int(step) * i for i in range(n)]
    return [_nice(low + step * i) for i in range(n)]


def parse_values(text: str) -> tuple[str, list[Any], str]:
    """One ``key=values`` of a sweep: its full key, its values (each checked against the
    schema) and how they are spaced: ``"log"``, ``"lin"`` or ``"list"``."""
    name, eq, raw = text.partition("=")
    if not eq:
        raise _error(text, f"expected key=value(s) (for example lr=0.001,0.01), found {shorten(repr(text))}")
    key = resolve_key(name, text)
    raw = raw.strip()
    match = _RANGE.match(raw)
    if match:
        values, spacing = _range(match[1], match[2], key, text), match[1]
    else:
        parts = split_top(raw)
        if len(parts) > MAX_VALUES:
            raise _error(text, f"{key}: expected at most {MAX_VALUES} values, found {len(parts)}")
        values, spacing = [parse_value(p, key, text) for p in parts], "list"
    return key, checked_values(key, values, text), spacing


def checked_values(key: str, values: list[Any], text: str) -> list[Any]:
    """``values`` of ``key``, each checked against the schema, each once (order kept)."""
    out: list[Any] = []
    for value in values:
        _check(Setting(text=text, key=key, value=value))
        if value in out:
            raise _error(text, f"{key}: the value {_show(value)} is given twice")
        out.append(value)
    if not out:
        raise _error(text, f"{key}: expected at least one value, found none")
    return out


@dataclass(frozen=True)
class Grid:
    """The settings of a sweep: each swept key with its values (and their spacing), in order."""

    axes: tuple[tuple[str, tuple[Any, ...], str], ...]  # (full key, values, "log" | "lin" | "list")

    @property
    def size(self) -> int:
        """The number of variants: the product of the numbers of values."""
        return math.prod(len(values) for _, values, _ in self.axes)

    def combinations(self) -> list[dict[str, Any]]:
        """Every variant's settings, the last key changing fastest."""
        keys = [key for key, _, _ in self.axes]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values, _ in self.axes))]

    def to_data(self) -> list[list[Any]]:
        """Plain data (for JSON)."""
        return [[key, list(values), spacing] for key, values, spacing in self.axes]

    @classmethod
    def from_data(cls, data: list[list[Any]]) -> Grid:
        """The inverse of :meth:`to_data`."""
        return cls(tuple((str(k), tuple(v), str(s)) for k, v, s in data))


def parse_grid(texts: Sequence[str]) -> Grid:
    """Several ``key=values`` into a grid; a key given twice is an error."""
    axes: list[tuple[str, tuple[Any, ...], str]] = []
    for text in texts:
        key, values, spacing = parse_values(text)
        if any(key == k for k, _, _ in axes):
            raise _error(text, f"{key}: set twice; give each key once")
        axes.append((key, tuple(values), spacing))
    return Grid(tuple(axes))


def check_size(grid: Grid, seeds: int) -> None:
    """Refuse a grid of more than :data:`MAX_GRID_RUNS` runs, with its size."""
    runs = grid.size * seeds
    if runs > MAX_GRID_RUNS:
        shape = " x ".join(str(len(values)) for _, values, _ in grid.axes)
        raise PresetError("sweep", [f"the grid is {shape} = {grid.size} variants x {seeds} seeds = {runs} runs, "
                                    f"over the bound of {MAX_GRID_RUNS} runs: give fewer values or seeds"])


def variants(base: Preset, grid: Grid) -> list[Preset]:
    """Every variant of the grid, validated (a combination that breaks a rule across keys,
    such as batch_size over samples, names itself)."""
    return [apply_settings(base, settings) for settings in grid.combinations()]
