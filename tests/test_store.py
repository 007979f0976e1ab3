"""The run store and the recorder: rows round-trip, epochs are written as they finish."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest

from fnn_tui.core.events import EpochFinished, RunCancelled, RunFinished
from fnn_tui.core.state import load_checkpoint
from fnn_tui.core.stopping import StopRequest
from fnn_tui.core.trainer import RunOptions
from fnn_tui.report.export import render, result_row, run_rows, write_atomic
from fnn_tui.runs.record import record_run
from fnn_tui.store.db import SCHEMA_VERSION
from fnn_tui.store.runs import Store


def test_recorded_run_round_trips(home, tiny08) -> None:
    seen: list = []
    result = record_run(home, tiny08, RunOptions(engine="torch"), lambda _run_id, e: seen.append(e))
    assert isinstance(result.end, RunFinished)
    with Store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        run = store.get_run(result.run_id)
        assert run is not None
        assert run.status == "finished" and run.epochs_done == 3 and run.epochs_total == 3
        assert run.engine == "torch" and run.device == "cpu" and run.preset == "exp08"
        assert run.preset_hash == tiny08.digest() and "samples = 300" in run.preset_toml
        assert run.torch_version and run.host and run.wall_seconds and run.wall_seconds > 0
        epochs = store.epochs(result.run_id)
        emitted = [e.metrics for e in seen if isinstance(e, EpochFinished)]
        assert epochs == emitted
        assert run.final == emitted[-1]
        assert store.list_runs("exp08")[0].id == result.run_id
        assert store.list_runs("exp01") == []
        assert store.integrity_ok()
    state = load_checkpoint(run.checkpoint_path)
    assert state.epoch == 3 and state.preset_hash == tiny08.digest()
    assert state.params.keys() == {f"layers.{i}.{k}" for i in range(4) for k in ("weight", "bias")}


def test_each_epoch_is_in_the_store_when_it_is_announced(home, tiny08) -> None:
    counts: list[int] = []

    def emit(_run_id, event) -> None:
        if isinstance(event, EpochFinished):
            with Store(home) as other:  # another connection, as another process would
                run = other.list_runs()[0]
                counts.append(len(other.epochs(run.id)))

    record_run(home, tiny08, RunOptions(engine="fused"), emit)
    assert counts == [1, 2, 3]


def test_cancelled_run_is_stored_as_cancelled(home, tiny08) -> None:
    stop = StopRequest()

    def emit(_run_id, event) -> None:
        if isinstance(event, EpochFinished):
            stop.set()

    result = record_run(home, tiny08.with_overrides(epochs=20), RunOptions(engine="torch"), emit, stop)
    assert isinstance(result.end, RunCancelled)
    with Store(home) as store:
        run = store.get_run(result.run_id)
        assert run.status == "cancelled" and run.epochs_done == 1
        assert len(store.epochs(result.run_id)) == 1


def test_two_threads_write_at_once(home, tiny08) -> None:
    errors: list[BaseException] = []

    def worker(engine: str) -> None:
        try:
            record_run(home, tiny08, RunOptions(engine=engine))
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(e,)) for e in ("torch", "fused", "fused")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(home) as store:
        runs = store.list_runs()
        assert len(runs) == 3 and all(r.status == "finished" and r.epochs_done == 3 for r in runs)


def test_export_formats_parse_back(home, tiny08, catalog) -> None:
    first = record_run(home, tiny08, RunOptions(engine="fused"))
    record_run(home, catalog.get("exp07").with_overrides(samples=200, epochs=2), RunOptions(engine="fused"))
    latest = record_run(home, tiny08, RunOptions(engine="fused"))
    with Store(home) as store:
        runs = store.list_runs()
        rows = [r for r in run_rows(runs) if r.run_id != first.run_id]
        assert [r.preset for r in rows] == ["exp07", "exp08"]
        assert rows[1].run_id == latest.run_id != first.run_id
        assert len(run_rows(runs)) == 3
        final = store.get_run(latest.run_id).final
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert parsed[1]["preset"] == "exp08" and float(parsed[1]["train_loss"]) == final.train_loss
    assert float(parsed[1]["notes_train_loss"]) == 0.002960 and parsed[1]["setting"].startswith("(20,20,30)")
    data = json.loads(render(rows, "json"))
    assert data[1]["test_ratio"] == final.test_ratio and data[0]["number"] == 7
    md = render(rows, "md").splitlines()
    assert len(md) == 4 and all(line.startswith("| ") and line.endswith(" |") for line in md[2:])
    assert md[1].count("---") == md[0].count("|") - 1
    assert {line.count("|") for line in md} == {md[0].count("|")}
    assert "0.00296" in md[3] and "1.12254" in md[3]


def test_write_atomic_refuses_a_missing_folder(tmp_path) -> None:
    target = tmp_path / "nope" / "t.md"
    with pytest.raises(OSError):
        write_atomic(target, "x")
    assert not target.parent.exists()
    write_atomic(tmp_path / "t.md", "x")
    assert (tmp_path / "t.md").read_text() == "x" and list(tmp_path.glob(".t.md.*")) == []


def test_result_row_marks_divergence(home, catalog) -> None:
    import dataclasses

    preset = catalog.get("exp04").with_overrides(samples=200, epochs=2)
    preset = dataclasses.replace(preset, training=dataclasses.replace(preset.training, lr=50.0))
    result = record_run(home, preset, RunOptions(engine="fused"))
    with Store(home) as store:
        run = store.get_run(result.run_id)
    assert run.status == "diverged" and run.diverged_epoch == 1 and "NaN" in run.message
    assert result_row(run).status == "diverged@1"
    assert run_rows([run])[0].status == "diverged@1"


def test_a_version_1_store_is_migrated(home) -> None:
    import sqlite3

    from fnn_tui.store.db import _MIGRATIONS

    home.mkdir(parents=True)
    conn = sqlite3.connect(home / "runs.sqlite3")
    conn.executescript(_MIGRATIONS[1] + "; PRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO runs (preset, number, preset_toml, preset_hash, seed, engine, device, status, epochs_total,"
        " started_at, torch_version, host) VALUES ('exp08', 8, '', 'h', 0, 'torch', 'cpu', 'finished', 3, 1.0, 't', 'h')"
    )
    conn.commit()
    conn.close()
    with Store(home) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        (run,) = store.list_runs()
        assert run.preset == "exp08" and run.steps_per_epoch == 0 and run.progress_epoch == 0


def test_a_store_from_a_newer_version_is_refused(home) -> None:
    import sqlite3

    from fnn_tui.store.db import StoreError

    home.mkdir(parents=True)
    conn = sqlite3.connect(home / "runs.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(home)
