"""What the store keeps for seeds, dead networks and plots: the study of a run, the dead
flag of every epoch and y_hat on the plot grid every few epochs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from fnn_tui.core.grid import GRID_POINTS, decode, grid_x
from fnn_tui.core.trainer import RunOptions, fit_due
from fnn_tui.runs.record import record_run, stored_preset
from fnn_tui.store.db import SCHEMA_VERSION
from fnn_tui.store.runs import Store


def test_fits_are_due_about_thirty_times_a_run_and_always_at_the_ends() -> None:
    due = [e for e in range(1, 151) if fit_due(e, 150)]
    assert due[0] == 1 and due[-1] == 150 and 28 <= len(due) <= 32
    assert [e for e in range(1, 4) if fit_due(e, 3)] == [1, 2, 3]


def test_a_run_stores_its_study_dead_flags_and_fits(home: Path, tiny08) -> None:
    preset = tiny08.with_overrides(epochs=3, seed=5)
    result = record_run(home, preset, RunOptions(engine="fused"))
    other_seed = record_run(home, preset.with_overrides(seed=6), RunOptions(engine="fused"))
    other_epochs = record_run(home, preset.with_overrides(epochs=2), RunOptions(engine="fused"))
    with Store(home) as store:
        run = store.get_run(result.run_id)
        fits = store.fits(result.run_id)
        epochs = store.epochs(result.run_id)
        studies = {r.id: r.study for r in store.list_runs()}
    assert run.study == preset.study_digest() == studies[other_seed.run_id] != studies[other_epochs.run_id]
    assert [e.dead for e in epochs] == [False, False, False]
    assert [epoch for epoch, _ in fits] == [1, 2, 3]
    last = decode(fits[-1][1])
    assert last.shape == (GRID_POINTS,) and np.all(np.isfinite(last)) and np.ptp(last) > 0
    # the stored fit is the network's prediction at the last checkpoint
    from fnn_tui.core.grid import predict
    from fnn_tui.core.state import load_checkpoint

    state = load_checkpoint(run.checkpoint_path)
    np.testing.assert_allclose(last, predict(stored_preset(run), state.params, grid_x(preset)), rtol=1e-5, atol=1e-5)


def test_a_version_2_store_gets_the_study_of_its_runs(home: Path, tiny08) -> None:
    result = record_run(home, tiny08, RunOptions(engine="fused"))
    db = home / "runs.sqlite3"
    conn = sqlite3.connect(db)  # take the store back to version 2, as an older fnn-tui left it
    conn.executescript("ALTER TABLE runs DROP COLUMN pid_mark;"  # version 5
                       "ALTER TABLE runs DROP COLUMN reason; ALTER TABLE runs DROP COLUMN grouped;"  # version 4
                       "DROP INDEX runs_study; ALTER TABLE runs DROP COLUMN study;"
                       "ALTER TABLE epochs DROP COLUMN dead; ALTER TABLE epochs DROP COLUMN fit;"
                       "ALTER TABLE runs DROP COLUMN excluded; ALTER TABLE runs DROP COLUMN tags;"
                       "ALTER TABLE runs DROP COLUMN note; ALTER TABLE runs DROP COLUMN repeat_of;"
                       "PRAGMA user_version = 2;")
    conn.close()
    with Store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        run = store.get_run(result.run_id)
        assert run.study == tiny08.study_digest()
        assert store.fits(result.run_id) == [] and len(store.epochs(result.run_id)) == 3
