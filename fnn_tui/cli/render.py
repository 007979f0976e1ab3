"""Rich renderings for the CLI: preset details, the runs list, a command's runs, the results
table and the report; each fits 80 columns and reads without colour."""

from __future__ import annotations

import datetime as dt

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from fnn_tui.cli.common import literal
from fnn_tui.core.catalog import PresetEntry
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report.export import ResultRow, StudyRow, fmt
from fnn_tui.report.reproduction import (
    DEAD_STD_FRACTION,
    METRICS,
    PresetReport,
    Spread,
    not_counted_text,
    verdict_style,
)
from fnn_tui.report.runinfo import RunDetail, preset_rows
from fnn_tui.report.studies import Role, SeedRole
from fnn_tui.store.runs import RunRecord

# a dead network is said on a second line under its status: the status column stays as
# narrow as "interrupted", so the tables still fit 80 columns
DEAD = "\ndead"
VARIANT_WIDTH = 18  # a variant's settings fold at this width in the runs list
ENGINE_WIDTH = 11  # the runs list's engine/device on one line up to this width, else on two


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
            table.add_row(str(e.preset.experiment.number), literal(e.name),
                          literal(f"{e.preset.experiment.name}: {e.preset.setting()}"), literal(origin))
        else:
            assert e.error is not None
            table.add_row("!", literal(e.name), f"[red]invalid: {literal(e.error.problems[0])}[/red]", literal(origin))
    return table


def preset_detail(preset: Preset) -> Table:
    """The ``show`` command's key/value table."""
    table = Table(title=literal(f"{preset.name}: {preset.experiment.name}"), title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [
        *preset_rows(preset),
        ("notes' numbers", _reported(preset)),
        ("notes", preset.experiment.notes or "-"),
        ("file", preset.source),
    ]
    for key, value in rows:
        table.add_row(key, literal(value))
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


def runs_table(records: list[RunRecord], title: str = "Runs list (every stored run, newest first)",
               roles: dict[int, SeedRole] | None = None, variants: dict[int, str] | None = None) -> Table:
    """Stored runs, one line each; under the status, on lines of their own, "dead" for a dead
    network and the run's role in its study when it is not counted ("duplicate" of another
    run of its seed, "excluded": that row is dim too); a variant's settings under its
    preset's name. Fits 80 columns."""
    # one space between columns: a dead run on a CUDA device with tiny losses still fits 80 columns
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=0)
    for col, just in (("run", "right"), ("preset", "left"), ("seed", "right"), ("status", "left"), ("epochs", "right"),
                      ("train\nloss", "right"), ("test\nloss", "right"), ("engine", "left"), ("start", "left")):
        if col == "preset":  # a variant's settings wrap under the name
            table.add_column(col, justify="left", max_width=VARIANT_WIDTH, overflow="fold")
        else:
            table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in records:
        f = r.final
        role = (roles or {}).get(r.id)
        extra = (DEAD if f is not None and f.dead else "") + (f"\n{role.role.label}" if role and role.role.label else "")
        table.add_row(
            str(r.id), _variant_cell(r.preset, (variants or {}).get(r.id, "")), str(r.seed),
            status_text(r.status, extra),
            f"{r.epochs_done}/{r.epochs_total}",
            _short(f.train_loss) if f else "", _short(f.test_loss) if f else "",
            _engine_cell(r.engine, r.device), _when_short(r.started_at),
            style="dim" if role is not None and role.role is Role.EXCLUDED else None,
        )
    return table


def run_detail_table(detail: RunDetail) -> Table:
    """``fnn-tui runs show``: a run's detail as a key/value table."""
    table = Table(title=literal(detail.title), title_justify="left", show_header=False, box=box.SIMPLE)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in detail.rows:
        table.add_row(key, literal(value))
    return table


def trained_table(rows: list[ResultRow]) -> Group:
    """The runs a command trained, one line each with its run id and seed, our final numbers
    with the notes' below them in brackets; fits 80 columns."""
    title = Text("Runs: ours (the notes'); ratio = mean |y_hat/y|, 1 is perfect", style="italic")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("run", "preset\nseed", "status", "train\nloss", "train\nratio", "test\nloss", "test\nratio",
                "engine\ntime"):
        left = col in ("preset\nseed", "status", "engine\ntime")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    marks: dict[str, str] = {}
    for r in rows:
        wall = f"{r.wall_seconds:.1f} s" if r.wall_seconds else ""
        name = _plain(r.preset)
        if r.variant:
            mark = marks.setdefault(r.label, f"v{len(marks) + 1}")
            name = f"{name} {mark}"
        table.add_row(
            str(r.run_id), Text(f"{name}\nseed {r.seed}"),
            Text(r.status + (DEAD if r.dead else ""), style=RunStatus(r.status.split("@")[0]).style),
            _pair(r.train_loss, r.notes_train_loss), _pair(r.train_ratio, r.notes_train_ratio, r.notes_remark),
            _pair(r.test_loss, r.notes_test_loss), _pair(r.test_ratio, r.notes_test_ratio),
            f"{r.engine}\n{wall}",
        )
    if marks:  # a variant is marked v1, v2... after its preset's name, its settings named here
        return Group(title, table, Text("\n".join(f"{mark}: {_plain(label)}" for label, mark in marks.items())))
    return Group(title, table)


