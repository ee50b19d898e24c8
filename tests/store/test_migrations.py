from __future__ import annotations

import duckdb
import pytest
from sqlalchemy import inspect, select

import agentprof.store as store_package
from agentprof._config import StoreLocation
from agentprof.exceptions import StoreSchemaError
from agentprof.store import MIGRATIONS, SCHEMA_VERSION, open_store, schema
from agentprof.store._migrations import applied_migrations, migrate, read_meta


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
