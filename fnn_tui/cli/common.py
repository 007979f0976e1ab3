"""What every ``fnn-tui`` command shares: the typer app, the consoles, the settings of the
main options and the one way bad input becomes a line on stderr and exit code 2.

Data goes to stdout, diagnostics to stderr. Exit codes: 0 success, 1 a run failed or
diverged, 2 bad input (one clear line, no traceback unless ``--debug``), 128+N a signal.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from fnn_tui.core.catalog import Catalog

F = TypeVar("F", bound=Callable[..., Any])


def _no_type(ctx: typer.Context) -> None:
    return None


def _readable(params: list[Any]) -> list[Any]:
    """Help that people read: typer 0.29 prints a Python type beside every parameter
    (``--help <bool>``, ``presets <list[str]>``). A flag takes no value, so it gets no
    placeholder; an argument's metavar (``PRESET``) already names it, so no type follows."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument" and param.metavar:
            param.display_type_rich = _no_type
    return params


class ReadableCommand(TyperCommand):
    """A command whose help shows readable placeholders only."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _readable(super().get_params(ctx))


ARGV_KEY = "fnn_tui.argv"
# the order of ``-h``'s commands: what a student types first comes first; commands not
# named here follow in the order they were registered
COMMAND_ORDER = ("run", "resume", "active", "attach", "stop", "runs", "results", "table", "report", "plot", "compare",
                 "claims", "sweep", "sweeps", "list", "show", "validate", "tui")


class ReadableGroup(TyperGroup):
    """The main command, with the same readable help as its commands, ``run`` first; it keeps
    the command line it was given (for the provenance of what a command saves: :func:`command_line`)."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _readable(super().get_params(ctx))

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(ARGV_KEY, list(args))  # the main group sees them first, whole
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


def command_line(ctx: typer.Context) -> str:
    """The command line that runs this command, as typed: ``fnn-tui report -o r.md``."""
    from fnn_tui.report.provenance import cli_command

    return cli_command(ctx.meta.get(ARGV_KEY))



class ReadableTyper(typer.Typer):
    """A typer app whose commands are :class:`ReadableCommand` unless told otherwise."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", ReadableCommand)
        if "help" in kwargs:
            return super().command(*args, **kwargs)

        def decorator(f: F) -> F:
            return super(ReadableTyper, self).command(*args, help=reflow(inspect.getdoc(f) or ""), **kwargs)(f)

        return decorator


def reflow(doc: str) -> str:
    """A docstring as help: rich help keeps every line break, so the lines of a paragraph
    are joined; a line that starts a list item (``- ``) or an example (``[b]``) stays a line."""
    paragraphs = []
    for block in doc.strip().split("\n\n"):
        lines: list[str] = []
        for line in block.splitlines():
            if lines and not line.startswith(("- ", "[b]", " ")):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


app = ReadableTyper(
    name="fnn-tui",
    cls=ReadableGroup,
    help="A terminal lab runner for small PyTorch feed-forward-network experiments.\n\n"
    "With no command, opens the Textual app.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def examples(*lines: tuple[str, str]) -> str:
    """A command's help epilog: example command lines, each with what it does."""
    width = max(len(command) for command, _ in lines) + 2
    return "Examples:\n\n" + "\n".join(f"  {escape(f'{command:<{width}}')}[dim]{escape(what)}[/dim]"
                                       for command, what in lines)


out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2

# Options name their flags explicitly: typer before 0.29 took a metavar for the flag's name.
MAX_SQL_INT = 2**63 - 1  # SQLite's INTEGER: no run id (or count) beyond it can be stored or asked for


def run_id_arg(value: int | None) -> int | None:
    """Typer callback for a run id: one out of SQLite's range is one line and exit 2 (the store
    cannot even be asked about it), never a traceback."""
    if value is not None and not 1 <= value <= MAX_SQL_INT:
        err.print(f"[red]error:[/red] no run with id {value}: run ids are whole numbers from 1 to {MAX_SQL_INT}; "
                  "`fnn-tui runs` lists them", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    return value


DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.", metavar="DEVICE")]
EngineOpt = Annotated[str, typer.Option("--engine", help="auto (fused on the CPU when it can; several seeds on a GPU: the fused-cuda group engine), torch or fused.",
                                        metavar="ENGINE")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="Where the tasks train: local (this machine's cores) or ray (a Ray cluster: "
    "needs pip install 'fnn-tui\\[ray]').", metavar="EXECUTOR")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="The Ray cluster's head, HOST:PORT (default: $RAY_ADDRESS; neither: a local Ray "
    "started for this command).", metavar="ADDRESS", show_default=False)]


def check_executor(executor: str, address: str | None, *, connect: bool = True) -> None:
    """Before any work: the executor exists and, for Ray, is installed and answers (with
    ``connect``, this process joins the cluster and says what it found). An error is
    raised for :func:`bad_input`: one line, exit 2."""
    from fnn_tui.runs.execute import EXECUTORS, ExecutorError

    if executor not in EXECUTORS:
        raise ExecutorError(f"--executor {executor!r}: expected {' or '.join(EXECUTORS)}")
    if executor != "ray":
        if address:
            raise ExecutorError("--ray-address is for --executor ray")
        return
    from fnn_tui.runs import ray_executor

    ray_executor.check(address)
    if connect:
        err.print(f"training on {ray_executor.connect(address)}", soft_wrap=True)


