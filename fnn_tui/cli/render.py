"""Rich renderings for the CLI: preset details, the runs list and the results table."""

from __future__ import annotations

import datetime as dt

from rich import box
from rich.table import Table
from rich.text import Text

from fnn_tui.core.catalog import PresetEntry
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report.export import ResultRow, fmt
from fnn_tui.report.export import status_text as row_status
from fnn_tui.store.runs import RunRecord


def status_text(status: RunStatus, suffix: str = "") -> Text:
    """A status in its style (plain text, so nothing in it is read as markup)."""
    return Text(status.label + suffix, style=status.style)


def presets_table(entries: list[PresetEntry]) -> Table:
    """The ``list`` command's table."""
    table = Table(title="Presets", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("name")
    table.add_column("setting / error")
    table.add_column("from")
    for e in entries:
        origin = e.origin + (" (shadows built-in)" if e.shadows else "")
        if e.preset is not None:
            table.add_row(str(e.preset.experiment.number), e.name, f"{e.preset.experiment.name}: {e.preset.setting()}", origin)
        else:
            assert e.error is not None
            table.add_row("!", e.name, f"[red]invalid: {e.error.problems[0]}[/red]", origin)
    return table


def preset_detail(preset: Preset) -> Table:
    """The ``show`` command's key/value table."""
    t, m, d = preset.training, preset.model, preset.data
    table = Table(title=f"{preset.name}: {preset.experiment.name}", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [
        ("tests", preset.experiment.description),
        ("target", f"y = {d.target} on x in [{d.domain[0]:g}, {d.domain[1]:g}]"),
        ("data", f"{d.samples} samples, {d.n_train} train / {d.samples - d.n_train} test, seed {d.seed}"),
        ("model", f"1 -> {' -> '.join(map(str, m.hidden))} -> 1, {m.activation}, norm {m.norm}"),
        ("training", f"{t.epochs} epochs, batch {t.batch_size}, SGD lr {t.lr:g} momentum {t.momentum:g}"),
        ("decay", "none" if t.decay_factor is None else f"x{t.decay_factor:g} every {t.decay_every} epochs"),
        ("L2 / clip", f"{t.l2:g} / {'none' if t.clip is None else f'{t.clip:g}'}"),
        ("notes' numbers", _reported(preset)),
        ("notes", preset.experiment.notes or "-"),
        ("file", preset.source),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _reported(preset: Preset) -> str:
    r = preset.reported
    parts = [
        f"{label} {fmt(value)}"
        for label, value in (
            ("train loss", r.train_loss),
            ("train ratio", r.train_ratio),
            ("test loss", r.test_loss),
            ("test ratio", r.test_ratio),
        )
        if value is not None
    ]
    if r.note:
        parts.append(r.note)
    return ", ".join(parts) or "-"


def _when_short(ts: float | None) -> str:
    """The time for a run started today, else the date: five characters either way."""
    if ts is None:
        return ""
    when = dt.datetime.fromtimestamp(ts)
    return when.strftime("%H:%M") if when.date() == dt.date.today() else when.strftime("%m-%d")


def runs_table(records: list[RunRecord], title: str = "Runs list (every stored run, newest first)") -> Table:
    """Stored runs, one line each, a dead network said beside its status; fits 80 columns."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col, just in (("run", "right"), ("preset", "left"), ("seed", "right"), ("status", "left"), ("epochs", "right"),
                      ("train\nloss", "right"), ("test\nloss", "right"), ("engine", "left"), ("started", "left")):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in records:
        f = r.final
        table.add_row(
            str(r.id), r.preset, str(r.seed), status_text(r.status, ", dead" if f is not None and f.dead else ""),
            f"{r.epochs_done}/{r.epochs_total}",
            _short(f.train_loss) if f else "", _short(f.test_loss) if f else "",
            f"{r.engine}/{r.device}", _when_short(r.started_at),
        )
    return table


def results_table(rows: list[ResultRow]) -> Table:
    """Our final numbers with the notes' below them in brackets; fits 80 columns."""
    table = Table(
        title="Results table: ours (the notes'); ratio = mean |y_hat/y|, 1 is perfect",
        title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
    )
    for col in ("preset", "status", "train\nloss", "train\nratio", "test\nloss", "test\nratio", "engine\ntime"):
        left = col in ("preset", "status", "engine\ntime")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    for r in rows:
        wall = f"{r.wall_seconds:.1f} s" if r.wall_seconds else ""
        table.add_row(
            r.preset, Text(row_status(r), style=RunStatus(r.status.split("@")[0]).style),
            _pair(r.train_loss, r.notes_train_loss), _pair(r.train_ratio, r.notes_train_ratio, r.notes_remark),
            _pair(r.test_loss, r.notes_test_loss), _pair(r.test_ratio, r.notes_test_ratio),
            f"{r.engine}\n{wall}",
        )
    return table


def _short(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _pair(ours: float | None, notes: float | None, remark: str = "") -> str:
    theirs = _short(notes) if notes is not None else remark.replace("train acc ", "")
    return f"{_short(ours)}\n[dim]({theirs})[/dim]" if theirs else _short(ours)

