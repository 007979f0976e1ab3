"""Reading and writing runs and epochs; rows become small dataclasses here and nowhere else.

This module and :mod:`fnn_tui.store.db` hold every SQL statement of fnn-tui. Nothing here
trains, spawns or signals: whether a run's process is alive is asked of the caller.
"""

from __future__ import annotations

import functools
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from fnn_tui.core.events import EpochMetrics
from fnn_tui.core.presets import Preset
from fnn_tui.core.status import ACTIVE, RunStatus
from fnn_tui.processes import own_mark, start_mark
from fnn_tui.store.db import DB_NAME, StoreReplacedError, connect, store_errors, transaction

T = TypeVar("T", bound=type)
STALE_SECONDS = 60.0  # a heartbeat older than this, from a process we cannot check, means crashed


@dataclass(frozen=True)
class RunRecord:
    """One stored run with its final (last finished epoch's) metrics, if any."""

    id: int
    preset: str
    number: int
    preset_toml: str
    preset_hash: str
    seed: int
    engine: str
    device: str
    status: RunStatus
    epochs_total: int
    epochs_done: int
    started_at: float
    ended_at: float | None
    wall_seconds: float | None
    torch_version: str
    host: str
    pid: int | None
    pid_mark: str | None  # when and where that pid's process started (fnn_tui/processes.py)
    heartbeat_at: float | None
    message: str | None
    diverged_epoch: int | None
    diverged_step: int | None
    run_dir: str
    steps_per_epoch: int
    progress_epoch: int
    progress_step: int
    study: str  # the settings' hash without the seed: the runs of one study share it
    reason: str | None  # why it diverged, in the trainer's words (RunDiverged.reason)
    grouped: int  # 1: trains as a lane of the multi-seed kernel (and resumes on it)
    final: EpochMetrics | None
    home: Path
    excluded: bool = False  # the user left it out of its study (kept in the store all the same)
    tags: tuple[str, ...] = ()  # the user's tags, sorted
    note: str = ""  # the user's note on it
    repeat_of: int | None = None  # a repeat made on purpose of this run (same settings and seed)

    @property
    def folder(self) -> Path:
        """The run's folder, always ``runs/NNNNNN`` inside the store: the stored ``run_dir`` is
        never trusted, so a copied or moved store works in place and nothing is written outside it."""
        return run_folder(self.home, self.id)

    @property
    def checkpoint_path(self) -> Path:
        """Where this run's latest checkpoint lives."""
        return self.folder / "checkpoint.pt"


def run_folder(home: Path, run_id: int) -> Path:
    """The folder of run ``run_id`` in the store at ``home``."""
    return home / "runs" / f"{int(run_id):06d}"


def _metrics(row: sqlite3.Row) -> EpochMetrics:
    return EpochMetrics(
        epoch=row["epoch"],
        train_loss=row["train_loss"],
        train_ratio=row["train_ratio"],
        test_loss=row["test_loss"],
        test_ratio=row["test_ratio"],
        test_mae=row["test_mae"],
        lr=row["lr"],
        seconds=row["seconds"],
        dead=bool(row["dead"]),
    )


