"""The results table (the newest finished or diverged run of each preset, beside the notes'
numbers), from the store, as Markdown, CSV or JSON; files written atomically.

Not to be mixed up with the runs list (every stored run: ``fnn-tui runs``) or the report
(one row per preset over all its seeds: :mod:`fnn_tui.report.reproduction`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fnn_tui.core.presets import PresetError, parse_preset
from fnn_tui.core.status import RunStatus
from fnn_tui.report.files import write_text
from fnn_tui.report.provenance import Provenance, csv_comment, front_matter
from fnn_tui.store.runs import RunRecord

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


def results_table(records: list[RunRecord], *, latest_only: bool = True,
                  variants: dict[int, str] | None = None) -> list[ResultRow]:
    """Rows for finished and diverged runs, by experiment number; the newest run per preset
    unless ``latest_only`` is false; ``variants`` names each run's variant by run id."""
    chosen: list[RunRecord] = []
    seen: set[str] = set()
    for r in sorted(records, key=lambda r: (-r.started_at, -r.id)):
        if not r.status.final or r.excluded:  # an excluded run stands for nothing
            continue
        if latest_only and r.preset in seen:
            continue
        seen.add(r.preset)
        chosen.append(r)
    rows = [result_row(r, (variants or {}).get(r.id, "")) for r in chosen]
    return sorted(rows, key=lambda r: (r.number, r.preset, r.run_id))


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


def to_markdown(rows: list[ResultRow], provenance: Provenance | None = None) -> str:
    """A GitHub pipe table; "ratio" is the notes' "acc": mean |y_hat / y|, 1.0 is perfect.
    A dead run's status reads "finished, dead"."""
    header = [title for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        data = asdict(row)
        cells = []
        for key, _ in COLUMNS:
            cell = fmt(data[key])
            if key == "notes_train_ratio" and not cell and row.notes_remark:
                cell = row.notes_remark
            if key == "status":
                cell = status_text(row)
            if key == "preset":
                cell = row.label
            cells.append(cell.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return front_matter(provenance) + "\n".join(lines) + "\n"


def to_csv(rows: list[ResultRow], provenance: Provenance | None = None) -> str:
    """CSV with one header line of field names (after a ``#`` provenance line); numbers at
    full precision."""
    out = io.StringIO()
    out.write(csv_comment(provenance))
    fields = list(ResultRow.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    return out.getvalue()


JSON_FORMAT = "fnn-tui-results"


def to_json(rows: list[ResultRow], provenance: Provenance | None = None) -> str:
    """A JSON array of row objects; with a provenance, an object holding it and the ``rows``."""
    data = [asdict(r) for r in rows]
    if provenance is None:
        return json.dumps(data, indent=2) + "\n"
    return json.dumps({"format": JSON_FORMAT, "version": 1, "provenance": provenance.fields(), "rows": data},
                      indent=2, ensure_ascii=False) + "\n"


def render(rows: list[ResultRow], fmt_name: str, provenance: Provenance | None = None) -> str:
    """The table in ``md``, ``csv`` or ``json``, with its provenance when given."""
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
