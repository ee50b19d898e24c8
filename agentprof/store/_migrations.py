"""Named, append-only schema migrations recorded in the database (the simonw/llm model).

Every schema change is a new function ``mNNN_<what>`` appended to :data:`MIGRATIONS`; a
migration is never edited or removed once released, because stores in the wild have recorded
its name in ``agentprof_migrations``. ``agentprof_meta`` carries ``store_format`` (so a foreign
database is recognised) and ``schema_version`` (the number of migrations the writer knew), so an
older agentprof refuses a store written by a newer one instead of misreading it.

A brand-new database is created at the current shape of :mod:`agentprof.store.schema` in one step
and stamped with *every* known migration (alembic's "create_all + stamp head"): ``m001_initial``
is that baseline, and later migrations only ever run on stores created before them. This keeps
``schema.py`` the single description of the current tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, inspect, select

from agentprof.exceptions import StoreCorruptError, StoreSchemaError
from agentprof.store import schema

STORE_FORMAT = "agentprof"
META_STORE_FORMAT = "store_format"
META_SCHEMA_VERSION = "schema_version"

logger = logging.getLogger("agentprof.store")


@dataclass(frozen=True, slots=True)
class Migration:
    """One named schema step; ``apply`` runs inside the caller's transaction."""

    name: str
    apply: Callable[[Connection], None]


def _m001_initial(conn: Connection) -> None:
    """Create every table of :mod:`agentprof.store.schema` (the baseline)."""
    schema.metadata.create_all(conn)


_M002_TABLES = ("tasks", "spans", "model_calls")
_M002_COLUMNS = (
    "SELECT column_name, data_type, is_nullable FROM duckdb_columns() WHERE table_name = $1 "
    "AND database_name = current_database() AND schema_name = current_schema() ORDER BY column_index"
)


def _m002_duckdb_span_tables_without_primary_keys(conn: Connection) -> None:
    """DuckDB only: rebuild ``tasks``, ``spans`` and ``model_calls`` without their primary keys.

    Ingestion removes duplicate spans itself now (see :mod:`agentprof.store.schema` for why).
    DuckDB cannot drop a key, so each table is copied (~10 s per million model calls, once).
    The new tables are declared from the catalogue, not from ``schema.py``, so that later changes
    to ``schema.py`` cannot change what this step does: same columns, types and NOT NULLs.
    """
    if conn.dialect.name != "duckdb":
        return
    logger.info("agentprof: rebuilding the span tables without primary keys (once; large stores take a while)")
    for table in _M002_TABLES:
        columns = ", ".join(
            f"{name} {data_type}{'' if nullable else ' NOT NULL'}"
            for name, data_type, nullable in conn.exec_driver_sql(_M002_COLUMNS, (table,))
        )
        conn.exec_driver_sql(f"CREATE TABLE {table}_m002 ({columns})")
        conn.exec_driver_sql(f"INSERT INTO {table}_m002 SELECT * FROM {table}")
        conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql(f"ALTER TABLE {table}_m002 RENAME TO {table}")


def _m003_model_calls_only_in_model_calls(conn: Connection) -> None:
    """Delete the copies of model calls from ``spans``: a model call is stored in ``model_calls`` alone.

    Ingestion stopped writing them (see :mod:`agentprof.store.schema`). Left in place they would
    be harmless to this version, but an older agentprof finds stored duplicates in ``spans`` only:
    the schema version this step raises makes it refuse the store instead of storing a
    re-exported call twice.
    """
    conn.exec_driver_sql("DELETE FROM spans WHERE kind = 'model_call'")


MIGRATIONS: tuple[Migration, ...] = (
    Migration("m001_initial", _m001_initial),
    Migration("m002_duckdb_span_tables_without_primary_keys", _m002_duckdb_span_tables_without_primary_keys),
    Migration("m003_model_calls_only_in_model_calls", _m003_model_calls_only_in_model_calls),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def check_meta(meta: Mapping[str, str], display: str) -> None:
    """Refuse a store that is not agentprof's or that a newer agentprof wrote.

    Raises:
        StoreCorruptError: ``store_format`` or ``schema_version`` is missing or not ours.
        StoreSchemaError: ``schema_version`` is greater than :data:`SCHEMA_VERSION`.
    """
    if meta.get(META_STORE_FORMAT) != STORE_FORMAT:
        raise StoreCorruptError(
            f"{display} has an agentprof_meta table but is not an agentprof store "
            f"(store_format={meta.get(META_STORE_FORMAT)!r}): point --db/AGENTPROF_DB at another store"
        )
    raw = meta.get(META_SCHEMA_VERSION, "")
    try:
        version = int(raw)
    except ValueError:
        raise StoreCorruptError(
            f"{display} has an unreadable schema_version {raw!r}: point --db/AGENTPROF_DB at another store"
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreSchemaError(
            f"{display} was written by a newer agentprof (schema {version}, this version knows {SCHEMA_VERSION}): "
            "upgrade agentprof (pip install -U agentprof) or point --db/AGENTPROF_DB at another store"
        )


def read_meta(conn: Connection) -> dict[str, str]:
    """Return ``agentprof_meta`` as a dict (the table must exist)."""
    rows = conn.execute(select(schema.meta_table.c.key, schema.meta_table.c.value))
    return {key: value for key, value in rows}


def applied_migrations(conn: Connection) -> list[str]:
    """Names recorded in ``agentprof_migrations``, in the order they were applied."""
    table = schema.migrations_table
    return list(conn.scalars(select(table.c.name).order_by(table.c.applied_at, table.c.name)))


def _write_meta(conn: Connection, values: Mapping[str, str]) -> None:
    table = schema.meta_table
    for key, value in values.items():
        conn.execute(table.delete().where(table.c.key == key))
        conn.execute(table.insert().values(key=key, value=value))


def migrate(conn: Connection, display: str) -> list[str]:
    """Bring the database behind ``conn`` to the current schema; return the migrations run now.

    Idempotent: a store that is up to date is only read. Runs inside the caller's transaction,
    so a failed migration leaves the store as it was. The caller has already established that
    the database is empty or an agentprof store (a foreign database is never passed here).

    Raises:
        StoreSchemaError: The store was written by a newer agentprof.
        StoreCorruptError: ``agentprof_meta`` exists but does not describe an agentprof store.
    """
    names = set(inspect(conn).get_table_names())
    now = _utcnow()
    if schema.meta_table.name in names:
        check_meta(read_meta(conn), display)
    if schema.migrations_table.name not in names:
        # A new store: create the current shape at once and stamp every migration as applied.
        _m001_initial(conn)
        conn.execute(schema.migrations_table.insert(), [{"name": m.name, "applied_at": now} for m in MIGRATIONS])
        ran = [m.name for m in MIGRATIONS]
    else:
        done = set(applied_migrations(conn))
        ran = []
        for migration in MIGRATIONS:
            if migration.name in done:
                continue
            migration.apply(conn)
            conn.execute(schema.migrations_table.insert().values(name=migration.name, applied_at=now))
            ran.append(migration.name)
    current = read_meta(conn)
    wanted = {META_STORE_FORMAT: STORE_FORMAT, META_SCHEMA_VERSION: str(SCHEMA_VERSION)}
    stale = {key: value for key, value in wanted.items() if current.get(key) != value}
    if stale:
        _write_meta(conn, stale)
    return ran
