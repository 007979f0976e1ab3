"""``fnn-tui runs``: the runs list (every stored run) and the user's word on a run.

``runs`` / ``runs list [PRESET]`` lists them (filters: status, dead, tag); ``runs show ID``
is one run in detail; ``exclude``/``include`` take runs out of their studies and back,
``tag`` and ``note`` annotate them. ``results`` is a hidden alias of ``runs list`` for one
version. The runs queued or training now are ``fnn-tui active`` (:mod:`fnn_tui.cli.train`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from fnn_tui.cli.common import (
    MAX_SQL_INT,
    ReadableGroup,
    ReadableTyper,
    app,
    bad_input,
    err,
    examples,
    fail,
    literal,
    out,
    preset_name,
    run_id_arg,
    settings,
)

runs_app = ReadableTyper(
    name="runs", cls=ReadableGroup, invoke_without_command=True, no_args_is_help=False,
    help="The runs list (every stored run) and the user's word on a run: exclude, include, tag, note.\n\n"
    "With no command, lists the runs (as `runs list`).",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs_app, name="runs")

PresetArg = Annotated[str | None, typer.Argument(help="Only runs of this preset: name (exp08), number (8) or TOML file.",
                                                 metavar="PRESET", show_default=False)]
StatusOpt = Annotated[str | None, typer.Option("--status", help="Only runs with this status (or several: "
                                               "finished,diverged).", metavar="STATUS", show_default=False)]
DeadOpt = Annotated[bool | None, typer.Option("--dead/--alive", help="Only dead networks (or only live ones).",
                                              show_default=False)]
TagOpt = Annotated[str | None, typer.Option("--tag", help="Only runs with this tag.", metavar="TAG", show_default=False)]
LimitOpt = Annotated[int, typer.Option("--limit", help="At most this many runs.", min=1, metavar="N")]
IdsArg = Annotated[list[int], typer.Argument(help="Run ids (the run column of `fnn-tui runs`).", metavar="RUN...",
                                             show_default=False)]
IdArg = Annotated[int, typer.Argument(help="The run's id (the run column of `fnn-tui runs`).", metavar="RUN",
                                      callback=run_id_arg, show_default=False)]


@runs_app.callback()
def runs_callback(ctx: typer.Context) -> None:
    """The runs list, and the user's word on a run."""
    if ctx.invoked_subcommand is None:
        list_runs(ctx, None, None, None, None, 50)


def list_runs(ctx: typer.Context, preset: str | None, status: str | None, dead: bool | None, tag: str | None,
              limit: int) -> None:
    """Print the runs list with these filters (shared by ``runs``, ``runs list`` and ``results``)."""
    from fnn_tui.cli.render import runs_table
    from fnn_tui.report.runinfo import FilterError, RunFilter, statuses_of
    from fnn_tui.report.studies import seed_roles
    from fnn_tui.runs.liveness import reap
    from fnn_tui.store.runs import Store, TagError, check_tag

    s = settings(ctx)
    only = None if preset is None else preset_name(s, preset)
    try:
        wanted = RunFilter(statuses=statuses_of(status) if status else (), dead=dead,
                           tag=check_tag(tag) if tag is not None else None)
    except (FilterError, TagError) as exc:
        raise fail(f"{exc}") from None
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            reap(store)
            everything = store.list_runs()
    roles = seed_roles(everything)  # a run's role needs every run of its seed, shown or not
    records = [r for r in everything if (only is None or r.preset == only) and wanted.matches(r)]
    records = records[:min(limit, MAX_SQL_INT)]
    if not records:
        if only is None and wanted.empty:
            err.print("no runs stored yet: try `fnn-tui run exp08 --epochs 3`")
        else:
            what = f" of {literal(only)}" if only else ""
            err.print(f"no runs{what} stored that match these filters")
        return
    from fnn_tui.report.studies import variant_names

    out.print(runs_table(records, roles=roles, variants=variant_names(s.catalog(), records)))


@runs_app.command("list", epilog=examples(("fnn-tui runs list 8 --status finished", "exp08's finished runs"),
                                          ("fnn-tui runs list --dead --tag trial", "dead networks tagged trial")))
def list_command(ctx: typer.Context, preset: PresetArg = None, status: StatusOpt = None, dead: DeadOpt = None,
                 tag: TagOpt = None, limit: LimitOpt = 50) -> None:
    """The runs list: every stored run, newest first; "dead", "duplicate" or "excluded" under a status.

    A duplicate is a run whose seed is counted by another run with the same settings (the
    newest finished or diverged one); an excluded run is left out of its study and dim.
    """
    list_runs(ctx, preset, status, dead, tag, limit)


