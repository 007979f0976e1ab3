"""Store faults with real files, real SQLite and real processes: each becomes one line on
stderr and an exit code, never a traceback, and a damaged or lost store is never written to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fnn_tui.cli import app
from fnn_tui.core.trainer import RunOptions
from fnn_tui.runs.record import record_run
from fnn_tui.store.db import DB_NAME, StoreError
from fnn_tui.store.runs import Store

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _one_error_line(text: str) -> str:
    """The output is exactly one non-empty line, an error, and no traceback."""
    assert "Traceback" not in text
    lines = _lines(text)
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1", COLUMNS="400", **extra)
    return env


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def made_store(tmp_path_factory: pytest.TempPathFactory, catalog) -> Path:
    """A real store with one finished 2-epoch run (its folder too), made once per module."""
    home = tmp_path_factory.mktemp("made") / "home"
    record_run(home, catalog.get("exp08").with_overrides(samples=200, epochs=2), RunOptions(engine="fused"))
    with Store(home) as store:  # fold the WAL into the file, so the file alone is the store
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return home


@pytest.fixture
def store_home(made_store: Path, home: Path) -> Path:
    """This test's copy of the made store."""
    shutil.copytree(made_store, home)
    for extra in ("-wal", "-shm"):
        Path(f"{home / DB_NAME}{extra}").unlink(missing_ok=True)
    return home


def _damage_page(db: Path) -> None:
    """Overwrite the header of the epochs table's root page: one damaged page."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'epochs'").fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xff" * 12)


DAMAGES = {
    "random bytes": lambda db: db.write_bytes(os.urandom(db.stat().st_size)),
    "cut in half": lambda db: os.truncate(db, db.stat().st_size // 2),
    "one damaged page": _damage_page,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_store_is_one_line_and_never_written(store_home: Path, damage: str) -> None:
    db = store_home / DB_NAME
    DAMAGES[damage](db)
    before = _digest(db)
    for args in (["results"], ["table"], ["export"], ["run", "exp08", "--epochs", "1", "--samples", "200"]):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        line = _one_error_line(result.output)
        assert f"the run store {db} is damaged (" in line
        assert "restore it from a backup" in line
    assert _digest(db) == before  # `run` wrote nothing into it
    assert sorted(p.name for p in (store_home / "runs").iterdir()) == ["000001"]


@pytest.mark.parametrize("how", ["empty", "missing"])
def test_an_empty_or_missing_store_next_to_run_folders_is_an_error(store_home: Path, how: str) -> None:
    db = store_home / DB_NAME
    if how == "empty":
        os.truncate(db, 0)
    else:
        db.unlink()
    checkpoint = store_home / "runs" / "000001" / "checkpoint.pt"
    before = _digest(checkpoint)
    result = invoke("run", "exp08", "--epochs", "1", "--samples", "200")
    assert result.exit_code == 2
    line = _one_error_line(result.output)
    assert ("is empty (0 bytes)" if how == "empty" else "is missing") in line
    assert f"{store_home / 'runs'} holds 1 run folder" in line
    assert _digest(checkpoint) == before  # run 1's folder was not reused
    assert (db.stat().st_size == 0) if how == "empty" else not db.exists()


def test_an_empty_store_without_run_folders_is_a_new_store(home: Path) -> None:
    home.mkdir(parents=True)
    (home / DB_NAME).touch()
    with Store(home) as store:
        assert store.list_runs() == []


def test_three_threads_opening_a_new_store_at_once_all_get_it(tmp_path: Path) -> None:
    # SQLite answers BUSY at once (no busy handler) to the WAL switch of a new store while
    # another connection opens it; before the retry, 39 of 300 such races failed
    import threading

    from fnn_tui.store.db import connect

    errors: list[BaseException] = []

    def open_it(path: Path) -> None:
        try:
            conn, read_only = connect(path)
            assert not read_only and conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            conn.close()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    for trial in range(60):
        path = tmp_path / f"store{trial}" / DB_NAME
        threads = [threading.Thread(target=open_it, args=(path,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_a_lock_held_by_another_process_is_one_line(store_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
         " c.execute('PRAGMA journal_mode = WAL'); c.execute('BEGIN IMMEDIATE'); print('held', flush=True);"
         " sys.stdin.read()", str(store_home / DB_NAME)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("FNN_TUI_BUSY_TIMEOUT", "0.3")
        started = time.monotonic()
        result = invoke("run", "exp08", "--epochs", "1", "--samples", "200")
        assert time.monotonic() - started < 20
        assert result.exit_code == 2
        line = _one_error_line(result.output)
        assert f"is locked by another process (pid {holder.pid}) for over 0.3 s: wait for it or stop it" in line
        listed = invoke("results")  # readers are not blocked by a writer in WAL mode
        assert listed.exit_code == 0 and "exp08" in listed.output
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def _read_only_prefix(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` cannot be written, even by root."""
    if os.geteuid() != 0:
        for path in (folder / DB_NAME, folder):
            path.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no read-only mount to test with")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and `unshare -rm` is not allowed here: {probe.stderr.decode().strip()}")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, "sh", str(folder)]


