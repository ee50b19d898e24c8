from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from sqlalchemy import inspect, select

import agentprof.store as store_package
from agentprof._config import StoreLocation
from agentprof.exceptions import StoreSchemaError
from agentprof.store import MIGRATIONS, SCHEMA_VERSION, open_store, schema
from agentprof.store._migrations import applied_migrations, migrate, read_meta

from .helpers import model_call_row, model_calls, span_id, step_row, task_row, write_segments


def test_public_names_are_exactly_all() -> None:
    public = sorted(
        name for name in vars(store_package) if not name.startswith("_") and name not in {"schema", "annotations"}
    )
    assert store_package.__all__ == sorted(store_package.__all__)
    assert store_package.__all__ == public


def test_new_store_records_every_migration_and_meta(location: StoreLocation) -> None:
    with open_store(location, create=True) as store, store.engine.connect() as conn:
        assert applied_migrations(conn) == [m.name for m in MIGRATIONS]
        assert applied_migrations(conn)[0] == "m001_initial"
        assert read_meta(conn) == {"store_format": "agentprof", "schema_version": str(SCHEMA_VERSION)}


def test_migrated_tables_match_schema_module(location: StoreLocation) -> None:
    with open_store(location, create=True) as store, store.engine.connect() as conn:
        # DuckDB's own catalogue: SQLAlchemy's get_columns() fails on duckdb-engine 0.17 + SQLAlchemy 2.1.
        assert set(inspect(conn).get_table_names()) == set(schema.metadata.tables)
        for table in schema.metadata.sorted_tables:
            described = conn.exec_driver_sql(f"DESCRIBE {table.name}").all()
            assert [row[0] for row in described] == [column.name for column in table.columns], table.name


def test_migrations_are_idempotent(location: StoreLocation) -> None:
    with open_store(location, create=True) as store, store.engine.connect() as conn:
        first = conn.execute(select(schema.migrations_table)).all()
    with open_store(location) as store, store.engine.connect() as conn:
        with conn.begin():
            assert migrate(conn, "x") == []
        assert conn.execute(select(schema.migrations_table)).all() == first
        assert len(read_meta(conn)) == 2


def test_newer_schema_is_refused_without_writing(location: StoreLocation) -> None:
    with open_store(location, create=True):
        pass
    assert location.db_path is not None
    conn = duckdb.connect(str(location.db_path))
    conn.execute("UPDATE agentprof_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 5)])
    conn.close()
    with pytest.raises(StoreSchemaError) as caught:
        open_store(location)
    message = str(caught.value)
    assert str(location.db_path) in message
    assert f"schema {SCHEMA_VERSION + 5}, this version knows {SCHEMA_VERSION}" in message
    assert "pip install -U agentprof" in message


_SPAN_KEYS = {"tasks": "task_id", "spans": "span_id", "model_calls": "span_id"}


def _constraints(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, list[str]]]:
    rows = conn.execute(
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() WHERE table_name = ? "
        "ORDER BY constraint_type, constraint_column_names",
        [table],
    ).fetchall()
    return [(kind, list(columns)) for kind, columns in rows]


def test_m002_rebuilds_a_duckdb_store_of_m001_without_span_primary_keys(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [[task_row(1), step_row(2, task=1), *model_calls(10, 3, task=1)]])
    with open_store(location):
        pass
    assert location.db_path is not None
    conn = duckdb.connect(str(location.db_path))
    required = {table: _constraints(conn, table) for table in _SPAN_KEYS}
    for table, key in _SPAN_KEYS.items():  # back to the shape m001 created: a primary key on the id
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")
    conn.execute("DELETE FROM agentprof_migrations WHERE name <> 'm001_initial'")
    conn.execute("UPDATE agentprof_meta SET value = '1' WHERE key = 'schema_version'")
    before = {table: conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in _SPAN_KEYS}
    assert ("PRIMARY KEY", ["span_id"]) in _constraints(conn, "spans")
    conn.close()

    write_segments(location.spool_dir, [[model_call_row(12, task=1), model_call_row(13, task=1)]])
    with open_store(location) as store, store.engine.connect() as sa_conn:
        assert applied_migrations(sa_conn) == [m.name for m in MIGRATIONS]
        assert read_meta(sa_conn)["schema_version"] == str(SCHEMA_VERSION)
    conn = duckdb.connect(str(location.db_path))
    try:
        for table in _SPAN_KEYS:
            assert _constraints(conn, table) == required[table], table  # the NOT NULLs, no key
        assert conn.execute("SELECT * FROM tasks ORDER BY ALL").fetchall() == before["tasks"]
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (2,)  # the task and the step
        # The old rows come through intact and span 12, sent again, is still stored once.
        calls = conn.execute("SELECT * FROM model_calls WHERE span_id <> ? ORDER BY ALL", [span_id(13)]).fetchall()
        assert calls == before["model_calls"]
    finally:
        conn.close()


def test_m003_deletes_the_copies_of_model_calls_an_older_version_wrote_into_spans(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [[task_row(1), step_row(2, task=1), *model_calls(10, 3, task=1)]])
    with open_store(location):
        pass
    assert location.db_path is not None
    conn = duckdb.connect(str(location.db_path))
    # What ingestion before m003 wrote: every model call in spans too.
    conn.execute(
        "INSERT INTO spans (span_id, trace_id, parent_span_id, kind, name, task_id, task_name, step_name, "
        "start_time, start_time_ns, end_time_ns, duration_ms, status) SELECT span_id, trace_id, parent_span_id, "
        "'model_call', 'chat', task_id, task_name, step_name, start_time, start_time_ns, end_time_ns, duration_ms, "
        "status FROM model_calls"
    )
    conn.execute("DELETE FROM agentprof_migrations WHERE name LIKE 'm003%'")
    conn.execute("UPDATE agentprof_meta SET value = '2' WHERE key = 'schema_version'")
    assert conn.execute("SELECT count(*) FROM spans").fetchone() == (5,)
    conn.close()

    write_segments(location.spool_dir, [[model_call_row(12, task=1), model_call_row(13, task=1)]])
    with open_store(location) as store, store.engine.connect() as sa_conn:
        assert applied_migrations(sa_conn)[-1] == "m003_model_calls_only_in_model_calls"
        assert read_meta(sa_conn)["schema_version"] == str(SCHEMA_VERSION)
        kinds = sa_conn.execute(select(schema.spans.c.kind).order_by(schema.spans.c.span_id)).scalars().all()
        calls = sa_conn.execute(select(schema.model_calls.c.span_id).order_by(schema.model_calls.c.span_id))
        assert kinds == ["task", "step"]
        # Span 12, sent again after the migration, is still found among the stored calls.
        assert calls.scalars().all() == [span_id(n) for n in range(10, 14)]


def test_span_primary_keys_stay_outside_duckdb(tmp_path: Path) -> None:
    generic = StoreLocation(f"sqlite:///{tmp_path / 'store.sqlite'}", None, tmp_path / "spool", "store.sqlite")
    with open_store(generic, create=True) as store, store.engine.connect() as conn:
        assert applied_migrations(conn) == [m.name for m in MIGRATIONS]
        keys = {table: inspect(conn).get_pk_constraint(table)["constrained_columns"] for table in _SPAN_KEYS}
    assert keys == {table: [key] for table, key in _SPAN_KEYS.items()}
