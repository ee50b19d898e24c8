"""The DuckDB bulk path of spool ingestion: every DuckDB-specific SQL statement lives here.

Segments are read by DuckDB's own JSON reader straight into a temporary staging table typed by
:data:`~agentprof._records.SPOOL_COLUMNS`, then split into ``tasks``, ``spans`` (every span: the
tree ``show`` draws) and ``model_calls`` with set-based ``INSERT ... SELECT``. No row passes
through Python, which is what makes ingestion fast (``executemany`` is ~250x slower here).

The conversions below must match :mod:`agentprof.store._ingest_generic` (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
from sqlalchemy import Connection, Numeric, Table

from agentprof._records import SPOOL_COLUMNS
from agentprof.store import schema
from agentprof.store._duckdb_file import driver_error

STAGING = "agentprof_staging"

_COLUMNS_STRUCT = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in SPOOL_COLUMNS.items()) + "}"

READ_SEGMENTS = (
    f"CREATE OR REPLACE TEMP TABLE {STAGING} AS SELECT * FROM read_json($1, format = 'newline_delimited', "
    f"columns = {_COLUMNS_STRUCT}, filename = true)"
)
ROWS_PER_FILE = f"SELECT filename, count(*) FROM {STAGING} GROUP BY filename"
DROP_STAGING = f"DROP TABLE IF EXISTS {STAGING}"
ALREADY_INGESTED = "SELECT segment FROM ingested_segments WHERE list_contains($1::VARCHAR[], segment)"
RECORD_SEGMENTS = (
    "INSERT INTO ingested_segments (segment, ingested_at, rows) "
    "SELECT unnest($1::VARCHAR[]), $2::TIMESTAMP, unnest($3::INTEGER[])"
)

_STATUS = "coalesce(status, 'ok')"
_COMMON = {
    "start_time": "make_timestamp(start_time_ns // 1000)",
    "duration_ms": "(end_time_ns - start_time_ns) / 1e6",
    "status": _STATUS,
}
_PER_TABLE: dict[str, dict[str, str]] = {
    "tasks": {
        "task_id": "span_id",
        "name": "coalesce(task_name, name)",
        "success": f"coalesce(success, {_STATUS} = 'ok')",
        "outcome_explicit": "coalesce(outcome_explicit, false)",
    },
    "spans": {
        "task_name": "coalesce(task_name, CASE WHEN kind = 'task' THEN name END, '(untracked)')",
    },
    "model_calls": {
        "task_name": "coalesce(task_name, '(untracked)')",
        "step_name": "coalesce(step_name, '(task)')",
        "usage_known": "coalesce(usage_known, input_tokens IS NOT NULL OR output_tokens IS NOT NULL)",
        "priced": "coalesce(priced, cost_usd IS NOT NULL)",
    },
}
_KIND_FILTER = {"tasks": "WHERE kind = 'task'", "spans": "", "model_calls": "WHERE kind = 'model_call'"}


def _expression(table: Table, column: str) -> str:
    special = _PER_TABLE[table.name].get(column) or _COMMON.get(column)
    if special is not None:
        return special
    if column not in SPOOL_COLUMNS:
        raise RuntimeError(f"{table.name}.{column} has no source in SPOOL_COLUMNS: add a conversion in {__name__}")
    column_type = table.c[column].type
    if isinstance(column_type, Numeric):
        return f"CAST({column} AS DECIMAL({column_type.precision}, {column_type.scale}))"
    return column


def insert_statement(table: Table, *, tolerate_duplicates: bool) -> str:
    """``INSERT INTO <table> SELECT <converted columns> FROM staging [ON CONFLICT DO NOTHING]``."""
    columns = [column.name for column in table.columns]
    select = ", ".join(_expression(table, column) for column in columns)
    conflict = " ON CONFLICT DO NOTHING" if tolerate_duplicates else ""
    where = _KIND_FILTER[table.name]
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {select} FROM {STAGING} {where}{conflict}"


_TABLES = (schema.tasks, schema.spans, schema.model_calls)
#: Plain inserts: the primary keys still refuse a duplicate, ~2x faster than ON CONFLICT here.
INSERTS = tuple(insert_statement(table, tolerate_duplicates=False) for table in _TABLES)
#: Used only after a plain insert met a span already stored (or one repeated within the batch).
UPSERTS = tuple(insert_statement(table, tolerate_duplicates=True) for table in _TABLES)

#: DuckDB errors that mean "this segment is unusable" (bad JSON, wrong types, missing required
#: values), as opposed to the database or disk failing, which must never condemn segments.
_SEGMENT_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.ConstraintException)
_VANISHED = "No files found"
_DUPLICATE = "PRIMARY KEY or UNIQUE constraint violation"


class DuckDBLoader:
    """Bulk loader for DuckDB stores."""

    def already_ingested(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """The subset of ``names`` recorded in ``ingested_segments``."""
        return {row[0] for row in conn.exec_driver_sql(ALREADY_INGESTED, (list(names),))}

    def load(
        self, conn: Connection, paths: Sequence[Path], now: datetime, *, tolerate_duplicates: bool
    ) -> dict[str, int]:
        """Load ``paths`` inside the caller's transaction; return rows read per segment name."""
        conn.exec_driver_sql(READ_SEGMENTS, ([str(path) for path in paths],))
        by_file = {str(filename): int(count) for filename, count in conn.exec_driver_sql(ROWS_PER_FILE)}
        for statement in UPSERTS if tolerate_duplicates else INSERTS:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(DROP_STAGING)
        counts = {path.name: by_file.get(str(path), 0) for path in paths}
        conn.exec_driver_sql(RECORD_SEGMENTS, (list(counts), now, list(counts.values())))
        return counts

    def is_duplicate_error(self, exc: BaseException) -> bool:
        """Whether a plain insert failed only because a span was already stored."""
        error = driver_error(exc)
        return isinstance(error, duckdb.ConstraintException) and _DUPLICATE in str(error)

    def is_segment_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` can be blamed on a segment (or a segment that vanished meanwhile)."""
        error = driver_error(exc)
        if isinstance(error, _SEGMENT_ERRORS):
            return True
        return isinstance(error, duckdb.IOException) and _VANISHED in str(error)
