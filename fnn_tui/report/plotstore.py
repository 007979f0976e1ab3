"""Plot data read from the store: one run, or a preset's study (its runs over several seeds).

:mod:`fnn_tui.report.plotdata` builds a :class:`PlotData` from plain tuples; this module
finds the runs, their epochs and their stored fits (y_hat on the plot grid) in the store and
adapts them. Runs stored before fits were kept (or whose fits were lost) get theirs from
the run's last checkpoint when it is readable: one forward pass over 256 points, cheap.
The app (in a thread worker), ``fnn-tui plot`` and the report's figures all read through here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from fnn_tui.core import grid
from fnn_tui.core.catalog import Catalog
from fnn_tui.core.presets import Preset, PresetError, parse_preset
from fnn_tui.core.state import CheckpointError, check_state, load_latest_checkpoint
from fnn_tui.core.status import RunStatus
from fnn_tui.core.variants import label
from fnn_tui.report.files import ensure_folder
from fnn_tui.report.plotdata import PlotData, RunInput, plot_data
from fnn_tui.report.studies import counted_runs, pick_study
from fnn_tui.store.runs import RunRecord, Store


class NothingToPlot(LookupError):
    """No run (or no run of that preset) to plot; ``str(error)`` is the one line to show."""


def _stored_preset(record: RunRecord) -> Preset:
    try:
        return parse_preset(record.preset_toml, source=f"run {record.id}", name=record.preset)
    except PresetError as exc:
        raise NothingToPlot(f"run {record.id}'s stored preset no longer validates: {exc.first_line()}") from None


def fit_from_checkpoint(record: RunRecord, preset: Preset) -> np.ndarray | None:
    """y_hat on the plot grid from the run's newest readable checkpoint, or ``None``."""
    try:
        state, _ = load_latest_checkpoint(record.checkpoint_path)
        check_state(state, preset)  # a file that does not fit the preset is not drawn
    except CheckpointError:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 256 points through a small network: threads only cost here
    try:
        return grid.predict(preset, state.params, grid.grid_x(preset))
    except (RuntimeError, ValueError):
        return None
    finally:
        torch.set_num_threads(threads)


def run_input(store: Store, record: RunRecord, preset: Preset) -> RunInput:
    """One run as :func:`plot_data` takes it: its epochs and its newest fit (stored, else
    from its checkpoint, else ``None``)."""
    fits = store.fits(record.id)
    blob: bytes | None = fits[-1][1] if fits else None
    if blob is None:
        fit = fit_from_checkpoint(record, preset)
        blob = None if fit is None else grid.encode(fit)
    dead = record.final.dead if record.final is not None else False
    return (record.id, record.seed, record.status.value, dead, store.epochs(record.id), blob, record.diverged_epoch)


def plot_for_run(store: Store, run_id: int, catalog: Catalog | None = None) -> PlotData:
    """The loss curves and fit of one run; with the ``catalog``, a variant's title names its
    settings against the preset file ("exp08 · lr=0.05")."""
    record = store.get_run(run_id)
    if record is None:
        raise NothingToPlot(f"no run with id {run_id}; `fnn-tui runs` lists them")
    preset = _stored_preset(record)
    # an active run's status changes while it is shown: only an ended one is named
    status = "" if record.status.active else f", {record.status.label}"
    name = record.preset
    if catalog is not None:
        base = next((p for p in catalog.valid() if p.name == record.preset), None)
        name = label(base, preset) if base is not None else name
    title = f"{name} run {record.id}, seed {record.seed}{status}: {preset.setting()}"
    return _made_by(plot_data(preset, [run_input(store, record, preset)], title=title), [record])


