"""How a saved report, table or figure was made: when, by which versions, from runs on which
device and engine, and by which command.

A number in a lab report is only worth what one can say about where it came from. Every
format carries the same fields in its own way: Markdown as YAML front matter, CSV as one
comment line before the header, JSON as a ``provenance`` object, a figure as a caption
line. Nothing here reads the store: the caller gives the runs' devices and engines.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shlex
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from fnn_tui import __version__

APP_SAVE = "fnn-tui app: ctrl+s"  # the app's Save has no command line; each save names what it saved


@dataclass(frozen=True)
class Provenance:
    """The fields every saved output carries."""

    made: str  # UTC, ISO 8601 to the second
    fnn_tui: str
    torch: str
    python: str
    device: str  # the devices the runs in it trained on ("none" without runs)
    engine: str  # the engines they trained with
    command: str  # the command line (or the app's key) that made it

    def fields(self) -> dict[str, str]:
        """The fields by name, in order."""
        return asdict(self)

    def line(self) -> str:
        """One line: ``made 2026-12-03T12:00:00Z by fnn-tui 0.1.0 (torch 2.13.0, Python 3.12.3);
        runs on cpu, engine fused; command: fnn-tui report``."""
        return (f"made {self.made} by fnn-tui {self.fnn_tui} (torch {self.torch}, Python {self.python}); "
                f"runs on {self.device}, engine {self.engine}; command: {self.command}")


def _torch_version() -> str:
    torch = sys.modules.get("torch")
    if torch is None:  # imported only when it is not yet: a report need not load torch for its version
        try:
            from importlib.metadata import version

            return version("torch")
        except Exception:  # any failure here only means "unknown"
            return "unknown"
    return str(torch.__version__)


def _names(values: Iterable[str]) -> str:
    found = sorted({v for v in values if v})
    return ", ".join(found) if found else "none"


def cli_command(argv: list[str] | None = None) -> str:
    """The command line as typed: ``fnn-tui`` and the arguments (control characters shown)."""
    args = sys.argv[1:] if argv is None else argv
    text = shlex.join(["fnn-tui", *args])
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def provenance(command: str, *, devices: Iterable[str] = (), engines: Iterable[str] = (),
               now: dt.datetime | None = None) -> Provenance:
    """The provenance of an output made now by ``command`` from runs on ``devices`` with ``engines``."""
    when = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return Provenance(
        made=when.strftime("%Y-%m-%dT%H:%M:%SZ"), fnn_tui=__version__, torch=_torch_version(),
        python=platform.python_version(), device=_names(devices), engine=_names(engines),
        command=" ".join(command.split()),  # one line, whatever it held
    )


def front_matter(p: Provenance | None) -> str:
    """YAML front matter for Markdown (values JSON-quoted, which YAML reads); "" for ``None``."""
    if p is None:
        return ""
    lines = ["---", *(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in p.fields().items()), "---"]
    return "\n".join(lines) + "\n\n"


def csv_comment(p: Provenance | None) -> str:
    """One ``#`` comment line for the top of a CSV file (read it with ``comment="#"``)."""
    return "" if p is None else f"# {p.line()}\n"


def stamped(text: str, fmt: str, p: Provenance | None) -> str:
    """``text`` (a rendered output in ``md``, ``csv`` or ``json``) with its provenance: front
    matter, a first comment line, or a ``provenance`` object after the format's name."""
    if p is None:
        return text
    if fmt == "md":
        return front_matter(p) + text
    if fmt == "csv":
        return csv_comment(p) + text
    if fmt == "json":
        doc = json.loads(text)
        head = {k: doc.pop(k) for k in ("format", "version") if k in doc}
        return json.dumps({**head, "provenance": p.fields(), **doc}, indent=2, ensure_ascii=False,
                          allow_nan=False) + "\n"
    return text


def provenance_of(command: str, store: Any, run_ids: Iterable[int]) -> Provenance:
    """The provenance of an output made by ``command`` from the stored runs ``run_ids``."""
    records = [r for r in (store.get_run(i) for i in set(run_ids)) if r is not None]
    return provenance(command, devices=(r.device for r in records), engines=(r.engine for r in records))


def caption(p: Provenance) -> str:
    """The line under a figure."""
    return p.line()