class Settings:
    """Options shared by every command."""

    def __init__(self, home: Path, presets: list[Path], debug: bool) -> None:
        self.home = home
        self.presets = presets
        self.debug = debug

    def catalog(self) -> Catalog:
        """Every preset from the built-ins, the user folder and ``--presets``."""
        from fnn_tui.core.catalog import discover

        return discover(self.presets)


def literal(text: object) -> str:
    """``text`` (a name, a path, a message) ready for a Rich markup string and shown as it
    is: markup escaped, and control characters (an ESC that would drive the terminal)
    written out, e.g. ``\\x1b``; line breaks stay."""
    plain = "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode("ascii")
                    for c in str(text))
    return escape(plain)


def say_figures_written(count: int, folder: object) -> None:
    """The stderr line after ``--figures``: how many figures went where."""
    err.print(f"wrote {count} figure{'' if count == 1 else 's'} to {literal(folder)}", soft_wrap=True)


def preset_name(s: Settings, text: str) -> str:
    """The name the store keeps for the preset that ``text`` names: a number (``8``), a name
    (``exp08``) or a TOML file, resolved through the catalog as ``show`` and ``run`` do.

    Text that names no valid preset now is kept as it is: runs of a preset since renamed,
    removed or broken are stored under their old name all the same.
    """
    from fnn_tui.core.catalog import UnknownPresetError
    from fnn_tui.core.presets import PresetError

    try:
        return s.catalog().get(text).name
    except (UnknownPresetError, PresetError):
        return text


@contextmanager
def bad_input(settings: Settings | None) -> Iterator[None]:
    """Turn the domain's input errors into one red line on stderr and exit code 2."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        kind = _input_error(exc)
        if kind is None or (settings is not None and settings.debug):
            raise
        if kind == "store lost":  # a run lost its store while it trained: the run failed
            err.print(f"[red]error:[/red] {literal(exc)}", markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_RUN_FAILED) from None
        if kind == "preset":
            for line in str(exc).splitlines():
                err.print(f"[red]error:[/red] {literal(line)}", markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        message = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
        err.print(f"[red]error:[/red] {literal(message)}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


# The domain's input errors by module and class. They are looked up among the modules
# already imported only: an error of a module never loaded cannot have been raised, and
# importing the training modules to name their errors would load torch for every command.
_STORE_LOST = ("fnn_tui.store.db", "StoreReplacedError")
_PRESET = ("fnn_tui.core.presets", "PresetError")
_BAD_INPUT = (
    ("fnn_tui.core.catalog", "UnknownPresetError"), ("fnn_tui.core.devices", "DeviceError"),
    ("fnn_tui.core.engines", "EngineError"), ("fnn_tui.core.state", "CheckpointError"),
    ("fnn_tui.runs.record", "ResumeError"), ("fnn_tui.runs.execute", "ExecutorError"),
    ("fnn_tui.store.db", "StoreError"),
)


def _input_error(exc: Exception) -> str | None:
    """``"store lost"``, ``"preset"`` or ``"input"`` for an error :func:`bad_input` turns
    into one line, None for any other (a bug: it keeps its traceback)."""
    def raised(module: str, name: str) -> bool:
        found = getattr(sys.modules.get(module), name, None)
        return isinstance(found, type) and isinstance(exc, found)

    if raised(*_STORE_LOST):
        return "store lost"
    if raised(*_PRESET):
        return "preset"
    if isinstance(exc, OSError) or any(raised(*where) for where in _BAD_INPUT):
        return "input"
    return None


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``message`` as one red error line (its text taken literally, never as markup)
    and return the exit to raise."""
    err.print(f"[red]error:[/red] {literal(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def settings(ctx: typer.Context) -> Settings:
    """The main options, set by the callback."""
    return ctx.obj


def output_format(format_: str | None, output: Path | None, formats: tuple[str, ...], *,
                  terminal: str | None = None) -> str:
    """The format asked for, else the one ``-o``'s suffix names, else ``terminal`` (a table
    drawn for the terminal) when writing to stdout and there is one, else Markdown; an
    unknown one, or an ``output`` that cannot be written (:func:`check_output`), is one line
    and exit 2."""
    from fnn_tui.report.export import format_for_path

    name = format_ or (format_for_path(output) if output else None) or (terminal if output is None else None) or "md"
    if name not in formats:
        expected = ", ".join(formats[:-1]) + f" or {formats[-1]}"
        err.print(f"[red]error:[/red] unknown format {literal(repr(name))}: expected {expected}", markup=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if output is not None:
        check_output(output)
    return name


def check_output(output: Path, folder: bool = False) -> None:
    """Refuse, before any work, a ``-o`` file (or a ``folder`` to write into) that cannot be
    one: a folder, a socket, a disk, a missing folder. One line and exit 2."""
    from fnn_tui.report.files import CannotWrite, check_folder, check_target

    try:
        (check_folder if folder else check_target)(output)
    except CannotWrite as exc:
        raise fail(str(exc)) from None


def terminal_text(renderable: Any, width: int = 80) -> str:
    """A rich table as plain text ``width`` columns wide, for a file (``--format text -o``)."""
    import io

    console = Console(file=io.StringIO(), width=width, no_color=True, highlight=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def write_output(text: str, output: Path | None, what: str) -> None:
    """``text`` to stdout, or to ``output`` (atomically; a device or FIFO in place) with a
    line on stderr saying ``what`` was written. An unwritable file is a
    :class:`~fnn_tui.report.files.CannotWrite` naming ``output``, for :func:`bad_input`."""
    import sys

    from fnn_tui.report.export import write_atomic

    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text)  # its errors are one line naming ``output`` already
    err.print(f"wrote {what} to {literal(output)}", soft_wrap=True)
