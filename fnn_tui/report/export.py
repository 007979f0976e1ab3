"""The results table: each preset's study (the median over the seeds of the preset's own
settings, with how many) beside the notes' numbers, as Markdown, CSV or JSON; files written
atomically. A preset whose runs all have other settings (a short trial) has no row: the
table never sets a trial beside the notes' full-length numbers.

Also the per-run rows (:class:`ResultRow`) that the runs list, ``run``'s own output and
``table --all-runs`` show. Not to be mixed up with the report (the same studies with their
spread and a verdict: :mod:`fnn_tui.report.reproduction`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fnn_tui.core.presets import PresetError, parse_preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report.files import write_text
from fnn_tui.report.provenance import Provenance, csv_comment, front_matter
from fnn_tui.report.reproduction import summarize
from fnn_tui.store.runs import RunRecord

if TYPE_CHECKING:
    from fnn_tui.report.studies import StudyRuns

FORMATS = ("md", "csv", "json")


@dataclass(frozen=True)
class ResultRow:
    """One line of the results table: one run's numbers beside the notes'."""

    number: int
    preset: str
    seed: int  # the run's random seed
    setting: str
    lr_decay: str
    status: str
    dead: bool  # the last epoch predicted (nearly) a constant: see core/dead.py
    epochs: str
    train_loss: float | None
    train_ratio: float | None
    test_loss: float | None
    test_ratio: float | None
    notes_train_loss: float | None
    notes_train_ratio: float | None
    notes_test_loss: float | None
    notes_test_ratio: float | None
    notes_remark: str
    engine: str
    device: str
    wall_seconds: float | None
    run_id: int
    variant: str = ""  # the settings changed against the preset file ("lr=0.05"), "" for the preset itself

    @property
    def label(self) -> str:
        """The preset's name, with its variant's settings after it: ``exp08 · lr=0.05``."""
        return f"{self.preset} · {self.variant}" if self.variant else self.preset


COLUMNS: list[tuple[str, str]] = [
    ("number", "#"),
    ("preset", "preset"),
    ("seed", "seed"),
    ("setting", "setting"),
    ("lr_decay", "lr+decay"),
    ("status", "status"),
    ("epochs", "epochs"),
    ("train_loss", "train loss"),
    ("notes_train_loss", "notes train loss"),
    ("train_ratio", "train ratio"),
    ("notes_train_ratio", "notes train ratio"),
    ("test_loss", "test loss"),
    ("notes_test_loss", "notes test loss"),
    ("test_ratio", "test ratio"),
    ("notes_test_ratio", "notes test ratio"),
    ("engine", "engine"),
    ("device", "device"),
    ("wall_seconds", "wall s"),
    ("run_id", "run"),
]


def result_row(record: RunRecord, variant: str = "") -> ResultRow:
    """Build a row from a stored run; the notes' numbers come from its stored preset;
    ``variant`` is its difference to the preset file (:func:`~fnn_tui.report.studies.variant_names`)."""
    try:
        preset = parse_preset(record.preset_toml, source=f"run {record.id}", name=record.preset)
        setting, lr_decay, rep = preset.setting(), preset.lr_decay(), preset.reported
    except PresetError:
        setting, lr_decay, rep = "?", "?", None
    f = record.final
    return ResultRow(
        number=record.number,
        preset=record.preset,
        seed=record.seed,
        setting=setting,
        lr_decay=lr_decay,
        status=record.status.label + (f"@{record.diverged_epoch}" if record.status == RunStatus.DIVERGED else ""),
        dead=bool(f is not None and f.dead),
        epochs=f"{record.epochs_done}/{record.epochs_total}",
        train_loss=f.train_loss if f else None,
        train_ratio=f.train_ratio if f else None,
        test_loss=f.test_loss if f else None,
        test_ratio=f.test_ratio if f else None,
        notes_train_loss=rep.train_loss if rep else None,
        notes_train_ratio=rep.train_ratio if rep else None,
        notes_test_loss=rep.test_loss if rep else None,
        notes_test_ratio=rep.test_ratio if rep else None,
        notes_remark=rep.note if rep else "",
        engine=record.engine,
        device=record.device,
        wall_seconds=record.wall_seconds,
        run_id=record.id,
        variant=variant,
    )


def run_rows(records: list[RunRecord], variants: dict[int, str] | None = None) -> list[ResultRow]:
    """One row per run that trained (finished or diverged, not excluded), by experiment
    number, preset, seed and id: ``table --all-runs``; ``variants`` names each run's variant."""
    rows = [result_row(r, (variants or {}).get(r.id, "")) for r in records if r.status.final and not r.excluded]
    return sorted(rows, key=lambda r: (r.number, r.preset, r.seed, r.run_id))


@dataclass(frozen=True)
class StudyRow:
    """One line of the results table: a preset's study, the medians of its finished runs."""

    number: int
    preset: str
    setting: str
    lr_decay: str
    epochs: int  # the study's epochs (every run of a study has the same settings)
    runs: int  # every run of the study
    finished: int  # the n of the medians: dead networks included, as in the report
    dead: int
    diverged: int
    other: int  # cancelled, failed, running: not in the medians
    seeds: str  # the seeds of the study's runs, e.g. "0-9"
    train_loss: float | None
    train_ratio: float | None
    test_loss: float | None
    test_ratio: float | None
    notes_train_loss: float | None
    notes_train_ratio: float | None
    notes_test_loss: float | None
    notes_test_ratio: float | None
    notes_remark: str
    run_ids: str  # the study's run ids, e.g. "12-21" or "3,5,9"

    @property
    def label(self) -> str:
        """The row's name (a study of the preset's own settings: the preset's)."""
        return self.preset


