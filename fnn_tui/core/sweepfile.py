"""Sweep files: a ``[sweep]`` table in a TOML file, so a sweep can be kept (beside the
presets, in a folder of its own) and run again.

```toml
[sweep]
name = "lr-by-width"   # optional: the stored sweep's name
preset = "exp08"       # a name, a number, or a preset file (relative to this file)
seeds = 10             # N (seeds 0..N-1), "0-9", "3,7,11" or [0, 1, 2]

[sweep.set]            # optional: settings every variant shares
epochs = 30

[sweep.grid]           # each key's values: an array, or a range "log(a,b,n)" / "lin(a,b,n)"
lr = "log(1e-3,1e-1,5)"
hidden = [[20, 20, 30], [50, 50]]
```

Keys are those of ``--set`` (short or full). A problem is one line naming the file and the
key, before any work.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fnn_tui.core.expr import shorten
from fnn_tui.core.presets import MAX_FILE_BYTES, PresetError
from fnn_tui.core.variants import _RANGE, Grid, _range, checked_values, resolve_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KEYS = ("name", "preset", "seeds", "set", "grid")


@dataclass(frozen=True)
class SweepFile:
    """A sweep file as read: the preset it names, its seeds (as ``--seeds`` text) and its grid
    (the shared settings are one-value axes of it, first)."""

    source: str
    name: str | None
    preset: str
    seeds: str
    grid: Grid


def _fail(source: str, problem: str) -> PresetError:
    return PresetError(source, [problem])


def _key(source: str, where: str, name: str) -> str:
    try:
        return resolve_key(name)
    except PresetError as exc:
        # the same words as --set, with the file and the table in front
        problem = exc.problems[0]
        raise _fail(source, f"{where}.{problem}") from None


def read_sweep_file(path: Path) -> SweepFile:
    """Read and check a sweep file (its preset is resolved by the caller, from the catalog)."""
    source = str(path)
    try:
        if not path.is_file():
            raise _fail(source, "expected a regular file, found something else (or nothing)")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _fail(source, f"expected a file of at most {MAX_FILE_BYTES // 1000} kB")
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(source, f"cannot read the file ({exc.__class__.__name__}: {exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(source, f"TOML syntax error: {shorten(str(exc), 100)}") from None
    except (ValueError, RecursionError) as exc:
        raise _fail(source, f"TOML value error: {shorten(str(exc), 80)}") from None
    table = doc.get("sweep")
    if not isinstance(table, dict):
        raise _fail(source, "sweep: expected a table [sweep] with preset, seeds and [sweep.grid]")
    for key in table:
        if key not in _KEYS:
            match = difflib.get_close_matches(str(key), list(_KEYS), n=1)
            hint = f"; did you mean {match[0]!r}?" if match else f" (known: {', '.join(_KEYS)})"
            raise _fail(source, f"sweep.{shorten(str(key))}: unknown key{hint}")
    name = table.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or not name.isprintable()):
        raise _fail(source, f"sweep.name: expected a non-empty string, found {shorten(repr(name))}")
    preset = table.get("preset")
    if isinstance(preset, int) and not isinstance(preset, bool):
        preset = str(preset)
    if not isinstance(preset, str) or not preset.strip():
        raise _fail(source, f"sweep.preset: expected a preset's name, number or file, found {shorten(repr(preset))}")
    if preset.endswith(".toml") and not Path(preset).is_absolute():
        preset = str(path.parent / preset)
    seeds = table.get("seeds", 1)
    if isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        seeds = ",".join(f"{s}-{s}" for s in seeds)  # "0" alone would read as a count
    elif isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = str(seeds)
    if not isinstance(seeds, str):
        raise _fail(source, f"sweep.seeds: expected N, \"0-9\", \"3,7,11\" or an array of seeds, found "
                            f"{shorten(repr(seeds))}")
    axes: list[tuple[str, tuple[Any, ...], str]] = []
    for part in ("set", "grid"):
        entries = table.get(part, {})
        if not isinstance(entries, dict):
            raise _fail(source, f"sweep.{part}: expected a table [sweep.{part}], found {shorten(repr(entries))}")
        for name_, raw in entries.items():
            key = _key(source, f"sweep.{part}", str(name_))
            if any(key == k for k, _, _ in axes):
                raise _fail(source, f"sweep.{part}.{name_}: {key} is given twice")
            text = f"{name_}={shorten(repr(raw), 40)}"
            if part == "set":
                values, spacing = [raw], "list"
            elif isinstance(raw, str) and _RANGE.match(raw.strip()):
                match = _RANGE.match(raw.strip())
                assert match is not None
                try:
                    values, spacing = _range(match[1], match[2], key, text), match[1]
                except PresetError as exc:
                    raise _fail(source, f"sweep.grid.{exc.problems[0]}") from None
            elif isinstance(raw, list):
                values, spacing = raw, "list"
            else:
                raise _fail(source, f"sweep.grid.{name_}: expected an array of values or a range \"log(a,b,n)\" / "
                                    f"\"lin(a,b,n)\", found {shorten(repr(raw))}")
            try:
                values = checked_values(key, list(values), text)
            except PresetError as exc:
                raise _fail(source, f"sweep.{part}.{exc.problems[0]}") from None
            axes.append((key, tuple(values), spacing))
    if not any(len(values) > 1 for _, values, _ in axes) and not table.get("grid"):
        raise _fail(source, "sweep.grid: expected at least one setting to sweep, found none")
    return SweepFile(source=source, name=name, preset=preset, seeds=seeds, grid=Grid(tuple(axes)))
