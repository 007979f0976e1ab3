"""The SQLite run store: schema, migrations and short write transactions.

One connection per thread or process (``sqlite3`` connections stay in the thread that
opened them). WAL mode and a busy timeout let the CLI, the app and a detached trainer use
one store at once; every write is a short ``BEGIN IMMEDIATE`` transaction, so a killed
writer leaves whole epochs only.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 7
DB_NAME = "runs.sqlite3"

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        preset TEXT NOT NULL,
        number INTEGER NOT NULL,
        preset_toml TEXT NOT NULL,
        preset_hash TEXT NOT NULL,
        seed INTEGER NOT NULL,
        engine TEXT NOT NULL,
        device TEXT NOT NULL,
        status TEXT NOT NULL,
        epochs_total INTEGER NOT NULL,
        epochs_done INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        ended_at REAL,
        wall_seconds REAL,
        torch_version TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER,
        heartbeat_at REAL,
        message TEXT,
        diverged_epoch INTEGER,
        diverged_step INTEGER,
        run_dir TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_preset ON runs(preset, started_at);
    CREATE TABLE epochs (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        train_loss REAL NOT NULL,
        train_ratio REAL NOT NULL,
        test_loss REAL NOT NULL,
        test_ratio REAL NOT NULL,
        test_mae REAL NOT NULL,
        lr REAL NOT NULL,
        seconds REAL NOT NULL,
        PRIMARY KEY (run_id, epoch)
    );
    """,
    # 2: progress inside an epoch, for following a run from another process
    2: """
    ALTER TABLE runs ADD COLUMN steps_per_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN progress_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN progress_step INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX runs_status ON runs(status);
    """,
    # 3: seeds as a dimension (the study a run belongs to), dead networks, stored fits
    3: """
    ALTER TABLE runs ADD COLUMN study TEXT NOT NULL DEFAULT '';
    ALTER TABLE epochs ADD COLUMN dead INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE epochs ADD COLUMN fit BLOB;
    CREATE INDEX runs_study ON runs(preset, study);
    """,
    # 4: the reason a run diverged, as the trainer said it (the app's end event is rebuilt
    # from it, not parsed out of the message); whether a run trains as a lane of the
    # multi-seed kernel (it then resumes on that kernel too, to the same numbers)
    4: """
    ALTER TABLE runs ADD COLUMN reason TEXT;
    ALTER TABLE runs ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: which process the pid is (fnn_tui/processes.py), so a dead one is known at once
    5: """
    ALTER TABLE runs ADD COLUMN pid_mark TEXT;
    """,
    # 6: the user's word on a run (left out of its study, tags, a note), and repeats made on purpose
    6: """
    ALTER TABLE runs ADD COLUMN excluded INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN repeat_of INTEGER;
    """,
    # 7: sweeps (a grid of settings x seeds of one base preset, kept by name); their runs
    # are ordinary runs, found by each variant's study
    7: """
    CREATE TABLE IF NOT EXISTS sweeps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        preset TEXT NOT NULL,
        base_toml TEXT NOT NULL,
        grid TEXT NOT NULL,
        seeds TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
}


def _study_of_old_runs(conn: sqlite3.Connection) -> None:
    """Runs stored before version 3 get their study from their stored preset."""
    from fnn_tui.core.presets import PresetError, parse_preset

    for row in conn.execute("SELECT id, preset, preset_toml FROM runs").fetchall():
        try:
            study = parse_preset(row[2], source=f"run {row[0]}", name=row[1]).study_digest()
        except PresetError:
            continue  # a preset that no longer validates stays out of every study
        conn.execute("UPDATE runs SET study = ? WHERE id = ?", (study, row[0]))


_BACKFILLS = {3: _study_of_old_runs}


class StoreError(RuntimeError):
    """The store cannot be used: damaged, read-only, full, locked, missing or from a newer
    fnn-tui. Its message is one line that says what to do."""


class StoreReplacedError(StoreError):
    """The store's file was removed or replaced while this process had it open."""


BUSY_TIMEOUT_ENV = "FNN_TUI_BUSY_TIMEOUT"  # seconds to wait for another process's write lock
BUSY_TIMEOUT = 30.0
QUICK_CHECK_MAX_BYTES = 256 << 20  # larger stores skip the check at open (it reads every page)
READ_ONLY_HINT = "commands that only read work (runs, report, export, active)"


def busy_timeout() -> float:
    """How long a write waits for another process's lock: ``$FNN_TUI_BUSY_TIMEOUT`` or 30 s."""
    try:
        return max(0.0, float(os.environ.get(BUSY_TIMEOUT_ENV, BUSY_TIMEOUT)))
    except ValueError:
        return BUSY_TIMEOUT