_INSERT_EPOCH = ("INSERT OR REPLACE INTO epochs (run_id, epoch, train_loss, train_ratio, test_loss, test_ratio,"
                 " test_mae, lr, seconds, dead, fit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _epoch_row(run_id: int, m: EpochMetrics, fit: bytes | None) -> tuple[object, ...]:
    return (run_id, m.epoch, m.train_loss, m.train_ratio, m.test_loss, m.test_ratio, m.test_mae, m.lr,
            m.seconds, int(m.dead), fit)


_DERIVED = ("final", "home", "status", "excluded", "tags")


def _run(row: sqlite3.Row, final: EpochMetrics | None, home: Path) -> RunRecord:
    keys = [f for f in RunRecord.__dataclass_fields__ if f not in _DERIVED]
    return RunRecord(**{k: row[k] for k in keys}, status=RunStatus(row["status"]), final=final, home=home,
                     excluded=bool(row["excluded"]), tags=split_tags(row["tags"]))


TAG_MAX = 40


class TagError(ValueError):
    """A tag that cannot be stored; the message says what a tag may be."""


def check_tag(tag: str) -> str:
    """``tag`` as stored: letters, digits and ``_ . : + -``, 1 to 40 characters."""
    tag = tag.strip()
    if not tag or len(tag) > TAG_MAX or not all(c.isalnum() or c in "_.:+-" for c in tag):
        raise TagError(f"cannot use {tag!r} as a tag: use 1 to {TAG_MAX} letters, digits or _ . : + -")
    return tag


def split_tags(text: str) -> tuple[str, ...]:
    """The stored tags column (``,a,b,``) as a sorted tuple."""
    return tuple(sorted(t for t in text.split(",") if t))


def _join_tags(tags: set[str]) -> str:
    # kept with a comma at both ends, so one tag can be found with instr(tags, ',tag,')
    return "," + ",".join(sorted(tags)) + "," if tags else ""


def _guarded(cls: T) -> T:
    """Every public method of the store turns SQLite's errors into one :class:`StoreError`
    line (:func:`fnn_tui.store.db.translate`), so no caller ever sees a ``sqlite3`` traceback."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(self: Store, *args: object, **kwargs: object) -> object:
            with store_errors(self.path):
                return method(self, *args, **kwargs)

        return guarded

    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, wrap(value))
    return cls


@_guarded
class Store:
    """A connection to the run store in ``home``; make one per thread or process.

    ``reading``: the caller only reads, so a store it cannot write opens read-only
    (``read_only`` says so) instead of being an error.
    """

    def __init__(self, home: Path, *, reading: bool = False) -> None:
        self.home = home
        self.path = home / DB_NAME
        self.conn, self.read_only = connect(self.path, reading=reading)
        st = os.stat(self.path)
        self.identity = (st.st_dev, st.st_ino)  # to notice the file removed or replaced under us

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, refused once the file we opened is no longer at our path: our
        connection would write into a deleted file, and its ``-wal`` (found by name) could
        be another store's."""
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self.identity
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreReplacedError(f"the run store {self.path} was removed or replaced while this process had it open")
        with transaction(self.conn) as c:
            yield c

    # --- writing ---------------------------------------------------------------

    def create_run(self, preset: Preset, *, engine: str, device: str,
                   status: RunStatus = RunStatus.RUNNING, unless_taken: bool = False,
                   repeat_of: int | None = None) -> int | None:
        """Insert a run (``running``, or ``queued`` for a background process) and make its folder;
        ``repeat_of`` records it as a repeat made on purpose of that run (see :meth:`mark_repeat`).

        ``unless_taken``: only if no run of the same study and seed is queued, training,
        finished or diverged, checked in the same transaction (so of two commands planning one
        study at once, one gets each seed); ``None`` when one is.
        """
        assert status in ACTIVE
        import torch  # (here, not at the top: reading the store does not load torch)

        now = time.time()
        with self._write() as c:
            if unless_taken:
                active = [st.value for st in ACTIVE]
                final = [st.value for st in RunStatus if st.final]
                taken = c.execute(  # an excluded result does not count: the seed is to do again
                    "SELECT id FROM runs WHERE preset = ? AND study = ? AND seed = ?"
                    f" AND (status IN ({','.join('?' * len(active))})"
                    f" OR (status IN ({','.join('?' * len(final))}) AND excluded = 0)) LIMIT 1",
                    (preset.name, preset.study_digest(), preset.data.seed, *active, *final)).fetchone()
                if taken is not None:
                    return None
            cur = c.execute(
                "INSERT INTO runs (preset, number, preset_toml, preset_hash, seed, engine, device, status,"
                " epochs_total, started_at, torch_version, host, pid, pid_mark, heartbeat_at, study, repeat_of)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    preset.name, preset.experiment.number, preset.to_toml(), preset.digest(),
                    preset.data.seed, engine, device, status.value, preset.training.epochs, now,
                    torch.__version__, socket.gethostname(), os.getpid(), own_mark(), now, preset.study_digest(),
                    repeat_of,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            run_dir = run_folder(self.home, run_id)
            c.execute("UPDATE runs SET run_dir = ? WHERE id = ?", (str(run_dir.relative_to(self.home)), run_id))
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_id

    def add_epoch(self, run_id: int, m: EpochMetrics, fit: bytes | None = None) -> None:
        """Store one finished epoch (with y_hat on the plot grid when given) and advance the
        run's count and heartbeat, atomically."""
        self.add_epochs([(run_id, m, fit)])

    def add_epochs(self, items: list[tuple[int, EpochMetrics, bytes | None]]) -> None:
        """Store one epoch of each of several runs (seeds trained together) in one transaction."""
        now = time.time()
        with self._write() as c:
            c.executemany(_INSERT_EPOCH, [_epoch_row(run_id, m, fit) for run_id, m, fit in items],
            )
            c.executemany("UPDATE runs SET epochs_done = ?, heartbeat_at = ? WHERE id = ?",
                          [(m.epoch, now, run_id) for run_id, m, _ in items])

    def heartbeat(self, run_id: int | list[int], epoch: int | None = None, step: int | None = None) -> None:
        """Say the run's (or the runs') process is alive, and where it is inside the epoch."""
        ids = run_id if isinstance(run_id, list) else [run_id]
        now, pid, mark = time.time(), os.getpid(), own_mark()
        with self._write() as c:
            c.executemany(
                "UPDATE runs SET heartbeat_at = ?, pid = ?, pid_mark = ?, progress_epoch = COALESCE(?, progress_epoch),"
                " progress_step = COALESCE(?, progress_step) WHERE id = ?",
                [(now, pid, mark, epoch, step, rid) for rid in ids],
            )

    def set_grouped(self, run_ids: list[int]) -> None:
        """These runs train as lanes of the multi-seed kernel."""
        with self._write() as c:
            c.executemany("UPDATE runs SET grouped = 1 WHERE id = ?", [(rid,) for rid in run_ids])

    def set_pid(self, run_ids: list[int], pid: int) -> None:
        """Record the process that will train these runs (a child of this one: its start mark
        is read now, while it cannot have been reaped)."""
        mark = start_mark(pid)
        with self._write() as c:
            c.executemany("UPDATE runs SET pid = ?, pid_mark = ?, heartbeat_at = ? WHERE id = ?",
                          [(pid, mark, time.time(), rid) for rid in run_ids])

    def start_run(self, run_id: int, *, steps_per_epoch: int) -> None:
        """A queued or resumed run is training now, in this process."""
        now = time.time()
        with self._write() as c:
            c.execute(
                "UPDATE runs SET status = 'running', pid = ?, pid_mark = ?, heartbeat_at = ?, steps_per_epoch = ?,"
                " started_at = CASE WHEN status = 'queued' THEN ? ELSE started_at END WHERE id = ?",
                (os.getpid(), own_mark(), now, steps_per_epoch, now, run_id),
            )

    def end_run(
        self,
        run_id: int,
        status: RunStatus,
        *,
        wall_seconds: float | None = None,
        message: str | None = None,
        diverged_at: tuple[int, int] | None = None,
        reason: str | None = None,
    ) -> None:
        """Record how the run ended. ``wall_seconds`` is the time of this leg of the run: it
        is added to the legs before, so a resumed run's time is the whole time it trained."""
        status = RunStatus(status)
        epoch, step = diverged_at if diverged_at else (None, None)
        with self._write() as c:
            c.execute(
                "UPDATE runs SET status = ?, ended_at = ?,"
                " wall_seconds = CASE WHEN ? IS NULL THEN wall_seconds ELSE COALESCE(wall_seconds, 0) + ? END,"
                " message = ?, diverged_epoch = ?, diverged_step = ?, reason = ? WHERE id = ?",
                (status.value, time.time(), wall_seconds, wall_seconds, message, epoch, step, reason, run_id),
            )

    def reopen_run(self, run_id: int, *, from_epoch: int, device: str | None = None,
                   restore: tuple[EpochMetrics, bytes | None] | None = None) -> None:
        """Mark a run running again (resume), dropping epochs after ``from_epoch``; ``device``
        records where it continues when that changed. ``restore`` is epoch ``from_epoch``'s
        row (metrics and fit) taken from the checkpoint when the store missed it."""
        with self._write() as c:
            c.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, from_epoch))
            if restore is not None:
                m, fit = restore
                assert m.epoch == from_epoch
                c.execute(_INSERT_EPOCH, _epoch_row(run_id, m, fit))
            c.execute(
                "UPDATE runs SET status = 'running', epochs_done = ?, ended_at = NULL, message = NULL,"
                " diverged_epoch = NULL, diverged_step = NULL, reason = NULL, pid = ?, pid_mark = ?, heartbeat_at = ?,"
                " device = COALESCE(?, device) WHERE id = ?",
                (from_epoch, os.getpid(), own_mark(), time.time(), device, run_id),
            )

    def move_run(self, run_id: int, *, device: str, engine: str) -> None:
        """Record that a claimed run continues on another device or engine (resume ``--device``)."""
        with self._write() as c:
            c.execute("UPDATE runs SET device = ?, engine = ? WHERE id = ?", (device, engine, run_id))

    def claim_run(self, run_id: int, allowed: tuple[RunStatus, ...], *, status: RunStatus,
                  epochs_done: int) -> bool:
        """Take a run for resuming, atomically: set ``status`` (running, or queued for a
        background process) and this process's pid only if the run is still in one of the
        ``allowed`` statuses with ``epochs_done`` epochs. False when another process got it first."""
        assert status in ACTIVE
        marks = ",".join("?" * len(allowed))
        with self._write() as c:
            cur = c.execute(
                f"UPDATE runs SET status = ?, pid = ?, pid_mark = ?, heartbeat_at = ?, ended_at = NULL"
                f" WHERE id = ? AND epochs_done = ? AND status IN ({marks})",
                (RunStatus(status).value, os.getpid(), own_mark(), time.time(), run_id, epochs_done,
                 *(RunStatus(st).value for st in allowed)),
            )
            return cur.rowcount == 1

    def mark_stale_as_crashed(self, process_alive: Callable[[int | None, str | None], bool | None],
                              grace: float = 5.0, stale_after: float = STALE_SECONDS) -> list[int]:
        """Active runs whose process is gone become 'crashed' (queued ones: 'cancelled').

        ``process_alive(pid, pid_mark)`` says whether a run's process is alive: for a run
        of this host, ``False`` (known dead) crashes it at once and ``True`` keeps it;
        ``None`` (cannot tell here: another boot or pid namespace) waits, as a run of
        another host does, for a heartbeat older than ``stale_after``. ``grace`` is the
        wait for a run of this host with no pid recorded. The message says which it was.
        :func:`fnn_tui.runs.liveness.reap` is the caller with the process check.
        """
        if self.read_only:
            return []  # nothing can be recorded in a read-only store
        now = time.time()
        host = socket.gethostname()
        dead: list[tuple[int, RunStatus, str]] = []
        rows = self.conn.execute(
            "SELECT id, pid, pid_mark, host, heartbeat_at, status FROM runs"
            f" WHERE status IN ({','.join('?' * len(ACTIVE))})",
            [st.value for st in ACTIVE],
        ).fetchall()
        for row in rows:
            age = now - (row["heartbeat_at"] or 0)
            alive = process_alive(row["pid"], row["pid_mark"]) if row["host"] == host else None
            if alive is False:
                why = f"its process (pid {row['pid']}) on this machine is gone"
            elif alive is None and row["host"] == host and not row["pid"]:
                if age <= grace:
                    continue
                why = f"no process was recorded for it and no heartbeat came for {age:.0f} s"
            elif alive is None and age > stale_after:
                where = f"host {row['host']}" if row["host"] != host else "another boot or container of this host"
                why = f"no heartbeat for {age:.0f} s from {where}, where its process cannot be checked from here"
            else:
                continue
            dead.append((row["id"], RunStatus(row["status"]), why))
        # queued runs that never started (no epoch) hold nothing: gone with their process
        # (a command killed before it reached them), they are deleted, not kept as empty rows
        never = [rid for rid, st, _ in dead if st == RunStatus.QUEUED and self._never_started(rid)]
        self.forget_queued(never)
        dead = [d for d in dead if d[0] not in never]
        for run_id, status, why in dead:
            new, message = (
                (RunStatus.CRASHED, f"the training process ended without a word ({why}); `fnn-tui resume` continues it")
                if status == RunStatus.RUNNING
                else (RunStatus.CANCELLED, f"its background process ended before it started ({why})")
            )
            with self._write() as c:
                c.execute("UPDATE runs SET status = ?, ended_at = ?, message = ? WHERE id = ? AND status = ?",
                          (new.value, now, message, run_id, status.value))
        return [run_id for run_id, status, _ in dead if status == RunStatus.RUNNING]

    def forget_queued(self, run_ids: list[int]) -> list[int]:
        """Delete runs that were queued and never started (no epoch, still queued): a stopped
        queue leaves nothing of them behind. Returns the ids deleted."""
        if not run_ids:
            return []  # no write at all: a reader must not wait for another process's lock
        gone = []
        with self._write() as c:
            for rid in run_ids:
                cur = c.execute("DELETE FROM runs WHERE id = ? AND status = 'queued' AND epochs_done = 0"
                                " AND NOT EXISTS (SELECT 1 FROM epochs WHERE run_id = ?)", (rid, rid))
                if cur.rowcount:
                    gone.append(rid)
        for rid in gone:  # its folder, when nothing was written into it
            try:
                run_folder(self.home, rid).rmdir()
            except OSError:
                pass
        return gone

    def set_excluded(self, run_ids: list[int], excluded: bool) -> list[int]:
        """Leave runs out of their studies (or take them back in); they stay in the store.
        Returns the ids that exist, in the order given."""
        with self._write() as c:
            found = [rid for rid in run_ids if c.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone()]
            c.executemany("UPDATE runs SET excluded = ? WHERE id = ?", [(int(excluded), rid) for rid in found])
        return found

    def set_tag(self, run_id: int, tag: str, *, present: bool = True) -> tuple[str, ...] | None:
        """Add (or with ``present=False`` remove) a tag; the run's tags after, or ``None``
        when there is no such run. :class:`TagError` for a tag that cannot be stored."""
        tag = check_tag(tag)
        with self._write() as c:
            row = c.execute("SELECT tags FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            tags = set(split_tags(row["tags"]))
            tags = tags | {tag} if present else tags - {tag}
            c.execute("UPDATE runs SET tags = ? WHERE id = ?", (_join_tags(tags), run_id))
        return tuple(sorted(tags))

    def set_note(self, run_id: int, note: str) -> bool:
        """Set the run's note ("" clears it); False when there is no such run."""
        with self._write() as c:
            return c.execute("UPDATE runs SET note = ? WHERE id = ?", (note.strip(), run_id)).rowcount == 1

    def mark_repeat(self, run_id: int, of: int) -> None:
        """Record run ``run_id`` as a repeat made on purpose of run ``of`` (same settings and
        seed, trained again when asked, e.g. ``run --again``). The report still counts one run
        per seed (:mod:`fnn_tui.report.studies`); this says why the second one exists."""
        with self._write() as c:
            c.execute("UPDATE runs SET repeat_of = ? WHERE id = ?", (of, run_id))

    def seed_runs(self, study: str, seed: int) -> list[RunRecord]:
        """Every run of one seed of one study (same settings, same seed), newest first: what a
        planner looks at before training that seed again."""
        rows = self.conn.execute("SELECT * FROM runs WHERE study = ? AND seed = ? ORDER BY started_at DESC, id DESC",
                                 (study, seed)).fetchall()
        return [_run(r, self._last_epoch(r["id"]), self.home) for r in rows]

    # --- reading ---------------------------------------------------------------

    def get_run(self, run_id: int) -> RunRecord | None:
        """One run by id, or ``None``."""
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run(row, self._last_epoch(run_id), self.home)

    def list_runs(self, preset: str | None = None, *, statuses: tuple[RunStatus, ...] | None = None,
                  limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally for one preset and some statuses."""
        sql, args = "SELECT * FROM runs", []
        where = []
        if preset is not None:
            where.append("preset = ?")
            args.append(preset)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(RunStatus(st).value for st in statuses)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.conn.execute(sql, args).fetchall()
        return [_run(r, self._last_epoch(r["id"]), self.home) for r in rows]

    def epochs(self, run_id: int, after: int = 0) -> list[EpochMetrics]:
        """The stored epochs of a run after epoch ``after``, in order."""
        rows = self.conn.execute(
            "SELECT * FROM epochs WHERE run_id = ? AND epoch > ? ORDER BY epoch", (run_id, after)
        ).fetchall()
        return [_metrics(r) for r in rows]

    def fits(self, run_id: int, after: int = 0) -> list[tuple[int, bytes]]:
        """The stored fits of a run (y_hat on the plot grid, encoded by core.grid) after epoch
        ``after``, by epoch."""
        rows = self.conn.execute(
            "SELECT epoch, fit FROM epochs WHERE run_id = ? AND epoch > ? AND fit IS NOT NULL ORDER BY epoch",
            (run_id, after),
        ).fetchall()
        return [(r["epoch"], bytes(r["fit"])) for r in rows]

    def active_runs(self) -> list[RunRecord]:
        """Runs queued or training now, oldest first."""
        return sorted(self.list_runs(statuses=ACTIVE), key=lambda r: r.id)

    def _never_started(self, run_id: int) -> bool:
        row = self.conn.execute("SELECT epochs_done, (SELECT COUNT(*) FROM epochs WHERE run_id = ?) AS n"
                                " FROM runs WHERE id = ?", (run_id, run_id)).fetchone()
        return row is not None and row["epochs_done"] == 0 and row["n"] == 0

    def _last_epoch(self, run_id: int) -> EpochMetrics | None:
        row = self.conn.execute(
            "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch DESC LIMIT 1", (run_id,)
        ).fetchone()
        return None if row is None else _metrics(row)

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

