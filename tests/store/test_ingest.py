from __future__ import annotations

import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from agentprof._config import StoreLocation, resolve_store_location
from agentprof.store import IngestResult, open_store, schema
from agentprof.store._ingest import _load, ingest_spool, loader_for

from .helpers import T0, count_rows, model_call_row, model_calls, span_id, step_row, task_row, write_segments


def test_segments_are_ingested_once_and_deleted(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [model_calls(0, 5), model_calls(5, 5), [task_row(100)]])
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=3, rows=11)
        assert store.ingest_spool() == IngestResult()
        assert count_rows(store.engine, "model_calls") == 10
        assert count_rows(store.engine, "tasks") == 1
        assert count_rows(store.engine, "spans") == 1  # the task: a model call is stored in model_calls alone
        assert count_rows(store.engine, "ingested_segments") == 3
    assert list(spool.glob("seg-*")) == []


def test_a_backlog_loads_in_batches_of_bounded_size(location: StoreLocation, spool: Path) -> None:
    """Each batch is its own transaction (its own ``ingested_at``); a bad segment costs only itself."""
    paths = write_segments(spool, [model_calls(n * 10, 10) for n in range(7)])
    sizes = [path.stat().st_size for path in paths]
    assert max(sizes) < 3 * min(sizes)  # so that a limit of two segments' size makes batches of two
    (spool / "seg-9-1-000001-garbage.jsonl").write_bytes(b"not json\n")  # lists last: in the 4th batch
    with open_store(location, ingest=False) as store:
        result = ingest_spool(store.engine, location, batch_bytes=2 * max(sizes))
        assert result == IngestResult(segments=7, rows=70, bad_segments=1)
        assert count_rows(store.engine, "model_calls") == 70
        with store.engine.connect() as conn:
            batches = conn.execute(select(schema.ingested_segments.c.ingested_at).distinct()).all()
    # three batches of two, then the fourth (the 7th segment and the garbage) failed in bulk and was
    # loaded one by one: the 7th in a transaction of its own, the garbage quarantined
    assert len(batches) == 4
    assert list(spool.glob("seg-*")) == []


def test_crash_after_commit_before_delete_is_not_double_counted(
    location: StoreLocation, spool: Path, tmp_path: Path
) -> None:
    paths = write_segments(spool, [model_calls(0, 4), model_calls(4, 4)])
    backup = tmp_path / "backup"
    backup.mkdir()
    for path in paths:
        shutil.copy2(path, backup / path.name)
    with open_store(location) as store:
        assert count_rows(store.engine, "model_calls") == 8
    for path in paths:  # the files reappear, as if the process died before deleting them
        shutil.copy2(backup / path.name, path)
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(skipped_segments=2)
        assert count_rows(store.engine, "model_calls") == 8
    assert list(spool.glob("seg-*")) == []


def test_duplicate_span_ids_are_stored_once(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [model_calls(0, 3), model_calls(2, 3)])  # span 2 in both segments
    with open_store(location) as store:
        assert count_rows(store.engine, "model_calls") == 5
    write_segments(spool, [model_calls(4, 2)])  # span 4 already stored by an earlier ingest
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=1, rows=2)
        assert count_rows(store.engine, "model_calls") == 6
        assert count_rows(store.engine, "spans") == 0


def test_garbage_and_truncated_segments_move_to_bad(location: StoreLocation, spool: Path) -> None:
    good = write_segments(spool, [model_calls(0, 3), model_calls(3, 3)])
    garbage = spool / "seg-1-1-000001-garbage.jsonl"
    garbage.write_bytes(b"\x00\xffnot json at all\n")
    truncated = spool / "seg-2-1-000001-truncated.jsonl"
    truncated.write_text(
        '{"kind": "model_call", "span_id": "00000000000000aa", "trace_id": "ab", "na', encoding="utf-8"
    )
    with open_store(location, ingest=False) as store:
        result = store.ingest_spool()
        assert result == IngestResult(segments=2, rows=6, bad_segments=2)
        assert count_rows(store.engine, "model_calls") == 6
    assert sorted(p.name for p in (spool / "bad").iterdir()) == sorted([garbage.name, truncated.name])
    assert not any(path.exists() for path in good)


def test_segment_missing_required_values_moves_to_bad(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [model_calls(0, 2), [model_call_row(9, start_time_ns=None, end_time_ns=None)]])
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=1, rows=2, bad_segments=1)