def translate(exc: sqlite3.Error, path: Path, timeout: float | None = None) -> StoreError:
    """The one place where SQLite's errors become a :class:`StoreError` that says what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = str(exc)
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in detail or "not a database" in detail
    ):
        return StoreError(damaged(path, detail))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in detail:
        wait = busy_timeout() if timeout is None else timeout
        holder = lock_holder(path)
        who = f" (pid {holder})" if holder else ""
        return StoreError(f"the run store {path} is locked by another process{who} for over {wait:g} s: "
                          "wait for it or stop it, then try again")
    if name.startswith("SQLITE_READONLY") or "readonly database" in detail:
        return StoreError(f"the run store {path} is read-only ({detail}): {READ_ONLY_HINT}; for this one "
                          "make it writable, or use --home DIR for a writable store")
    if name == "SQLITE_FULL" or "disk is full" in detail:
        return StoreError(f"the disk of the run store {path} is full ({detail}): free some space, then try again")
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in detail:
        return StoreError(f"the run store {path} cannot be read or written ({detail}): its disk may be full "
                          "or failing; free some space or check the disk, then try again")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in detail:
        return StoreError(f"cannot open the run store {path} ({detail}): check that it and its folder "
                          "exist and can be read")
    return StoreError(f"the run store {path} failed ({detail}): check the file, or use --home DIR for another store")


def damaged(path: Path, detail: str) -> str:
    """The line for a damaged database file."""
    return (f"the run store {path} is damaged ({detail}): restore it from a backup, or move the folder "
            f"{path.parent} aside (or use --home DIR) to start a new store")


@contextmanager
def store_errors(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Turn every ``sqlite3`` error inside into a :class:`StoreError` for ``path``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path, timeout) from exc


def lock_holder(path: Path) -> int | None:
    """The pid of the other process holding the store's write lock, where Linux tells it.

    In WAL mode SQLite's write lock is a POSIX lock on byte 120 of the ``-shm`` file;
    ``F_GETLK`` names its owner (a lock held by this same process is not reported).
    """
    if not sys.platform.startswith("linux"):
        return None
    import fcntl  # POSIX only

    try:
        fd = os.open(f"{path}-shm", os.O_RDONLY)
    except OSError:
        return None
    try:
        request = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 120, 1, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, request))
        return pid if kind != fcntl.F_UNLCK and pid > 0 else None
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)


def run_folders(home: Path) -> list[Path]:
    """The run folders (``runs/NNNNNN``) in a store's home."""
    folder = home / "runs"
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    except OSError:
        return []


def _writable(path: Path) -> bool:
    """Whether this process may write the store (the file and its folder, for -wal and -shm);
    for a store not made yet, whether its nearest existing folder is writable."""
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _check_not_orphaned(path: Path) -> None:
    """A missing or empty database next to run folders is a lost store, never a new one:
    a new store would give its run 1 the folder of the old run 1."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    folders = run_folders(path.parent)
    if folders:
        what = "missing" if size is None else "empty (0 bytes)"
        raise StoreError(
            f"the run store {path} is {what} but {path.parent / 'runs'} holds {len(folders)} run "
            f"folder{'s' if len(folders) != 1 else ''}: restore the database from a backup, or move {path.parent / 'runs'} aside to start a new store"
        )


def connect(path: Path, timeout: float | None = None, *, reading: bool = False) -> tuple[sqlite3.Connection, bool]:
    """Open (and create, check or migrate) the database at ``path``; return it and whether it
    is read-only.

    A store this process cannot write opens read-only when ``reading`` (the command only
    reads), else it is an error. A store opened for writing is checked first
    (``PRAGMA quick_check``), so a damaged file is never written to.
    """
    timeout = busy_timeout() if timeout is None else timeout
    _check_not_orphaned(path)
    if not _writable(path):
        if not reading:
            raise StoreError(f"the run store {path} is read-only: {READ_ONLY_HINT}; for this one make it "
                             "writable, or use --home DIR for a writable store")
        if not path.exists():
            raise StoreError(f"there is no run store at {path}, and its folder is read-only: "
                             "use --home DIR to name a store or a writable folder")
        return _connect_read_only(path, timeout), True
    created = not path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot make the store folder {path.parent}: {exc.strerror or exc}") from None
    conn: sqlite3.Connection | None = None
    try:
        with store_errors(path, timeout):
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if not created:
                _check_intact(conn, path)
            _use_wal(conn, timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, path)
    except BaseException:
        if conn is not None:
            conn.close()
        if created:
            _remove_empty(path)  # a failed first write (a full disk) leaves no 0-byte store behind
        raise
    return conn, False


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the database in WAL mode, waiting up to ``timeout`` for the others.

    Changing the journal mode needs the database to itself, and while another connection
    is opening a new store SQLite answers SQLITE_BUSY at once, without its busy handler
    (three threads opening a new store at once: 39 failures in 300 tries). So it is
    retried here, briefly, until the timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY") or "locked" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Open a store this process cannot write. A WAL database needs its ``-shm`` file; in a
    folder that cannot be written SQLite cannot make one, so the file is then read as
    immutable (no locks: fine for a store nobody can write through this folder)."""
    uri = path.resolve().as_uri()
    with store_errors(path, timeout):
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(uri + query, uri=True, timeout=timeout, isolation_level=None)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.OperationalError as exc:
                if "unable to open" not in str(exc) or "immutable" in query:
                    raise
        conn.row_factory = sqlite3.Row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise _newer(path, version)
    if version < SCHEMA_VERSION:
        conn.close()
        raise StoreError(f"the run store {path} is read-only and from an older fnn-tui (schema {version}): "
                         "open it once where it can be written, to upgrade it")
    return conn


def _check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged store before anything is written to it; the check reads every page,
    so stores over :data:`QUICK_CHECK_MAX_BYTES` skip it (SQLite still reports damage it meets)."""
    if path.stat().st_size > QUICK_CHECK_MAX_BYTES:
        return
    problem = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
    if problem != "ok":
        lines = [line for line in problem.splitlines() if line.strip() and not line.startswith("***")]
        raise StoreError(damaged(path, lines[0] if lines else "its integrity check failed"))


def _remove_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            for extra in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
    except OSError:
        pass


def _newer(path: Path, version: int) -> StoreError:
    return StoreError(
        f"the run store {path} has schema version {version}, newer than this fnn-tui "
        f"understands ({SCHEMA_VERSION}): upgrade fnn-tui"
    )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    if version == SCHEMA_VERSION:
        return
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            if target in _BACKFILLS:
                _BACKFILLS[target](conn)
            conn.execute(f"PRAGMA user_version = {target}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction that takes the write lock up front."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # a failed write (disk full, I/O error) may have ended it already
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the first error is the one to report
        raise
    conn.execute("COMMIT")
