"""Presets: TOML files validated into frozen dataclasses at load time.

Every problem in a file is collected before reporting, and each problem is one line that
names the file, the dotted key, what was expected and what was found. Unknown keys are
errors with a "did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fnn_tui.core.expr import ExpressionError, parse_expression

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NORMS = ("none", "seed")
ACTIVATIONS = ("relu",)
LOSSES = ("mse",)


@dataclass(frozen=True)
class Experiment:
    """Who the preset is: its row number in the seed's table, a name and what it tests."""

    number: int
    name: str
    description: str
    notes: str = ""


@dataclass(frozen=True)
class DataSpec:
    """The sampled 1-D regression problem."""

    target: str
    domain: tuple[float, float]
    samples: int
    train_fraction: float = 0.8
    seed: int = 0

    @property
    def n_train(self) -> int:
        """Number of training samples (at least 1, leaving at least 1 for the test set)."""
        return min(max(1, int(round(self.samples * self.train_fraction))), self.samples - 1)


@dataclass(frozen=True)
class ModelSpec:
    """A 1 -> hidden... -> 1 ReLU network, optionally with the seed's normalisation."""

    hidden: tuple[int, ...]
    activation: str = "relu"
    norm: str = "none"

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output."""
        return (1, *self.hidden, 1)


@dataclass(frozen=True)
class TrainingSpec:
    """Optimiser, schedule, penalty and clipping."""

    epochs: int
    lr: float
    batch_size: int = 1
    momentum: float = 0.5
    decay_factor: float | None = None
    decay_every: int = 5
    l2: float = 0.0
    clip: float | None = None
    loss: str = "mse"

    def lr_at(self, epoch: int) -> float:
        """Learning rate in force during ``epoch`` (0-based), as StepLR computes it."""
        if self.decay_factor is None:
            return self.lr
        return self.lr * self.decay_factor ** (epoch // self.decay_every)


@dataclass(frozen=True)
class Reported:
    """The numbers the seed's notes report for this row (any may be missing)."""

    train_loss: float | None = None
    train_ratio: float | None = None
    test_loss: float | None = None
    test_ratio: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Preset:
    """A fully validated experiment."""

    name: str
    experiment: Experiment
    data: DataSpec
    model: ModelSpec
    training: TrainingSpec
    reported: Reported = field(default_factory=Reported)
    source: str = ""

    def with_overrides(
        self, *, epochs: int | None = None, samples: int | None = None, seed: int | None = None
    ) -> Preset:
        """Return a copy with run-time overrides applied (``None`` keeps the value)."""
        data, training = self.data, self.training
        if samples is not None:
            data = dataclasses.replace(data, samples=samples)
        if seed is not None:
            data = dataclasses.replace(data, seed=seed)
        if epochs is not None:
            training = dataclasses.replace(training, epochs=epochs)
        preset = dataclasses.replace(self, data=data, training=training)
        problems = _semantic_problems(preset)
        if problems:
            raise PresetError(self.source or self.name, [f"override: {p}" for p in problems])
        return preset

    def setting(self) -> str:
        """The seed table's "situation" column, e.g. ``(20,20,30), norm+clip+L2, 5000, 150``."""
        parts = [f"({','.join(str(h) for h in self.model.hidden)})"]
        extras = []
        if self.model.norm == "seed":
            extras.append("norm")
        if self.training.clip is not None:
            extras.append("clip")
        if self.training.l2 > 0:
            extras.append("L2")
        parts.append("+".join(extras) if extras else "plain")
        parts.append(str(self.data.samples))
        parts.append(str(self.training.epochs))
        return ", ".join(parts)

    def lr_decay(self) -> str:
        """The seed table's "lr + decay" column, e.g. ``(0.01,0.5)``."""
        decay = "none" if self.training.decay_factor is None else f"{self.training.decay_factor:g}"
        return f"({self.training.lr:g},{decay})"

    def to_toml(self) -> str:
        """The fully resolved preset as TOML text (stored with every run)."""
        return dump_toml(preset_to_dict(self))

    def digest(self) -> str:
        """A short stable hash of the resolved preset."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()[:16]


class PresetError(ValueError):
    """A preset failed validation; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))

    def first_line(self) -> str:
        """The first problem, with a count of the rest: fits one terminal line."""
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.source}: {self.problems[0]}{more}"


# --- schema ---------------------------------------------------------------------------

_Check = Callable[[Any], "str | None"]


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _int(minimum: int) -> _Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected an integer >= {minimum}, found {_type_name(v)}"
        if v < minimum:
            return f"expected an integer >= {minimum}, found {v}"
        return None

    return check