def test_segment_vanishing_between_listing_and_reading_is_skipped(location: StoreLocation, spool: Path) -> None:
    present = write_segments(spool, [model_calls(0, 2)])
    vanished = spool / "seg-0-0-000000-vanished.jsonl"
    with open_store(location, ingest=False) as store, store.engine.connect() as conn:
        outcome = _load(conn, loader_for(store.engine), [vanished, *present])
        assert outcome.loaded == present
        assert outcome.bad == 0
        assert count_rows(store.engine, "model_calls") == 2
    assert not (spool / "bad").exists()


def test_conversions(location: StoreLocation, spool: Path) -> None:
    rows = [
        task_row(1, success=None, outcome_explicit=None),
        task_row(2, status="error", error_type="ValueError"),
        task_row(3, success=True, score=0.5, outcome_explicit=True, status="error"),
        step_row(10, task=1),
        model_call_row(20, task=1, cost="1E-9", input_cost_usd="0.123456789012345678"),
        model_call_row(21, cost=None, usage_known=None),
        model_call_row(22, task=1, task_name=None, step_name=None),
    ]
    write_segments(spool, [rows])
    with open_store(location) as store, store.engine.connect() as conn:
        tasks = {r.task_id: r for r in conn.execute(select(schema.tasks))}
        calls = {r.span_id: r for r in conn.execute(select(schema.model_calls))}
        spans = {r.span_id: r for r in conn.execute(select(schema.spans))}
    assert tasks[span_id(1)].name == "support_ticket"
    assert tasks[span_id(1)].success is True and tasks[span_id(1)].outcome_explicit is False
    assert tasks[span_id(2)].success is False
    assert tasks[span_id(3)].success is True and tasks[span_id(3)].score == 0.5
    assert tasks[span_id(1)].start_time == datetime(2025, 10, 9, 8, 53, 20, 1000)
    assert tasks[span_id(1)].duration_ms == 2500.0
    call = calls[span_id(20)]
    assert call.cost_usd == Decimal("0.000000001")
    assert call.input_cost_usd == Decimal("0.123456789012345678")
    # schema.py's Float is a 4-byte REAL in DuckDB (reported to the lead): close, not exact.
    assert abs(call.duration_ms - 1234.567) < 1e-3
    assert call.start_time_ns == T0 + 20_000_000
    assert calls[span_id(21)].priced is False and calls[span_id(21)].cost_usd is None
    assert calls[span_id(21)].usage_known is True  # tokens present
    assert (calls[span_id(21)].task_name, calls[span_id(21)].step_name) == ("(untracked)", "(task)")
    assert (calls[span_id(22)].task_name, calls[span_id(22)].step_name) == ("(untracked)", "(task)")
    assert {s.kind for s in spans.values()} == {"task", "step"}  # model calls are in model_calls alone
    assert spans[span_id(10)].task_name == "support_ticket"


def test_generic_sqlalchemy_path_matches_duckdb(tmp_path: Path, monkeypatch: object) -> None:
    rows = [task_row(1), step_row(2, task=1), *model_calls(10, 5, task=1), model_call_row(20, cost="2.5E-7")]
    duck = resolve_store_location(tmp_path / "duck")
    write_segments(duck.spool_dir, [rows[:4], rows[3:]])  # one duplicated span across segments
    sqlite_file = tmp_path / "generic.sqlite"
    generic = StoreLocation(f"sqlite:///{sqlite_file}", None, tmp_path / "generic-spool", "generic.sqlite")
    write_segments(generic.spool_dir, [rows[:4], rows[3:], rows[:1]])
    (generic.spool_dir / "seg-9-9-000009-bad.jsonl").write_text("{broken\n", encoding="utf-8")
    with open_store(generic, ingest=False) as store:
        assert store.engine.dialect.name == "sqlite"
        result = store.ingest_spool()
        assert result == IngestResult(segments=3, rows=len(rows) + 2, bad_segments=1)
        assert store.ingest_spool() == IngestResult()
        generic_rows = _dump(store.engine)
    with open_store(duck) as store:
        duck_rows = _dump(store.engine)
    assert generic_rows == duck_rows
    assert len(generic_rows["model_calls"]) == 6


def _dump(engine: object) -> dict[str, list[tuple[object, ...]]]:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for table in (schema.tasks, schema.spans, schema.model_calls):
            key = next(iter(table.primary_key.columns))
            # Floats are rounded: schema.py's Float is a 4-byte REAL in DuckDB, a double in SQLite.
            out[table.name] = [
                tuple(round(value, 2) if isinstance(value, float) else value for value in row)
                for row in conn.execute(select(table).order_by(key))
            ]
    return out