def study_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs a study counts, one per seed, by the report's rule
    (:func:`fnn_tui.report.studies.counted_runs`); a seed whose counted run has not started
    (queued) is left out of the figure. Oldest seed first."""
    return [r for r in counted_runs(records) if r.status != RunStatus.QUEUED]


def choose_study(records: list[RunRecord], preset: Preset | None) -> tuple[str, str]:
    """``(study hash, which settings)`` for a preset's runs (newest first), chosen as the
    report chooses (:func:`fnn_tui.report.studies.pick_study`), runs not started aside."""
    started = [r for r in records if r.status != RunStatus.QUEUED] or records
    picked = pick_study(started, preset)
    assert picked is not None
    study, own = picked
    if own:
        return study, "the preset's settings"
    newest = next(r for r in started if r.study == study)
    return study, f"run {newest.id}'s settings"


def plot_for_preset(store: Store, preset: str | Preset, study: str | None = None) -> PlotData:
    """The study of a preset: every seed's curves (the median on top) and the median run's fit.

    ``preset`` is a catalog preset (its settings pick the study when it has runs) or a
    name (the study of its newest run); ``study`` (a :attr:`RunRecord.study` hash) picks
    one outright. The title says which study is drawn.
    """
    name = preset if isinstance(preset, str) else preset.name
    records = store.list_runs(name)
    if not records:
        raise NothingToPlot(f"no runs of {name} stored: `fnn-tui run {name}` makes one")
    if study is not None:
        which = "the report's study"
    else:
        study, which = choose_study(records, None if isinstance(preset, str) else preset)
    runs = study_runs(r for r in records if r.study == study)
    if not runs:
        raise NothingToPlot(f"no started runs of {name} with these settings")
    stored = _stored_preset(runs[-1])
    shown = name if isinstance(preset, str) else label(preset, stored)  # a variant's study names its settings
    title = f"{shown} study, {which}: {stored.setting()}"
    return _made_by(plot_data(stored, [run_input(store, r, stored) for r in runs], title=title), runs)


def _made_by(data: PlotData, records: list[RunRecord]) -> PlotData:
    """``data`` with the devices and engines its runs trained on, for the figure's caption."""
    return dataclasses.replace(data, devices=tuple(sorted({r.device for r in records})),
                               engines=tuple(sorted({r.engine for r in records})))


def figure_name(preset: str, run_id: int | None = None) -> str:
    """The default file name: ``fnn-exp08-run12.png`` for a run, ``fnn-exp08-study.png`` for a study."""
    return f"fnn-{preset}-{'study' if run_id is None else f'run{run_id}'}.png"


def write_report_figures(store: Store, presets: Iterable[str | Preset], folder: Path,
                         studies: dict[str, str] | None = None, command: str | None = None) -> dict[str, Path]:
    """One figure per preset with runs (its study), ``folder/fnn-<preset>.png``, each written
    atomically; presets without runs are left out of the result. ``folder`` is created
    (:class:`~fnn_tui.report.files.CannotWrite` naming it when it cannot be).
    ``studies`` (preset name -> study hash) draws the studies a report chose; without it
    each preset's study is chosen as :func:`plot_for_preset` does. ``command`` goes in each
    figure's provenance caption.

    Raises :class:`~fnn_tui.report.figures.MatplotlibMissing` before writing anything
    when matplotlib cannot be imported.
    """
    from fnn_tui.report.figures import write_figure

    ensure_folder(folder)
    written: dict[str, Path] = {}
    for preset in presets:
        name = preset if isinstance(preset, str) else preset.name
        try:
            data = plot_for_preset(store, preset, (studies or {}).get(name))
        except NothingToPlot:
            continue
        written[name] = write_figure(data, Path(folder) / f"fnn-{name}.png", command=command)
    return written


def link_figures(markdown: str, figures: dict[str, Path], relative_to: Path) -> str:
    """``markdown`` with a "Figures" section listing each figure as an image, its path
    relative to ``relative_to`` (the Markdown file's folder), so the report and its
    figures can be moved together."""
    if not figures:
        return markdown
    lines = ["## Figures", ""]
    for name, path in figures.items():
        rel = Path(os.path.relpath(Path(path).resolve(), Path(relative_to).resolve())).as_posix()
        lines.append(f"![{name}](<{rel}>)" if " " in rel else f"![{name}]({rel})")
        lines.append("")
    return markdown.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n"
