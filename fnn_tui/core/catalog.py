"""Finding presets: the built-ins, the user's config folder and ``--presets`` folders.

A later source shadows an earlier preset of the same name, and the shadowing is recorded
so that every front end can show it. Broken files are listed with their error, not hidden,
and whatever goes wrong loading one file (any exception) makes that one entry broken:
it never stops the others from loading or a command from running.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fnn_tui.core.expr import shorten
from fnn_tui.core.presets import Preset, PresetError, load_preset
from fnn_tui.paths import builtin_presets_dir, user_presets_dir


@dataclass(frozen=True)
class PresetEntry:
    """One preset file as found: either a valid preset or the error that stops it."""

    name: str
    path: Path
    origin: str  # "built-in", "user" or "dir"
    preset: Preset | None
    error: PresetError | None
    shadows: Path | None = None

    @property
    def ok(self) -> bool:
        """Whether the file validated."""
        return self.preset is not None

    @property
    def sort_key(self) -> tuple[int, str]:
        """Order by the notes' table row number, then by name."""
        number = self.preset.experiment.number if self.preset else 10_000
        return (number, self.name)


class UnknownPresetError(LookupError):
    """No preset of that name was found in any source."""


@dataclass(frozen=True)
class Catalog:
    """All presets found, in display order."""

    entries: tuple[PresetEntry, ...]

    def names(self) -> list[str]:
        """Every preset name, valid or not."""
        return [e.name for e in self.entries]

    def get(self, name_or_path: str) -> Preset:
        """Resolve a name (``exp08``, ``8``) or a path to a TOML file into a valid preset."""
        path = Path(name_or_path)
        if name_or_path.endswith(".toml") or path.is_file():
            return load_preset(path)
        wanted = name_or_path
        if name_or_path.isdigit():
            wanted = f"exp{int(name_or_path):02d}"
        for entry in self.entries:
            if entry.name == wanted:
                if entry.error is not None:
                    raise entry.error
                assert entry.preset is not None
                return entry.preset
        import difflib

        match = difflib.get_close_matches(name_or_path, self.names(), n=1)
        hint = f"; did you mean {match[0]!r}?" if match else "; `fnn-tui list` shows them"
        raise UnknownPresetError(f"no preset named {name_or_path!r}{hint}")

    def valid(self) -> list[Preset]:
        """The presets that validated, in order."""
        return [e.preset for e in self.entries if e.preset is not None]


def discover(extra_dirs: Iterable[Path] = (), *, include_user: bool = True) -> Catalog:
    """Collect presets from the built-ins, the user folder and each extra folder, in that order."""
    sources: list[tuple[str, Path]] = [("built-in", builtin_presets_dir())]
    if include_user:
        sources.append(("user", user_presets_dir()))
    sources.extend(("dir", Path(d)) for d in extra_dirs)
    found: dict[str, PresetEntry] = {}
    for origin, folder in sources:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                preset, error = load_preset(path), None
            except PresetError as exc:
                preset, error = None, exc
            except Exception as exc:  # one bad file must never break the others
                preset, error = None, PresetError(
                    str(path), [f"cannot load the file ({exc.__class__.__name__}: {shorten(str(exc), 80)})"]
                )
            previous = found.get(path.stem)
            found[path.stem] = PresetEntry(
                name=path.stem,
                path=path,
                origin=origin,
                preset=preset,
                error=error,
                shadows=previous.path if previous else None,
            )
    return Catalog(tuple(sorted(found.values(), key=lambda e: e.sort_key)))
