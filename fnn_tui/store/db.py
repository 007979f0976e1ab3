"""The SQLite run store: schema, migrations and short write transactions.

One connection per thread or process (``sqlite3`` connections stay in the thread that
opened them). WAL mode and a busy timeout let the CLI, the app and a detached trainer use
one store at once; every write is a short ``BEGIN IMMEDIATE`` transaction, so a killed
writer leaves whole epochs only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 3
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
    """The store cannot be opened or is from a newer fnn-tui."""


def connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (and create or migrate) the database at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the run store {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    _migrate(conn, path)
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the run store {path} has schema version {version}, newer than this fnn-tui "
            f"understands ({SCHEMA_VERSION}): upgrade fnn-tui"
        )
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
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