READ_ONLY_PROBE = """
import json, os, sys
from typer.testing import CliRunner
from fnn_tui.cli import app
home = sys.argv[1]
out = {"writable": os.access(home, os.W_OK)}
for name, args in (("results", ["results"]), ("export", ["table", "--all-runs", "-f", "csv"]),
                   ("run", ["run", "exp08", "--epochs", "1", "--samples", "200"])):
    r = CliRunner().invoke(app, ["--home", home, *args])
    out[name] = [r.exit_code, r.output, repr(r.exception)]
print(json.dumps(out))
"""


def test_a_read_only_store_serves_the_commands_that_read(store_home: Path) -> None:
    db = store_home / DB_NAME
    prefix = _read_only_prefix(store_home)
    try:
        proc = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_PROBE, str(store_home)],
                              capture_output=True, text=True, env=_env(), timeout=120)
    finally:
        for path in (store_home, db):
            path.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["writable"] is False
    code, output, _ = got["results"]
    assert code == 0 and "exp08" in output and "2/2" in output
    code, output, _ = got["export"]
    assert code == 0 and output.splitlines()[0].startswith("# made ") and output.splitlines()[2].startswith("8,")
    code, output, _ = got["run"]
    assert code == 2
    line = _one_error_line(output)
    assert f"the run store {db} is read-only" in line and "commands that only read work" in line