STUDY_COLUMNS: list[tuple[str, str]] = [
    ("number", "#"),
    ("preset", "preset"),
    ("setting", "setting"),
    ("finished", "n"),
    ("train_loss", "train loss"),
    ("notes_train_loss", "notes train loss"),
    ("train_ratio", "train ratio"),
    ("notes_train_ratio", "notes train ratio"),
    ("test_loss", "test loss"),
    ("notes_test_loss", "notes test loss"),
    ("test_ratio", "test ratio"),
    ("notes_test_ratio", "notes test ratio"),
    ("dead", "dead"),
    ("diverged", "div"),  # the count of diverged runs
    ("seeds", "seeds"),
    ("run_ids", "runs"),
]

STUDY_NOTE = ("Each row: the median of the finished runs' last epoch over the seeds of the preset's own "
              "settings (n runs, dead networks included); diverged runs have no numbers and are counted. "
              "Ratio = mean |y_hat/y|, 1 is perfect. `fnn-tui report` adds the spread and a verdict.")


def spans(numbers: list[int]) -> str:
    """Whole numbers as short ranges: ``[0, 1, 2, 3, 7]`` -> ``"0-3,7"``."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    start = prev = None
    for n in [*ordered, None]:
        if start is not None and (n is None or n != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ",".join(parts)


def study_row(study: StudyRuns) -> StudyRow:
    """The results table's row of one study (see :func:`results_table` for which)."""
    report = summarize(study.study)
    rep = study.study.notes
    return StudyRow(
        number=report.number, preset=report.name, setting=study.preset.setting(), lr_decay=study.preset.lr_decay(),
        epochs=study.preset.training.epochs, runs=len(study.records), finished=report.finished, dead=report.dead,
        diverged=report.diverged, other=report.other, seeds=spans([r.seed for r in study.records]),
        **{m: report.metric(m).all.median for m in ("train_loss", "train_ratio", "test_loss", "test_ratio")},
        notes_train_loss=rep.train_loss, notes_train_ratio=rep.train_ratio, notes_test_loss=rep.test_loss,
        notes_test_ratio=rep.test_ratio, notes_remark=rep.note, run_ids=spans([r.id for r in study.records]),
    )


def results_table(studies: list[StudyRuns]) -> tuple[list[StudyRow], list[StudyRuns]]:
    """The results table's rows: one per preset whose study has the preset's own settings
    (a preset run by file path: its newest run's settings), by experiment number; and the
    studies left out because every run of theirs has other settings (``differs``)."""
    rows = [study_row(s) for s in studies if s.records and not s.differs]
    left_out = [s for s in studies if s.records and s.differs]
    return rows, left_out


def status_text(row: ResultRow) -> str:
    """The status as the tables show it: a dead network is said beside it."""
    return f"{row.status}, dead" if row.dead else row.status


def fmt(value: object) -> str:
    """Numbers as the notes print them: 6 significant digits; missing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _columns(rows: list[Any]) -> list[tuple[str, str]]:
    return COLUMNS if rows and isinstance(rows[0], ResultRow) else STUDY_COLUMNS


def to_markdown(rows: list[Any], provenance: Provenance | None = None) -> str:
    """A GitHub pipe table; "ratio" is the notes' "acc": mean |y_hat / y|, 1.0 is perfect.
    A dead run's status reads "finished, dead"; the results table says below what it is."""
    columns = _columns(rows)
    header = [title for _, title in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        data = asdict(row)
        cells = []
        for key, _ in columns:
            cell = fmt(data[key])
            if key == "notes_train_ratio" and not cell and row.notes_remark:
                cell = row.notes_remark
            if key == "status":
                cell = status_text(row)
            if key == "preset":
                cell = row.label
            cells.append(cell.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    if columns is STUDY_COLUMNS:
        lines += ["", STUDY_NOTE]
    return front_matter(provenance) + "\n".join(lines) + "\n"


def to_csv(rows: list[Any], provenance: Provenance | None = None) -> str:
    """CSV with one header line of field names (after a ``#`` provenance line); numbers at
    full precision."""
    out = io.StringIO()
    out.write(csv_comment(provenance))
    fields = list((ResultRow if _columns(rows) is COLUMNS else StudyRow).__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    return out.getvalue()


JSON_FORMAT = "fnn-tui-results"


def to_json(rows: list[Any], provenance: Provenance | None = None) -> str:
    """A JSON array of row objects; with a provenance, an object holding it and the ``rows``."""
    data = [asdict(r) for r in rows]
    if provenance is None:
        return json.dumps(data, indent=2) + "\n"
    return json.dumps({"format": JSON_FORMAT, "version": 1, "provenance": provenance.fields(), "rows": data},
                      indent=2, ensure_ascii=False) + "\n"


def render(rows: list[StudyRow] | list[ResultRow], fmt_name: str, provenance: Provenance | None = None) -> str:
    """The results table (:class:`StudyRow`) or runs (:class:`ResultRow`) in ``md``, ``csv`` or
    ``json``, with its provenance when given."""
    if fmt_name not in FORMATS:
        raise ValueError(f"unknown format {fmt_name!r}: expected one of {', '.join(FORMATS)}")
    return {"md": to_markdown, "csv": to_csv, "json": to_json}[fmt_name](rows, provenance)


def format_for_path(path: Path) -> str | None:
    """Guess the format from a file's suffix."""
    return {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json"}.get(path.suffix.lower())


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to the file the user named, by :mod:`fnn_tui.report.files`' rule:
    a regular file atomically (temp file in the same folder, ``os.replace``), a device or a
    FIFO in place, anything else refused.

    Raises :class:`~fnn_tui.report.files.CannotWrite` ("cannot write <path>: <why>").
    """
    write_text(path, text)