def _settings_legend(rows: list[tuple[str, str]]) -> Table:
    legend = Table.grid(padding=(0, 2))
    legend.add_column(no_wrap=True)
    legend.add_column()
    for name, setting in rows:
        legend.add_row(literal(name), literal(setting))
    return legend


def study_table(rows: list[StudyRow]) -> Group:
    """The results table: each preset's median over its seeds (n), the notes' below in
    brackets, then each preset's settings; fits 80 columns."""
    title = Text("Results table: each preset's median over its seeds, the notes' (in brackets)", style="italic")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("#", "preset", "n", "train\nloss", "train\nratio", "test\nloss", "test\nratio", "seeds"):
        table.add_column(col, justify="left" if col in ("preset", "seeds") else "right", no_wrap=True)
    for r in rows:
        counts = ", ".join(p for p in (f"{r.dead} dead" if r.dead else "", f"{r.diverged} div" if r.diverged else "",
                                        f"{r.other} left out" if r.other else "") if p)
        table.add_row(
            str(r.number), literal(r.preset), f"{r.finished}/{r.runs}" + (f"\n[dim]{counts}[/dim]" if counts else ""),
            _pair(r.train_loss, r.notes_train_loss), _pair(r.train_ratio, r.notes_train_ratio, r.notes_remark),
            _pair(r.test_loss, r.notes_test_loss), _pair(r.test_ratio, r.notes_test_ratio), r.seeds,
        )
    caption = Text("n: finished runs of all the study's runs (dead networks count, diverged runs have no numbers). "
                   "Ratio = mean |y_hat/y|, 1 is perfect. Settings:", style="dim")
    return Group(title, table, caption, _settings_legend([(r.preset, r.setting) for r in rows]))


def _range(s: Spread) -> str:
    if s.n < 2 or s.min == s.max:
        return ""
    return f"{_short(s.min, 3)}–{_short(s.max, 3)}"


def report_table(reports: list[PresetReport]) -> Group:
    """The report for the terminal: per preset and metric our median, our range, the notes'
    number and the verdict in words, one line each; then the settings and what the words
    mean. Fits 80 columns; colour only repeats the words."""
    title = Text("Report: each preset over its seeds, beside the notes", style="italic")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("preset", no_wrap=True)
    table.add_column("", style="dim", no_wrap=True)
    for metric in METRICS:
        table.add_column(metric.replace("_", "\n"), justify="right", min_width=12)
    for i, r in enumerate(reports):
        left = f" +{r.other} left out" if r.other else ""
        name = literal(r.name + ("*" if r.differs else ""))
        preset = f"{name}\nn {r.finished}{left}\n{r.dead} dead\n{r.diverged} div"
        cells: list[object] = [preset, "median\nrange\nnotes\nverdict"]
        for m in r.metrics:
            word = m.verdict.label or m.verdict.kind.value
            if m.notes is None:
                word = "—"
            median = _short(m.all.median) if m.all.n else "—"
            notes = literal(m.notes.text) if m.notes is not None else "—"
            cells.append(Text.assemble(f"{median}\n{_range(m.all)}\n{notes}\n", (word, verdict_style(m))))
        table.add_row(*cells, end_section=i < len(reports) - 1)
    parts: list[object] = [title, table, Text("Settings:", style="dim"),
                           _settings_legend([(r.name, r.setting) for r in reports])]
    differ = [f"{r.name}: {r.differs}" for r in reports if r.differs]
    if differ:
        parts.append(Text("* runs made with settings other than the preset file's (no run has its current settings): "
                          + "; ".join(differ) + "."))
    if not_counted_text(reports):
        parts.append(Text(not_counted_text(reports)))
    parts.append(Text(
        "median, range: the finished runs' last epoch, dead networks included; n finished, of them dead, and "
        "diverged. Verdict: where the notes' number falls against our range: within, or below/above by a factor "
        "(losses) or a difference (ratios) to our nearest run. Ratio = mean |y_hat/y|, 1 is perfect. Dead: the "
        f"network predicts a constant (std of y_hat under {DEAD_STD_FRACTION:.0%} of the targets'). "
        "--format md for a lab report, with the live runs' medians.", style="dim"))
    notes = [f"{r.name}: {r.note}" for r in reports if r.note]
    if notes:
        parts.append(Text("The notes' remarks: " + "; ".join(notes) + ".", style="dim"))
    return Group(*parts)


def _plain(text: str) -> str:
    """Text shown as it is, control characters written out (``\\x1b``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _variant_cell(preset: str, variant: str) -> Text:
    """A preset's name, with a variant's settings under it, one per line ("· lr=0.05")."""
    text = Text(_plain(preset))
    for part in variant.split(", ") if variant else []:
        text.append(f"\n· {part}", style="dim")
    return text


def _engine_cell(engine: str, device: str) -> str:
    """``engine/device``; a long pair ("fused-cuda/cuda:0") on two lines, which leaves the
    preset column room for a variant's settings at 80 columns."""
    pair = f"{engine}/{device}"
    return pair if len(pair) <= ENGINE_WIDTH else f"{engine}/\n{device}"


def _short(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _pair(ours: float | None, notes: float | None, remark: str = "") -> str:
    theirs = _short(notes) if notes is not None else literal(remark.replace("train acc ", ""))
    return f"{_short(ours)}\n[dim]({theirs})[/dim]" if theirs else _short(ours)

