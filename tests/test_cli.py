"""The command line through typer's CliRunner: exit codes, stdout data, stderr diagnostics."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.store.runs import Store

from .conftest import FIXTURES
from .helpers import without_provenance

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_and_version() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list", "show", "validate", "run", "runs", "table", "report", "resume", "active", "tui"):
        assert f"│ {command} " in result.output
    commands = [line.split()[1] for line in result.output.split("Commands")[1].splitlines() if line.startswith("│ ")
                and line.split()[1].isalpha()]
    assert commands[0] == "run" and "export" not in commands and "results" not in commands  # old names hidden
    assert "fnn-tui 0.1.0" in invoke("--version").output


def test_help_keeps_brackets_and_joins_a_paragraphs_lines() -> None:
    import re

    def screen(*args: str) -> str:  # the help's text without the boxes, one paragraph a line
        out = runner.invoke(app, [*args, "-h"], env={"COLUMNS": "200", "NO_COLOR": "1"}).output
        return " ".join(line.strip(" │╭╮╰╯─") for line in out.splitlines())

    run = screen("run")
    assert "pip install 'fnn-tui[ray]'" in run and "hidden=[50,50]" in run  # not eaten as markup
    assert re.search(r"not trained again \(say --again for a repeat\)", run)
    assert "sweep file ([sweep] table)" in screen("sweep")
    assert "a sweep kept in a file ([sweep] table)" in screen("sweep")  # an example's words too
    assert "fnn-tui plot exp08: the study of exp08" in screen("plot")  # deliberate markup still rendered


def test_list_and_show() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    assert "exp01" in result.output and "exp11" in result.output
    shown = invoke("show", "exp08")
    assert shown.exit_code == 0
    assert "20 -> 20 -> 30" in shown.output and "0.002974" in shown.output


def test_validate_ok_and_broken(catalog) -> None:
    ok = invoke("validate", str(catalog.get("exp08").source))
    assert ok.exit_code == 0 and ok.output.strip().endswith(": ok")
    bad = runner.invoke(app, ["validate", str(FIXTURES / "broken" / "negative_lr.toml")])
    assert bad.exit_code == 2
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "negative_lr.toml: training.lr: expected a finite number > 0, found -0.1" in lines[0]
    assert "Traceback" not in bad.output


def test_run_then_results_then_export(home, tmp_path) -> None:
    result = invoke("run", "exp08", "--epochs", "2", "--samples", "300")
    assert result.exit_code == 0, result.output
    assert "exp08" in result.output and "finished" in result.output
    # the table of the runs trained has the run id and the seed; --device auto says what it picked and why
    assert "seed 0" in result.stdout and "\n   1 " in result.stdout
    import torch

    why = "a GPU only adds launch overhead per step" if torch.cuda.is_available() else "no GPU on this machine"
    assert result.stderr.strip().splitlines()[-1] == (
        "device auto picked the CPU: " + ("with batches of 1 (under 256), " if torch.cuda.is_available() else "") + why
        + ("; --device cuda:0 uses it anyway" if torch.cuda.is_available() else ""))
    with Store(home) as store:
        (run,) = store.list_runs()
        assert run.status == "finished" and run.epochs_done == 2 and run.engine == "fused"
    listed = invoke("results")
    assert listed.exit_code == 0 and "exp08" in listed.stdout and "2/2" in listed.stdout
    assert "`fnn-tui results` is now `fnn-tui runs`" in listed.stderr  # the old name says the new one
    assert "2/2" in invoke("results", "exp08").output
    by_number = invoke("results", "8")  # a number works wherever a preset name does, as in `show 8`
    assert by_number.exit_code == 0 and "exp08" in by_number.stdout and "2/2" in by_number.stdout
    assert runner.invoke(app, ["results", "--preset", "exp08"]).exit_code == 2  # one way to say it: the argument
    other = invoke("results", "exp01")
    assert other.exit_code == 0 and "2/2" not in other.output and "no runs of exp01" in other.output
    # a 2-epoch trial is no study of exp08's settings: the results table leaves it out and says so
    md = invoke("table", "--format", "md")
    assert md.exit_code == 0 and without_provenance(md.stdout).startswith("| # | preset | setting | n |") and "exp08" not in md.stdout
    assert "left out exp08: its runs have other settings than the preset's (samples=300, epochs=2)" in md.stderr
    drawn = invoke("table")  # on the terminal no empty table, only why there is none
    assert drawn.exit_code == 0 and drawn.stdout == "" and "no study of a preset's own settings" in drawn.stderr
    runs = invoke("table", "--all-runs", "--format", "md")
    assert without_provenance(runs.stdout).startswith("| # | preset | seed | setting |") and "| 0.00296 |" in runs.stdout
    target = tmp_path / "table.csv"
    written = invoke("table", "--all-runs", "-o", str(target))
    assert written.exit_code == 0 and f"wrote 1 row to {target}" in " ".join(written.stderr.split())
    rows = list(csv.DictReader(io.StringIO(without_provenance(target.read_text()))))
    assert rows[0]["preset"] == "exp08" and float(rows[0]["train_loss"]) == run.final.train_loss
    old = invoke("export", "--all-runs", "-f", "csv")  # the old name, for one version
    # the same rows; only the provenance line names the other command
    assert old.exit_code == 0 and "now `fnn-tui table`" in old.stderr
    assert without_provenance(old.stdout) == without_provenance(target.read_text())


def test_tables_fit_80_columns_without_cutting_anything(home, catalog) -> None:
    from rich.console import Console

    from fnn_tui.cli.render import report_table, runs_table, study_table, trained_table
    from fnn_tui.core.events import EpochMetrics
    from fnn_tui.report.export import result_row, results_table
    from fnn_tui.report.reproduction import reproduction
    from fnn_tui.report.studies import load_studies

    with Store(home) as store:  # the widest cells: a long status, a CUDA device, small losses
        run_id = store.create_run(catalog.get("exp08"), engine="torch", device="cuda:0")
        store.end_run(run_id, "interrupted", wall_seconds=12345.6)
        # a dead network with small losses and a two-digit seed
        dead = store.create_run(catalog.get("exp08").with_overrides(seed=42), engine="torch", device="cuda:0")
        store.add_epoch(dead, EpochMetrics(150, 0.000123456, 1.23456, 0.000123456, 1.23456, 0.1, 1e-5, 1.0, dead=True))
        store.end_run(dead, "finished", wall_seconds=12345.6)
        records = store.list_runs()
        studies = load_studies(store, catalog)
    rows, _ = results_table(studies)
    texts = []
    for table in (runs_table(records), trained_table([result_row(r) for r in records]), study_table(rows),
                  report_table(reproduction(s.study for s in studies))):
        console = Console(width=80, record=True)
        console.print(table)
        text = console.export_text()
        assert "…" not in text
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
        texts.append(text)
    runs, trained, table, report = texts
    assert "interrupted" in trained and "(0.002974)" in trained and "12345.6 s" in trained
    assert "dead" in trained and "0.0001235" in trained and "seed 42" in trained
    # the study: one finished (dead) run of two, the notes beside its median, and its settings
    assert "1/2" in table and "1 dead" in table and "(0.00296)" in table and "exp08  (20,20,30)" in table
    # every preset's row; the verdicts in words (exp08's losses are under the notes', its ratio above)
    assert "exp11" in report and "dead" in report and "verdict" in report and "no runs" in report
    exp08 = report[report.index(" exp08"):report.index(" exp09")]
    assert "0.002974" in exp08 and "above" in exp08 and "below" not in exp08.split("verdict")[0]


def test_runs_list_keeps_a_variants_settings_whole_beside_a_gpu_lane_at_80_columns(home, catalog) -> None:
    from rich.console import Console

    from fnn_tui.cli.render import runs_table
    from fnn_tui.core.events import EpochMetrics

    with Store(home) as store:  # a wide row: a GPU lane, interrupted, losses of exp08's size
        run_id = store.create_run(catalog.get("exp08").with_overrides(seed=42), engine="fused-cuda", device="cuda:0")
        store.add_epoch(run_id, EpochMetrics(37, 0.00297412, 1.0123, 0.00301234, 1.0123, 0.1, 1e-5, 1.0))
        store.end_run(run_id, "interrupted", wall_seconds=1.5)
        records = store.list_runs()
    console = Console(width=80, record=True)
    console.print(runs_table(records, variants={run_id: "samples=100, lr=0.05"}))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert max(map(len, lines)) <= 80 and not any("…" in line for line in lines)
    # each setting on a line of its own, whole; the engine and its device on two lines
    assert any(line.strip().startswith("· samples=100") for line in lines)
    assert any(line.strip().startswith("· lr=0.05") for line in lines)
    assert any(line.endswith("fused-cuda/") or "fused-cuda/ " in line for line in lines)
    assert any("cuda:0" in line and "fused-cuda" not in line for line in lines)


def test_bad_inputs_exit_2_with_one_line(tmp_path) -> None:
    cases = [
        ("run", "exp99"),
        ("run", "exp08", "--device", "cuda:7"),
        ("run", "exp08", "--engine", "jax"),
        ("run", "exp08", "--samples", "1"),
        ("show", str(FIXTURES / "broken" / "syntax_error.toml")),
        ("table", "-o", str(tmp_path / "missing" / "t.md")),
        ("table", "--format", "xls"),
        ("report", "--format", "xls"),
        ("resume", "42"),
    ]
    for args in cases:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 2, (args, result.output)
        # exactly one line on stderr: no traceback, and no blank line from a progress display
        # opened before the check
        assert result.stdout == "", (args, result.stdout)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (args, result.stderr)


def test_every_command_takes_dash_h_and_shows_readable_placeholders() -> None:
    import re

    import typer

    names = sorted(typer.main.get_command(app).commands)  # every registered command, hidden ones too
    assert {"run", "resume", "table", "export", "results", "active", "worker"} <= set(names)
    for args in ([], *([name] for name in names)):
        result = runner.invoke(app, [*args, "-h"], env={"COLUMNS": "80"})
        assert result.exit_code == 0 and "Usage:" in result.stdout, (args, result.output)
        # no `<list[Path]>`, `<bool>`, `<int range>`: placeholders people read (DIR, N, PRESET)
        python_type = re.search(r"<[\w\[\], ]+>", result.stdout)
        assert python_type is None, (args, python_type.group())
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        if args and args[0] in ("run", "table", "report", "resume"):
            assert "Examples:" in result.stdout and f"fnn-tui {args[0]}" in result.stdout


def test_diverged_run_exits_1(home) -> None:
    result = runner.invoke(app, ["run", str(FIXTURES / "diverges.toml")])
    assert result.exit_code == 1
    assert "diverged" in result.output


def test_python_dash_m_and_console_script() -> None:
    out = subprocess.run([sys.executable, "-m", "fnn_tui", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "fnn-tui" in out.stdout


def test_the_progress_display_keeps_to_the_terminal_height() -> None:
    from rich.console import Console

    from fnn_tui.cli.progress import EventProgress
    from fnn_tui.core.events import EpochMetrics, RunFinished, RunStarted

    final = EpochMetrics(3, 0.5, 1.0, 0.5, 1.0, 0.4, 0.01, 0.1)
    console = Console(file=io.StringIO(), height=12, width=80)  # room for 8 bars
    with EventProgress(console) as progress:
        for run_id in range(1, 11):  # ten runs start, six of them end
            progress(run_id, RunStarted("exp07", "fused", "cpu", run_id, 3, 100))
        for run_id in range(1, 7):
            progress(run_id, RunFinished(final, 1.0))
        shown = {t.id for t in progress.progress.tasks if t.visible}
        assert len(shown) == 8
        # the four still training keep their bars; the oldest ended ones left
        running = {progress.tasks[r] for r in range(7, 11)}
        assert running <= shown and progress.tasks[1] not in shown and progress.tasks[2] not in shown
        assert set(progress.shown) == {3, 4, 5, 6, 7, 8, 9, 10}
    few = Console(file=io.StringIO(), height=40, width=80)
    with EventProgress(few) as progress:  # when they fit, every bar stays, finished or not
        progress(1, RunStarted("exp07", "fused", "cpu", 0, 3, 100))
        progress(1, RunFinished(final, 1.0))
        assert [t.visible for t in progress.progress.tasks] == [True]


def test_commands_that_only_read_start_without_loading_torch(tmp_path) -> None:
    # torch takes a second to import; listing, showing and reading the store need none of it
    script = (
        "import sys\n"
        "from fnn_tui.cli import app\n"
        "for args in (['list'], ['show', 'exp08'], ['validate', sys.argv[1]], ['runs'], ['table'], ['active'],\n"
        "             ['sweeps'], ['show', 'nope'], ['validate', sys.argv[2]]):\n"
        "    try:\n"
        "        app(args, prog_name='fnn-tui')\n"
        "    except SystemExit as done:\n"
        "        print('@@', args[0], done.code)\n"
        "print('@@', 'torch' if 'torch' in sys.modules else 'no-torch')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(FIXTURES.parent.parent / "presets" / "exp08.toml"),
                           str(FIXTURES / "broken" / "log_domain.toml")],
                          capture_output=True, text=True, timeout=120)
    codes = " ".join(line[3:] for line in done.stdout.splitlines() if line.startswith("@@ ")).split()
    assert codes[:-1] == ["list", "0", "show", "0", "validate", "0", "runs", "0", "table", "0", "active", "0",
                          "sweeps", "0", "show", "2", "validate", "2"], done.stdout + done.stderr
    assert codes[-1] == "no-torch", done.stdout
    assert "undefined at x=-1" in done.stderr  # the broken preset was checked, on numpy
