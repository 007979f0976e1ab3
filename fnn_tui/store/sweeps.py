"""Stored sweeps: a name, a base preset (resolved, with the overrides it was asked with), a
grid of settings and the seeds. The sweep's runs are ordinary runs in ``runs``: each
variant's runs are found by its study (:meth:`~fnn_tui.core.presets.Preset.study_digest`),
so nothing links them here and a run trained outside the sweep with the same settings and
seed counts as done."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from fnn_tui.store.db import store_errors
from fnn_tui.store.runs import Store


@dataclass(frozen=True)
class SweepRecord:
    """One stored sweep."""

    id: int
    name: str
    preset: str
    base_toml: str  # the base preset, fully resolved (epochs, samples as asked), seed 0
    grid: list[list[Any]]  # :meth:`fnn_tui.core.variants.Grid.to_data`
    seeds: list[int]
    created_at: float


def _sweep(row: sqlite3.Row) -> SweepRecord:
    return SweepRecord(id=row["id"], name=row["name"], preset=row["preset"], base_toml=row["base_toml"],
                       grid=json.loads(row["grid"]), seeds=json.loads(row["seeds"]), created_at=row["created_at"])


def get_sweep(store: Store, name: str) -> SweepRecord | None:
    """The sweep called ``name``, or ``None``."""
    with store_errors(store.path):
        row = store.conn.execute("SELECT * FROM sweeps WHERE name = ?", (name,)).fetchone()
    return None if row is None else _sweep(row)


def list_sweeps(store: Store) -> list[SweepRecord]:
    """Every stored sweep, newest first."""
    with store_errors(store.path):
        rows = store.conn.execute("SELECT * FROM sweeps ORDER BY created_at DESC, id DESC").fetchall()
    return [_sweep(r) for r in rows]


def save_sweep(store: Store, *, name: str, preset: str, base_toml: str, grid: list[list[Any]],
               seeds: list[int]) -> SweepRecord:
    """Store a sweep, or update the seeds of the one of that name (its grid and base must be
    the same: the caller checks). Returns it as stored."""
    with store_errors(store.path):
        with store._write() as c:
            c.execute(
                "INSERT INTO sweeps (name, preset, base_toml, grid, seeds, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET seeds = excluded.seeds",
                (name, preset, base_toml, json.dumps(grid), json.dumps(sorted(seeds)), time.time()),
            )
    found = get_sweep(store, name)
    assert found is not None
    return found
