"""One run in detail, and the filters of the runs list: shared by ``fnn-tui runs`` and the app.

The detail says what a run is (its settings), how it ended, where it stands in its study
(counted, a duplicate of another run of its seed, or excluded: the rule of
:mod:`fnn_tui.report.studies`), and why it was flagged dead or diverged: the epoch, the
last losses it had, and the rule that flagged it. It is plain ``(key, value)`` rows, so the
CLI and the app show the same words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from fnn_tui.core.dead import DEAD_STD_FRACTION
from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.presets import Preset, PresetError, parse_preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report.studies import Role, SeedRole
from fnn_tui.store.runs import RunRecord, Store, check_tag

DEAD_RULE = (f"dead: the std of ŷ over the test inputs was under {DEAD_STD_FRACTION:.0%} of the test "
             "targets' std (the network predicts a constant; core/dead.py)")
DIVERGED_RULE = "diverged: a training step's loss, or the test loss, became NaN or infinite (core/trainer.py)"


# --- filters -----------------------------------------------------------------------------


class FilterError(ValueError):
    """A filter that cannot be read; the message says what is accepted."""


STATUS_NAMES = tuple(s.value for s in RunStatus)
FILTER_HELP = "status:NAME[,NAME] dead alive preset:NAME tag:TAG excluded included (space between)"


@dataclass(frozen=True)
class RunFilter:
    """Which runs the runs list shows; every field left at its default lets all runs through."""

    statuses: tuple[RunStatus, ...] = ()
    dead: bool | None = None  # True: only dead networks; False: only those that are not
    preset: str | None = None
    tag: str | None = None
    excluded: bool | None = None  # True: only excluded runs; False: only those counted or duplicates
    words: tuple[str, ...] = field(default=(), compare=False)  # as typed, for showing it

    def matches(self, record: RunRecord) -> bool:
        """Whether ``record`` passes every part of the filter."""
        dead = bool(record.final is not None and record.final.dead)
        return ((not self.statuses or record.status in self.statuses)
                and (self.dead is None or dead == self.dead)
                and (self.preset is None or record.preset == self.preset)
                and (self.tag is None or self.tag in record.tags)
                and (self.excluded is None or record.excluded == self.excluded))

    @property
    def empty(self) -> bool:
        """Lets every run through."""
        return self == RunFilter()

    def describe(self) -> str:
        """The filter as the app's filter field reads it (``""`` when empty)."""
        return " ".join(self.words)


def statuses_of(text: str) -> tuple[RunStatus, ...]:
    """``finished,diverged`` as statuses; :class:`FilterError` names the known ones."""
    found = []
    for name in (part.strip().lower() for part in text.split(",")):
        if name not in STATUS_NAMES:
            raise FilterError(f"unknown status {name!r}: expected {', '.join(STATUS_NAMES)}")
        found.append(RunStatus(name))
    return tuple(found)


def parse_filter(text: str) -> RunFilter:
    """The app's filter field: words such as ``status:finished dead preset:exp08 tag:trial``."""
    parts: dict[str, object] = {}
    words = tuple(text.split())
    for word in words:
        key, _, value = word.partition(":")
        key = key.lower()
        if key in ("dead", "alive") and not value:
            parts["dead"] = key == "dead"
        elif key in ("excluded", "included") and not value:
            parts["excluded"] = key == "excluded"
        elif key == "status" and value:
            parts["statuses"] = statuses_of(value)
        elif key == "preset" and value:
            parts["preset"] = value
        elif key == "tag" and value:
            parts["tag"] = check_tag(value)
        else:
            raise FilterError(f"cannot read {word!r}: use {FILTER_HELP}")
    return RunFilter(words=words, **parts)  # type: ignore[arg-type]


# --- one run in detail -------------------------------------------------------------------


def preset_rows(preset: Preset) -> list[tuple[str, str]]:
    """A preset's settings as ``(key, value)`` rows (``fnn-tui show`` and a run's detail)."""
    t, m, d = preset.training, preset.model, preset.data
    return [
        ("tests", preset.experiment.description),
        ("target", f"y = {d.target} on x in [{d.domain[0]:g}, {d.domain[1]:g}]"),
        ("data", f"{d.samples} samples, {d.n_train} train / {d.samples - d.n_train} test, seed {d.seed}"),
        ("model", f"1 -> {' -> '.join(map(str, m.hidden))} -> 1, {m.activation}, norm {m.norm}"),
        ("training", f"{t.epochs} epochs, batch {t.batch_size}, SGD lr {t.lr:g} momentum {t.momentum:g}"),
        ("decay", "none" if t.decay_factor is None else f"x{t.decay_factor:g} every {t.decay_every} epochs"),
        ("L2 / clip", f"{t.l2:g} / {'none' if t.clip is None else f'{t.clip:g}'}"),
    ]


