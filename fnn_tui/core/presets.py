"""Presets: TOML files validated into frozen dataclasses at load time.

Every problem in a file is collected before reporting, and each problem is one line that
names the file, the dotted key, what was expected and what was found. Unknown keys are
errors with a "did you mean" suggestion. A preset file is untrusted input: every integer
is bounded, strings carry no control characters, the target expression is bounded in size,
and a run that would not fit in memory is refused (see :mod:`fnn_tui.core.budget`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from fnn_tui.core import checks
from fnn_tui.core.budget import memory_problems
from fnn_tui.core.expr import MAX_LENGTH, ExpressionError, parse_expression, shorten

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NORMS = ("none", "mean-var")
# Old spellings that still load, with a notice; the digest is computed over the old
# spelling so that runs stored before the rename keep their hash (and still resume).
LEGACY_NORMS = {"seed": "mean-var"}
_DIGEST_NORMS = {new: old for old, new in LEGACY_NORMS.items()}

# Bounds on every integer: far above the lab's presets (10_000 samples, widths <= 50,
# 3 layers, 500 epochs), low enough that a typo cannot ask for days of work or all memory.
MAX_SAMPLES = 10_000_000
MAX_WIDTH = 4096
MAX_LAYERS = 64
MAX_EPOCHS = 1_000_000
MAX_SEED = 2**32 - 1  # torch's generators take 64 bits; data.py adds streams to the seed
MAX_NUMBER = 1000
MAX_DOMAIN = 1e9  # |low|, |high|: beyond it float32 inputs keep too few digits to learn from
FLOAT32_MAX = 3.4028234663852886e38
MAX_FILE_BYTES = 100_000  # the built-ins are about 1 kB
ACTIVATIONS = ("relu",)
# the settings every row of the notes shares (or, for L2 and clip, uses when it uses them):
# a preset's setting string names a setting only where it differs from these
LAB_USUAL: dict[str, Any] = {
    "batch_size": 1, "momentum": 0.5, "decay_every": 5, "train_fraction": 0.8, "l2": 1e-4, "clip": 1.0,
    "target": "log2(x) + cos(pi*x/2)", "domain": (1.0, 16.0),
}
LOSSES = ("mse",)


@dataclass(frozen=True)
class Experiment:
    """Who the preset is: its row number in the notes' table, a name and what it tests."""

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
    """A 1 -> hidden... -> 1 ReLU network, optionally with the notes' normalisation.

    ``norm = "mean-var"`` is the notes' ``(h - mean(h)) / var(h)`` after each hidden Linear
    (formerly spelled ``"seed"``, which still loads).
    """

    hidden: tuple[int, ...]
    activation: str = "relu"
    norm: str = "none"

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output."""
        return (1, *self.hidden, 1)

    @property
    def normalised(self) -> bool:
        """Whether each hidden layer has the notes' mean-var normalisation (every engine asks this)."""
        return self.norm == "mean-var"


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
    """The numbers the notes report for this row (any may be missing)."""

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
    # non-fatal remarks from loading (an old spelling), for the front ends to show
    notices: tuple[str, ...] = field(default=(), compare=False)

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
        # the same SCHEMA as the file: one source for every bound
        problems = _structural_problems(preset_to_dict(preset)) or _semantic_problems(preset)
        if problems:
            raise PresetError(self.source or self.name, [f"override: {p}" for p in problems])
        return preset

    def setting(self) -> str:
        """The notes' table's "situation" and "lr + decay" columns in one line that tells
        every two presets apart, e.g. ``(20,20,30), norm+clip+L2, 5000, 150, lr 0.01, decay 0.5``.

        After widths, extras, samples, epochs, lr and decay come only the settings that
        differ from the lab's usual ones (:data:`LAB_USUAL`): batch, momentum, the decay's
        step, the train fraction, the L2 and clip amounts, the target and its domain.
        """
        t, d = self.training, self.data
        parts = [f"({','.join(str(h) for h in self.model.hidden)})"]
        extras = []
        if self.model.norm == "mean-var":
            extras.append("norm")
        if t.clip is not None:
            extras.append("clip")
        if t.l2 > 0:
            extras.append("L2")
        parts.append("+".join(extras) if extras else "plain")
        parts += [str(d.samples), str(t.epochs), f"lr {t.lr:g}"]
        if t.decay_factor is None:
            parts.append("no decay")
        else:
            every = "" if t.decay_every == LAB_USUAL["decay_every"] else f" every {t.decay_every}"
            parts.append(f"decay {t.decay_factor:g}{every}")
        unusual = [
            (t.batch_size != LAB_USUAL["batch_size"], f"batch {t.batch_size}"),
            (t.momentum != LAB_USUAL["momentum"], f"momentum {t.momentum:g}"),
            (d.train_fraction != LAB_USUAL["train_fraction"], f"train {d.train_fraction:g}"),
            (t.l2 > 0 and t.l2 != LAB_USUAL["l2"], f"L2 {t.l2:g}"),
            (t.clip is not None and t.clip != LAB_USUAL["clip"], f"clip {t.clip or 0:g}"),
            (d.target != LAB_USUAL["target"], f"y={shorten(d.target, 24)}"),
            (tuple(d.domain) != LAB_USUAL["domain"], f"x in [{d.domain[0]:g},{d.domain[1]:g}]"),
        ]
        parts += [text for differs, text in unusual if differs]
        return ", ".join(parts)

    def lr_decay(self) -> str:
        """The notes' table's "lr + decay" column, e.g. ``(0.01,0.5)``."""
        decay = "none" if self.training.decay_factor is None else f"{self.training.decay_factor:g}"
        return f"({self.training.lr:g},{decay})"

    def to_toml(self) -> str:
        """The fully resolved preset as TOML text (stored with every run)."""
        return dump_toml(preset_to_dict(self))

    def digest(self) -> str:
        """A short stable hash of the resolved preset.

        It hashes the TOML text with the normalisation's pre-rename spelling, so the hash of
        the same settings is the same before and after the rename: a run stored with
        ``norm = "seed"`` still matches its checkpoint and still resumes.
        """
        doc = preset_to_dict(self)
        doc["model"]["norm"] = _DIGEST_NORMS.get(self.model.norm, self.model.norm)
        return hashlib.sha256(dump_toml(doc).encode()).hexdigest()[:16]

    def study_digest(self) -> str:
        """The hash of the settings without the seed: runs of one preset that share it are
        seeds of one study (what the reproduction report puts in one row)."""
        return dataclasses.replace(self, data=dataclasses.replace(self.data, seed=0)).digest()


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