@app.command(hidden=True)
def results(ctx: typer.Context, preset: PresetArg = None, status: StatusOpt = None, dead: DeadOpt = None,
            tag: TagOpt = None, limit: LimitOpt = 50) -> None:
    """The runs list (now `fnn-tui runs list`; this name goes in a later version)."""
    list_runs(ctx, preset, status, dead, tag, limit)
    err.print("note: `fnn-tui results` is now `fnn-tui runs` (`runs list`, `runs show ID`); the old name goes in a "
              "later version", soft_wrap=True)


@runs_app.command("show")
def show_run(ctx: typer.Context, run_id: IdArg) -> None:
    """One run in detail: settings, end, place in its study, why it was flagged dead or diverged.

    Why: the epoch, its last losses and the rule that flagged it.
    """
    from fnn_tui.cli.render import run_detail_table
    from fnn_tui.report.runinfo import run_detail
    from fnn_tui.report.studies import seed_roles
    from fnn_tui.store.runs import Store

    s = settings(ctx)
    with bad_input(s):
        with Store(s.home, reading=True) as store:
            record = store.get_run(run_id)
            if record is None:
                raise fail(f"no run with id {run_id}: `fnn-tui runs` lists them")
            role = seed_roles(store.seed_runs(record.study, record.seed)).get(run_id)
            detail = run_detail(store, record, role)
    out.print(run_detail_table(detail))


def _set_excluded(ctx: typer.Context, run_ids: list[int], excluded: bool) -> None:
    from fnn_tui.store.runs import Store

    for run_id in run_ids:
        run_id_arg(run_id)
    s = settings(ctx)
    with bad_input(s):
        with Store(s.home) as store:
            missing = [i for i in run_ids if store.get_run(i) is None]
            if missing:  # nothing is changed when any id is wrong
                raise fail(f"no run with id {', '.join(map(str, missing))}: `fnn-tui runs` lists them")
            store.set_excluded(run_ids, excluded)
    ids = ", ".join(map(str, run_ids))
    word = "excluded from" if excluded else "included in"
    err.print(f"run{'s' if len(run_ids) != 1 else ''} {ids} {word} {'their studies' if len(run_ids) != 1 else 'its study'}"
              " (`fnn-tui report` counts the runs of a study that are not excluded)")


@runs_app.command("exclude", epilog=examples(("fnn-tui runs exclude 12 13", "leave runs 12 and 13 out of the report")))
def exclude(ctx: typer.Context, run_ids: IdsArg) -> None:
    """Leave runs out of their studies (the report, figures, the app); they stay in the store."""
    _set_excluded(ctx, run_ids, True)


@runs_app.command("include")
def include(ctx: typer.Context, run_ids: IdsArg) -> None:
    """Take excluded runs back into their studies."""
    _set_excluded(ctx, run_ids, False)


@runs_app.command("tag", epilog=examples(("fnn-tui runs tag 12 trial", "tag run 12"),
                                         ("fnn-tui runs tag 12 trial --remove", "take the tag off again")))
def tag_run(ctx: typer.Context, run_id: IdArg,
            tag: Annotated[str, typer.Argument(help="Letters, digits and _ . : + - (up to 40).", metavar="TAG",
                                               show_default=False)],
            remove: Annotated[bool, typer.Option("--remove", help="Take the tag off instead.")] = False) -> None:
    """Tag a run (`fnn-tui runs list --tag TAG` finds it)."""
    from fnn_tui.store.runs import Store, TagError

    s = settings(ctx)
    with bad_input(s):
        with Store(s.home) as store:
            try:
                tags = store.set_tag(run_id, tag, present=not remove)
            except TagError as exc:
                raise fail(str(exc)) from None
    if tags is None:
        raise fail(f"no run with id {run_id}: `fnn-tui runs` lists them")
    err.print(f"run {run_id} tags: {literal(', '.join(tags)) if tags else 'none'}")


@runs_app.command("note")
def note_run(ctx: typer.Context, run_id: IdArg,
             text: Annotated[str, typer.Argument(help='The note ("" clears it).', metavar="TEXT",
                                                 show_default=False)]) -> None:
    """Write a note on a run (shown by `fnn-tui runs show`)."""
    from fnn_tui.store.runs import Store

    if len(text) > 2000 or any(not c.isprintable() for c in text):
        raise fail("a note is one line of printable text, up to 2000 characters")
    s = settings(ctx)
    with bad_input(s):
        with Store(s.home) as store:
            if not store.set_note(run_id, text):
                raise fail(f"no run with id {run_id}: `fnn-tui runs` lists them")
    err.print(f"run {run_id}: note {'cleared' if not text.strip() else 'saved'}")