def _when(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _losses(m: EpochMetrics) -> str:
    return (f"train loss {m.train_loss:.4g}, test loss {m.test_loss:.4g}, train ratio {m.train_ratio:.4g}, "
            f"test ratio {m.test_ratio:.4g}")


def _study_row(record: RunRecord, role: SeedRole | None) -> str:
    if role is None or role.role is Role.COUNTED:
        return "counted in its study (one run per seed)"
    if role.role is Role.EXCLUDED:
        return "excluded: kept in the store, left out of its study (`fnn-tui runs include` takes it back)"
    return (f"duplicate: run {role.counted} has the same settings and seed and is counted instead "
            "(the newest finished or diverged run of a seed counts)")


def _dead_row(epochs: list[EpochMetrics]) -> str:
    """When the network went dead for good, and its losses then."""
    last = epochs[-1]
    first = len(epochs)
    while first > 1 and epochs[first - 2].dead:
        first -= 1
    since = epochs[first - 1]
    went = f"dead from epoch {since.epoch} to its last, {last.epoch}" if since is not last else \
        f"dead at its last epoch, {last.epoch}"
    return f"{went}; last {_losses(last)}. Rule: {DEAD_RULE}"


@dataclass(frozen=True)
class RunDetail:
    """A run's detail as titled ``(key, value)`` rows."""

    title: str
    rows: tuple[tuple[str, str], ...]


def run_detail(store: Store, record: RunRecord, role: SeedRole | None = None) -> RunDetail:
    """Everything about one run; ``role`` is its place in its study (from
    :func:`fnn_tui.report.studies.seed_roles` over the store's runs)."""
    epochs = store.epochs(record.id)
    dead = bool(epochs and epochs[-1].dead)
    status = record.status.label + (", dead" if dead else "")
    rows: list[tuple[str, str]] = [("study", _study_row(record, role))]
    if record.repeat_of is not None:
        rows.append(("repeat of", f"run {record.repeat_of} (trained again on purpose)"))
    if record.tags:
        rows.append(("tags", ", ".join(record.tags)))
    if record.note:
        rows.append(("note", record.note))
    try:
        preset = parse_preset(record.preset_toml, source=f"run {record.id}", name=record.preset)
        rows.append(("setting", preset.setting()))
        rows += preset_rows(preset)
    except PresetError as exc:
        rows.append(("settings", f"its stored preset no longer validates: {exc.first_line()}"))
    rows.append(("ran on", f"{record.engine} engine, {record.device}, torch {record.torch_version}, host {record.host}"))
    ended = f", ended {_when(record.ended_at)}" if record.ended_at else ""
    wall = f", {record.wall_seconds:.1f} s training" if record.wall_seconds else ""
    rows.append(("time", f"started {_when(record.started_at)}{ended}{wall}"))
    end = f"{status} after {record.epochs_done} of {record.epochs_total} epochs"
    if epochs:
        end += f"; last epoch {epochs[-1].epoch}: {_losses(epochs[-1])}"
    rows.append(("end", end))
    if record.status == RunStatus.DIVERGED:
        where = f"epoch {record.diverged_epoch}" + (f", step {record.diverged_step}" if record.diverged_step else "")
        before = (f"; the last finished epoch ({epochs[-1].epoch}) had {_losses(epochs[-1])}" if epochs
                  else "; no epoch finished before it")
        reason = (record.message or "a loss became NaN or infinite").removesuffix(f" at {where}")
        rows.append(("why diverged", f"at {where}: {reason}{before}. Rule: {DIVERGED_RULE}"))
    elif record.message:
        rows.append(("message", record.message))
    if dead:
        rows.append(("why dead", _dead_row(epochs)))
    title = f"Run {record.id}: {record.preset}, seed {record.seed}, {status}"
    return RunDetail(title=title, rows=tuple(rows))