def _float(low: float, high: float | None = None, *, low_open: bool, high_open: bool = True) -> _Check:
    lo = f"> {low:g}" if low_open else f">= {low:g}"
    hi = "" if high is None else (f" and < {high:g}" if high_open else f" and <= {high:g}")
    want = f"a finite number {lo}{hi}"

    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"expected {want}, found {_type_name(v)}"
        if not math.isfinite(v):
            return f"expected {want}, found {v}"
        if (v <= low) if low_open else (v < low):
            return f"expected {want}, found {v:g}"
        if high is not None and ((v >= high) if high_open else (v > high)):
            return f"expected {want}, found {v:g}"
        return None

    return check


def _str(choices: tuple[str, ...] | None = None, *, nonempty: bool = False) -> _Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            want = "a string" if choices is None else "one of " + ", ".join(f'"{c}"' for c in choices)
            return f"expected {want}, found {_type_name(v)}"
        if choices is not None and v not in choices:
            return f"expected one of {', '.join(repr(c) for c in choices)}, found {v!r}"
        if nonempty and not v.strip():
            return "expected a non-empty string, found an empty one"
        return None

    return check


def _finite_or_none(v: Any) -> str | None:
    return _float(-math.inf, low_open=True)(v)


SCHEMA: dict[str, dict[str, tuple[bool, _Check]]] = {
    "experiment": {
        "number": (True, _int(1)),
        "name": (True, _str(nonempty=True)),
        "description": (True, _str(nonempty=True)),
        "notes": (False, _str()),
    },
    "data": {
        "target": (True, _str(nonempty=True)),
        "domain": (True, lambda v: None),  # checked below
        "samples": (True, _int(2)),
        "train_fraction": (False, _float(0.0, 1.0, low_open=True)),
        "seed": (False, _int(0)),
    },
    "model": {
        "hidden": (True, lambda v: None),  # checked below
        "activation": (False, _str(ACTIVATIONS)),
        "norm": (False, _str(NORMS)),
    },
    "training": {
        "epochs": (True, _int(1)),
        "batch_size": (False, _int(1)),
        "lr": (True, _float(0.0, low_open=True)),
        "momentum": (False, _float(0.0, 1.0, low_open=False)),
        "decay_factor": (False, _float(0.0, 1.0, low_open=True, high_open=False)),
        "decay_every": (False, _int(1)),
        "l2": (False, _float(0.0, low_open=False)),
        "clip": (False, _float(0.0, low_open=True)),
        "loss": (False, _str(LOSSES)),
    },
    "reported": {
        "train_loss": (False, _finite_or_none),
        "train_ratio": (False, _finite_or_none),
        "test_loss": (False, _finite_or_none),
        "test_ratio": (False, _finite_or_none),
        "note": (False, _str()),
    },
}
REQUIRED_SECTIONS = ("experiment", "data", "model", "training")


def _unknown(key: str, known: list[str]) -> str:
    match = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {match[0]!r}?" if match else f" (known: {', '.join(known)})"
    return f"unknown key{hint}"


def _check_domain(v: Any) -> str | None:
    if (
        not isinstance(v, list)
        or len(v) != 2
        or any(isinstance(e, bool) or not isinstance(e, (int, float)) for e in v)
    ):
        return f"expected an array of two numbers [low, high], found {_type_name(v)}"
    if not all(math.isfinite(e) for e in v):
        return f"expected two finite numbers, found {v}"
    if not v[0] < v[1]:
        return f"expected low < high, found [{v[0]:g}, {v[1]:g}]"
    return None


def _check_hidden(v: Any) -> str | None:
    if not isinstance(v, list):
        return f"expected a non-empty array of positive integers, found {_type_name(v)}"
    if not v:
        return "expected a non-empty array of positive integers, found an empty array"
    for item in v:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            shown = _type_name(item) if not isinstance(item, int) or isinstance(item, bool) else item
            return f"expected a non-empty array of positive integers, found {shown} in the array"
    return None