FULL_DISK = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.argv = ["fnn-tui", *sys.argv[2:]]
runpy.run_module("fnn_tui", run_name="__main__")
"""


def test_a_full_disk_is_one_line_and_leaves_no_empty_store(home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "0", "--home", str(home), "run", "exp08", "--epochs", "1", "--samples", "200"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert f"the run store {home / DB_NAME} cannot be read or written (disk I/O error)" in line
    assert "free some space" in line
    assert not (home / DB_NAME).exists()  # no 0-byte store left behind to pass for a new one


def test_a_full_disk_under_an_existing_store_is_one_line(store_home: Path) -> None:
    before = _digest(store_home / DB_NAME)
    proc = subprocess.run(  # the WAL cannot grow past 4 KiB: the first write fails
        [sys.executable, "-c", FULL_DISK, "4096", "--home", str(store_home), "run", "exp08", "--epochs", "1",
         "--samples", "200"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert f"the run store {store_home / DB_NAME}" in line and "free some space" in line
    assert _digest(store_home / DB_NAME) == before
    listed = invoke("results")  # nothing was half-written: the store still reads
    assert listed.exit_code == 0 and "exp08" in listed.output


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_store_removed_or_replaced_while_a_run_trains_ends_it(store_home: Path, tmp_path: Path, how: str) -> None:
    db = store_home / DB_NAME
    other = tmp_path / "other.sqlite3"
    shutil.copy(db, other)  # another store (the made one, with its run 1) to put in its place
    proc = subprocess.Popen(
        [sys.executable, "-m", "fnn_tui", "--home", str(store_home), "run", "exp08", "--epochs", "100000",
         "--samples", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # until run 2 has stored an epoch
            assert proc.poll() is None and time.monotonic() < deadline
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            row = conn.execute("SELECT epochs_done FROM runs WHERE id = 2").fetchone()
            conn.close()
            if row and row[0] >= 1:
                break
            time.sleep(0.05)
        if how == "removed":
            db.unlink()
        else:
            os.replace(other, db)
            before = _digest(db)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    checkpoint = store_home / "runs" / "000002" / "checkpoint.pt"
    assert (f"error: the run store {db} was removed or replaced while run 2 trained; "
            f"its checkpoint is kept in {checkpoint}") in stderr
    assert checkpoint.exists()
    assert "finished" not in stderr  # no results table read from another store
    if how == "replaced":
        assert _digest(db) == before  # never wrote into the other store's file
        conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        conn.close()
    else:
        assert not db.exists()


def test_the_app_with_a_damaged_store_says_so_and_exits_non_zero(store_home: Path) -> None:
    db = store_home / DB_NAME
    DAMAGES["one damaged page"](db)
    proc = subprocess.run([sys.executable, "-m", "fnn_tui", "--home", str(store_home)],
                          capture_output=True, text=True, env=_env(), timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert f"the run store {db} is damaged" in line


async def test_a_store_that_fails_under_the_app_ends_it_with_the_line(store_home: Path) -> None:
    from fnn_tui.tui.app import FnnApp

    fnn = FnnApp(home=store_home)
    async with fnn.run_test(size=(80, 24)) as pilot:
        await fnn.workers.wait_for_complete()
        await pilot.pause()
        db = store_home / DB_NAME
        db.write_bytes(os.urandom(db.stat().st_size))
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        fnn.refresh_results()
        deadline = time.monotonic() + 30
        while fnn.store_error is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
    assert fnn.return_code == 2
    assert fnn.store_error is not None and f"the run store {db} is damaged" in fnn.store_error


def test_empty_home_and_missing_presets_folder_are_errors(tmp_path: Path) -> None:
    result = invoke("--home", "", "results")
    assert result.exit_code == 2
    assert "--home is empty" in _one_error_line(result.output)
    assert not (Path.cwd() / DB_NAME).exists()
    missing = tmp_path / "no-such-folder"
    result = invoke("--presets", str(missing), "list")
    assert result.exit_code == 2
    assert f"the presets folder {missing} does not exist" in _one_error_line(result.output)


def test_markup_and_escape_sequences_in_names_are_shown_literally(tmp_path: Path, catalog) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    text = Path(catalog.get("exp08").source).read_text()
    text = text.replace('name = "Full recipe, 5000"', 'name = "[bold]big[/bold]"')
    (folder / "[red]x.toml").write_text(text)  # a file name cannot hold "/"
    (folder / "\x1b[2Jz.toml").write_text(text)  # an ESC sequence in a file name
    listed = invoke("--presets", str(folder), "list")
    assert listed.exit_code == 0, listed.output
    assert "[red]x" in listed.output and "[bold]big[/bold]" in listed.output
    assert "\x1b" not in listed.output and "\\x1b[2J" in listed.output
    shown = invoke("--presets", str(folder), "show", "[red]x")
    assert shown.exit_code == 0 and "[red]x: [bold]big[/bold]" in shown.output
    trained = invoke("--presets", str(folder), "run", "[red]x", "--epochs", "1", "--samples", "200")
    assert trained.exit_code == 0, trained.output
    assert "[red]x" in trained.output
    listed = invoke("results")
    assert listed.exit_code == 0 and "[red]x" in listed.output
    unknown = invoke("show", "[bold]nope[/bold]")
    assert unknown.exit_code == 2 and "[bold]nope[/bold]" in _one_error_line(unknown.output)


def test_store_error_is_what_the_store_raises(store_home: Path) -> None:
    DAMAGES["cut in half"](store_home / DB_NAME)
    with pytest.raises(StoreError, match="is damaged"):
        Store(store_home)