SCHEMA: dict[str, dict[str, tuple[bool, checks.Check]]] = {
    "experiment": {
        "number": (True, checks.integer(1, MAX_NUMBER)),
        "name": (True, checks.text(nonempty=True, max_length=200)),
        "description": (True, checks.text(nonempty=True)),
        "notes": (False, checks.text()),
    },
    "data": {
        "target": (True, checks.text(nonempty=True, max_length=MAX_LENGTH)),
        "domain": (True, checks.domain(MAX_DOMAIN)),
        "samples": (True, checks.integer(2, MAX_SAMPLES)),
        "train_fraction": (False, checks.number(0.0, 1.0, low_open=True)),
        "seed": (False, checks.integer(0, MAX_SEED)),
    },
    "model": {
        "hidden": (True, checks.widths(MAX_WIDTH, MAX_LAYERS)),
        "activation": (False, checks.text(ACTIVATIONS)),
        "norm": (False, checks.text(NORMS, aliases=tuple(LEGACY_NORMS))),
    },
    "training": {
        "epochs": (True, checks.integer(1, MAX_EPOCHS)),
        "batch_size": (False, checks.integer(1, MAX_SAMPLES)),
        "lr": (True, checks.number(0.0, low_open=True)),
        "momentum": (False, checks.number(0.0, 1.0, low_open=False)),
        "decay_factor": (False, checks.number(0.0, 1.0, low_open=True, high_open=False)),
        "decay_every": (False, checks.integer(1, MAX_EPOCHS)),
        "l2": (False, checks.number(0.0, low_open=False)),
        "clip": (False, checks.number(0.0, low_open=True)),
        "loss": (False, checks.text(LOSSES)),
    },
    "reported": {
        "train_loss": (False, checks.number(-math.inf, low_open=True)),
        "train_ratio": (False, checks.number(-math.inf, low_open=True)),
        "test_loss": (False, checks.number(-math.inf, low_open=True)),
        "test_ratio": (False, checks.number(-math.inf, low_open=True)),
        "note": (False, checks.text()),
    },
}
REQUIRED_SECTIONS = ("experiment", "data", "model", "training")


def _unknown(key: str, known: list[str]) -> str:
    match = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {match[0]!r}?" if match else f" (known: {', '.join(known)})"
    return f"unknown key{hint}"