def _structural_problems(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for section in doc:
        if section not in SCHEMA:
            problems.append(f"{section}: {_unknown(section, list(SCHEMA))}")
    for section, keys in SCHEMA.items():
        table = doc.get(section)
        if table is None:
            if section in REQUIRED_SECTIONS:
                problems.append(f"{section}: expected a table [{section}], found nothing")
            continue
        if not isinstance(table, dict):
            problems.append(f"{section}: expected a table, found {_type_name(table)}")
            continue
        for key in table:
            if key not in keys:
                problems.append(f"{section}.{key}: {_unknown(key, list(keys))}")
        for key, (required, check) in keys.items():
            if key not in table:
                if required:
                    problems.append(f"{section}.{key}: expected a value, found nothing (required)")
                continue
            value = table[key]
            if section == "data" and key == "domain":
                message = _check_domain(value)
            elif section == "model" and key == "hidden":
                message = _check_hidden(value)
            else:
                message = check(value)
            if message:
                problems.append(f"{section}.{key}: {message}")
    return problems


def _semantic_problems(preset: Preset) -> list[str]:
    """Checks that need several values at once (and that overrides must pass too)."""
    problems: list[str] = []
    data = preset.data
    if data.samples < 2:
        problems.append(f"data.samples: expected an integer >= 2, found {data.samples}")
    if data.seed < 0:
        problems.append(f"data.seed: expected an integer >= 0, found {data.seed}")
    if preset.training.epochs < 1:
        problems.append(f"training.epochs: expected an integer >= 1, found {preset.training.epochs}")
    try:
        target = parse_expression(data.target)
    except ExpressionError as exc:
        problems.append(f"data.target: {exc}")
    else:
        xs = torch.linspace(data.domain[0], data.domain[1], 2001, dtype=torch.float64)
        ys = target(xs)
        bad = ~torch.isfinite(ys)
        if bool(bad.any()):
            x_bad = float(xs[bad.nonzero()[0, 0]])
            problems.append(
                f"data.target: expected a function defined on the whole domain "
                f"[{data.domain[0]:g}, {data.domain[1]:g}], found {data.target!r} undefined at x={x_bad:g}"
            )
    if preset.model.norm == "seed":
        narrow = [h for h in preset.model.hidden if h < 2]
        if narrow:
            problems.append(
                "model.hidden: expected widths >= 2 with norm = \"seed\" (the variance of one "
                f"value is undefined), found {narrow[0]}"
            )
    return problems


def parse_preset(text: str, *, source: str, name: str) -> Preset:
    """Validate TOML ``text`` into a :class:`Preset`; raise :class:`PresetError` listing every problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(source, [_toml_syntax(str(exc))]) from None
    problems = _structural_problems(doc)
    if problems:
        raise PresetError(source, problems)
    e, d, m, t = (doc[s] for s in REQUIRED_SECTIONS)
    r = doc.get("reported", {})
    preset = Preset(
        name=name,
        experiment=Experiment(e["number"], e["name"], e["description"], e.get("notes", "")),
        data=DataSpec(
            target=d["target"],
            domain=(float(d["domain"][0]), float(d["domain"][1])),
            samples=d["samples"],
            train_fraction=float(d.get("train_fraction", 0.8)),
            seed=d.get("seed", 0),
        ),
        model=ModelSpec(tuple(m["hidden"]), m.get("activation", "relu"), m.get("norm", "none")),
        training=TrainingSpec(
            epochs=t["epochs"],
            lr=float(t["lr"]),
            batch_size=t.get("batch_size", 1),
            momentum=float(t.get("momentum", 0.5)),
            decay_factor=None if t.get("decay_factor") is None else float(t["decay_factor"]),
            decay_every=t.get("decay_every", 5),
            l2=float(t.get("l2", 0.0)),
            clip=None if t.get("clip") is None else float(t["clip"]),
            loss=t.get("loss", "mse"),
        ),
        reported=Reported(
            **{k: (float(v) if k != "note" else v) for k, v in r.items()}  # type: ignore[arg-type]
        ),
        source=source,
    )
    problems = _semantic_problems(preset)
    if problems:
        raise PresetError(source, problems)
    return preset


def load_preset(path: Path) -> Preset:
    """Read and validate one preset file; its name is the file's stem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(str(path), [f"cannot read the file ({exc.__class__.__name__}: {exc})"]) from None
    return parse_preset(text, source=str(path), name=path.stem)


def _toml_syntax(message: str) -> str:
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match:
        reason = message[: match.start()].strip()
        return f"TOML syntax error at line {match[1]}, column {match[2]}: {reason}"
    return f"TOML syntax error: {message}"


# --- writing --------------------------------------------------------------------------


def preset_to_dict(preset: Preset) -> dict[str, dict[str, Any]]:
    """The preset as nested plain data (``None`` values left out), in schema order."""
    out: dict[str, dict[str, Any]] = {}
    for section in SCHEMA:
        obj = getattr(preset, section)
        table = {k: getattr(obj, k) for k in SCHEMA[section]}
        table = {k: (list(v) if isinstance(v, tuple) else v) for k, v in table.items() if v is not None}
        if section == "reported":
            table = {k: v for k, v in table.items() if v != ""}
        out[section] = table
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(doc: dict[str, dict[str, Any]]) -> str:
    """Write a two-level document (tables of scalars and arrays) as TOML."""
    lines: list[str] = []
    for section, table in doc.items():
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"