def _structural_problems(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for section in doc:
        if section not in SCHEMA:
            problems.append(f"{shorten(str(section))}: {_unknown(str(section), list(SCHEMA))}")
    for section, keys in SCHEMA.items():
        table = doc.get(section)
        if table is None:
            if section in REQUIRED_SECTIONS:
                problems.append(f"{section}: expected a table [{section}], found nothing")
            continue
        if not isinstance(table, dict):
            problems.append(f"{section}: expected a table, found {checks.type_name(table)}")
            continue
        for key in table:
            if key not in keys:
                problems.append(f"{section}.{key}: {_unknown(str(key), list(keys))}")
        for key, (required, check) in keys.items():
            if key not in table:
                if required:
                    problems.append(f"{section}.{key}: expected a value, found nothing (required)")
                continue
            message = check(table[key])
            if message:
                problems.append(f"{section}.{key}: {message}")
    return problems


def _semantic_problems(preset: Preset) -> list[str]:
    """Checks that need several values at once (and that overrides must pass too)."""
    problems: list[str] = []
    data = preset.data
    if preset.training.batch_size > data.samples:
        problems.append(f"training.batch_size: expected at most data.samples ({data.samples}), "
                        f"found {preset.training.batch_size}")
    problems.extend(_target_problems(data))
    if preset.model.norm == "mean-var":
        narrow = [h for h in preset.model.hidden if h < 2]
        if narrow:
            problems.append(
                "model.hidden: expected widths >= 2 with norm = \"mean-var\" (the variance of one "
                f"value is undefined), found {narrow[0]}"
            )
    if not problems:  # sizes are sane: now the arithmetic of their memory is meaningful
        problems.extend(memory_problems(preset))
    return problems


def _target_problems(data: DataSpec) -> list[str]:
    """The target must parse and be finite (and fit float32) on a fixed grid of the domain."""
    return list(_target_check(data.target, tuple(float(v) for v in data.domain)))


@functools.lru_cache(maxsize=256)
def _target_check(target_text: str, domain: tuple[float, ...]) -> tuple[str, ...]:
    """:func:`_target_problems` of one target and domain, kept: a group of 16 384 seeds checks
    the same target once, not once a lane (it was three quarters of a group's preparation)."""
    return tuple(_target_grid_problems(target_text, domain))


def _target_grid_problems(target_text: str, domain: tuple[float, ...]) -> list[str]:
    """The target parsed and evaluated on 2001 points of the domain; what is wrong with it."""
    try:
        target = parse_expression(target_text)
        xs = numpy.linspace(domain[0], domain[1], 2001, dtype=numpy.float64)
        ys = target(xs)
    except ExpressionError as exc:
        return [f"data.target: {exc}"]
    shown = shorten(target_text)
    bad = ~numpy.isfinite(ys)
    if bool(bad.any()):
        x_bad = float(xs[bad.nonzero()[0][0]])
        return [
            f"data.target: expected a function defined on the whole domain "
            f"[{domain[0]:g}, {domain[1]:g}], found {shown!r} undefined at x={x_bad:g}"
        ]
    big = numpy.abs(ys) > FLOAT32_MAX
    if bool(big.any()):
        first = big.nonzero()[0][0]
        return [f"data.target: expected values that fit float32 (|y| < 3.4e38), found {shown!r} "
                f"= {float(ys[first]):g} at x={float(xs[first]):g}"]
    return []


def parse_preset(text: str, *, source: str, name: str) -> Preset:
    """Validate TOML ``text`` into a :class:`Preset`; raise :class:`PresetError` listing every problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(source, [_toml_syntax(str(exc))]) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise PresetError(source, [f"TOML value error: {shorten(str(exc), 80)}"]) from None
    except (RecursionError, MemoryError) as exc:  # arrays nested thousands deep
        raise PresetError(source, [f"TOML too deeply nested or too large to read ({exc.__class__.__name__})"]) from None
    problems = _structural_problems(doc)
    if problems:
        raise PresetError(source, problems)
    e, d, m, t = (doc[s] for s in REQUIRED_SECTIONS)
    r = doc.get("reported", {})
    norm = m.get("norm", "none")
    notices = ()
    if norm in LEGACY_NORMS:
        notices = (f'model.norm: norm = "{norm}" is now called "{LEGACY_NORMS[norm]}"; the old name still loads',)
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
        model=ModelSpec(tuple(m["hidden"]), m.get("activation", "relu"), LEGACY_NORMS.get(norm, norm)),
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
        notices=notices,
    )
    problems = _semantic_problems(preset)
    if problems:
        raise PresetError(source, problems)
    return preset


def load_preset(path: Path) -> Preset:
    """Read and validate one preset file; its name is the file's stem."""
    try:
        # a FIFO or device named *.toml would block or never end; a huge file is not a preset
        if not path.is_file():
            raise PresetError(str(path), ["expected a regular file, found something else (or nothing)"])
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PresetError(str(path), [f"expected a file of at most {MAX_FILE_BYTES // 1000} kB, "
                                          f"found {size // 1000} kB"])
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
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        # validation refuses control characters; escaping them anyway keeps any text valid TOML
        escaped = "".join(f"\\u{ord(c):04X}" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c for c in escaped)
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
