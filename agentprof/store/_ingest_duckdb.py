"""The DuckDB bulk path of spool ingestion: every DuckDB-specific SQL statement lives here.

One load, inside the caller's transaction, is a handful of set-based statements; no row passes
through Python (``executemany`` is ~250x slower here):

1. :data:`STAGE_SEGMENTS` reads the segments' lines with ``read_ndjson_objects`` and types each
   line by :data:`~agentprof._records.SPOOL_COLUMNS` with ``json_transform`` into a temporary
   staging table, so every segment is parsed once for all three tables (a segment loaded alone
   after a bulk failure is read by :data:`STAGE_SEGMENTS_BY_LINE`, which cuts whole files itself);
2. spans already stored, and second copies of a span within the batch, are deleted from the
   staging table (:meth:`DuckDBLoader.load`), so a span exported twice is stored once;
3. set-based ``INSERT ... SELECT`` statements split the staging table into ``tasks``, ``spans``
   (tasks, steps and tools: the tree ``show`` draws) and ``model_calls``.

Why this shape (profiled on 200 segments x 1,000 model calls, CPU seconds per 200,000 rows):

* ``read_ndjson_objects`` splits lines on both cores; cutting ``read_text``'s whole files in the
  query ran on one (staging 1.25 -> 0.88 s wall). The two readers agree on blank and
  whitespace-only lines, CRLF, a last line without newline, bad JSON or UTF-8 (tests).
* ``read_json`` binds every file anew, re-parsing 57 type names each time: ~1.5 ms per segment
  whatever its size (0.3 s per 200 segments, nearly all the cost for small segments), and it
  converted rows ~15% slower than ``json_transform`` in a query, which has no per-file cost.
* ``preserve_insertion_order`` made the staging statement ~0.5 s dearer. Nothing depends on the
  staging order (repeated spans are resolved by segment name), so a load turns it off for its
  own connection; rows of one load then reach the tables in no guaranteed order.
* The span tables have no primary keys in DuckDB (migration ``m002``): the ART index cost 0.3 s
  in an empty store and 1.5 s in one of 2.2 million spans with random ids, and doubled the file.
  Duplicates are found instead by span id: a semi-join against the stored spans that started
  within the batch's time range (a re-exported span keeps its start time, and zonemaps skip the
  older row groups, so the cost does not grow with the store) plus a distinct count within the
  batch; ~0.04 s together.

A value that ``json_transform`` cannot read as its column type becomes NULL instead of condemning
the whole segment (as the OTLP receiver already does for untrusted input); required columns stay
NOT NULL and money is still cast strictly, so those failures still move the segment to ``bad/``.

The conversions below must match :mod:`agentprof.store._ingest_generic` (a test compares the two).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import duckdb
from sqlalchemy import Connection, Numeric, Table
from sqlalchemy.exc import SQLAlchemyError

from agentprof._records import SPOOL_COLUMNS
from agentprof.exceptions import StoreError
from agentprof.store import schema
from agentprof.store._duckdb_file import driver_error, first_line

logger = logging.getLogger("agentprof.store")

STAGING = "agentprof_staging"
#: The staging column naming the segment a row came from (not a spool column).
SEGMENT_COLUMN = "spool_segment"

_STRUCTURE = json.dumps(SPOOL_COLUMNS)
# Blank lines are skipped, as read_json did. A CASE settles rows at '{' and trims only the rest:
# trimming every line cost ~1 s per 200,000 rows, an OR of the two tests ~0.25 s.
_NOT_BLANK = "CASE WHEN starts_with(line, '{') THEN true ELSE trim(line, ' ' || chr(9) || chr(13)) <> '' END"

#: The bulk reader (see the module docstring for why): ``json_transform`` still types each line, so a
#: bad value becomes NULL rather than condemning the segment.
STAGE_SEGMENTS = (
    f"CREATE OR REPLACE TEMP TABLE {STAGING} AS "
    f"SELECT {SEGMENT_COLUMN}, spool_row.* FROM ("
    f"SELECT filename AS {SEGMENT_COLUMN}, json_transform(json, '{_STRUCTURE}') AS spool_row "
    f"FROM read_ndjson_objects($1, filename = true))"
)
#: The tolerant reader, for segments loaded one at a time after a bulk load failed: whole files
#: read as text and cut into lines by the query itself (one thread), with no reader limits of its own.
STAGE_SEGMENTS_BY_LINE = (
    f"CREATE OR REPLACE TEMP TABLE {STAGING} AS "
    f"SELECT {SEGMENT_COLUMN}, spool_row.* FROM ("
    f"SELECT filename AS {SEGMENT_COLUMN}, json_transform(line, '{_STRUCTURE}') AS spool_row FROM ("
    f"SELECT filename, unnest(string_split(content, chr(10))) AS line FROM read_text($1)) "
    f"WHERE {_NOT_BLANK})"
)
ROWS_PER_SEGMENT = f"SELECT {SEGMENT_COLUMN}, count(*) FROM {STAGING} GROUP BY {SEGMENT_COLUMN}"
BATCH_SUMMARY = (
    f"SELECT min(start_time_ns), max(start_time_ns), count(span_id) - count(DISTINCT span_id) FROM {STAGING}"
)
#: A stored copy of a span has the span's start time, so only the batch's time range is read (of
#: ``spans`` for tasks and steps, of ``model_calls`` for model calls, which ``spans`` does not repeat).
DROP_STORED = (
    f"DELETE FROM {STAGING} WHERE span_id IN ("
    f"SELECT span_id FROM {schema.spans.name} WHERE start_time_ns BETWEEN $1 AND $2 UNION ALL "
    f"SELECT span_id FROM {schema.model_calls.name} WHERE start_time_ns BETWEEN $1 AND $2)"
)
#: Keeps the copy from the oldest segment (names sort by time); NULL ids are left to fail NOT NULL.
DROP_REPEATS = (
    f"DELETE FROM {STAGING} WHERE rowid IN (SELECT rowid FROM ("
    f"SELECT rowid, row_number() OVER (PARTITION BY span_id ORDER BY {SEGMENT_COLUMN}) AS copy "
    f"FROM {STAGING} WHERE span_id IS NOT NULL) WHERE copy > 1)"
)
DROP_STAGING = f"DROP TABLE IF EXISTS {STAGING}"
ALREADY_INGESTED = "SELECT segment FROM ingested_segments WHERE list_contains($1::VARCHAR[], segment)"
RECORD_SEGMENTS = (
    "INSERT INTO ingested_segments (segment, ingested_at, rows) "
    "SELECT unnest($1::VARCHAR[]), $2::TIMESTAMP, unnest($3::INTEGER[])"
)
FAST_SESSION = "SET SESSION preserve_insertion_order = false"
RESET_SESSION = "RESET SESSION preserve_insertion_order"

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
# A row without a kind goes to ``spans``, whose NOT NULL condemns its segment (rather than vanish).
_KIND_FILTER = {
    "tasks": " WHERE kind = 'task'",
    "spans": " WHERE kind IS DISTINCT FROM 'model_call'",
    "model_calls": " WHERE kind = 'model_call'",
}


def _expression(table: Table, column: str) -> str:
    special = _PER_TABLE[table.name].get(column) or _COMMON.get(column)
    if special is not None:
        return special
    if column not in SPOOL_COLUMNS:
        raise RuntimeError(f"{table.name}.{column} has no source in SPOOL_COLUMNS: add a conversion in {__name__}")
    column_type = table.c[column].type
    if isinstance(column_type, Numeric):
        # A strict cast: an amount that is not a number condemns the segment rather than vanish.
        return f"CAST({column} AS DECIMAL({column_type.precision}, {column_type.scale}))"
    return column


def insert_statement(table: Table) -> str:
    """``INSERT INTO <table> SELECT <converted columns> FROM staging`` (duplicates are gone by then)."""
    columns = [column.name for column in table.columns]
    select = ", ".join(_expression(table, column) for column in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {select} FROM {STAGING}{_KIND_FILTER[table.name]}"


INSERTS = tuple(insert_statement(table) for table in (schema.tasks, schema.spans, schema.model_calls))

#: DuckDB errors that mean "this segment is unusable" (bad JSON or UTF-8, an amount that is not a
#: number, missing required values, times whose difference overflows), as opposed to the database
#: or disk failing, which must never condemn segments.
_SEGMENT_ERRORS = (
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.OutOfRangeException,
)
#: A segment deleted by another ingester after ``read_text`` listed it.
_VANISHED = ("No files found", "No such file or directory")

#: DuckDB lets one process write a database file, so serialising the loads of this process makes
#: "look for stored spans, then insert" atomic without a primary key.
_LOAD_LOCK = threading.Lock()


def _blank(path: Path) -> bool:
    """Whether an existing segment holds nothing but whitespace (then it has no rows to load)."""
    with open(path, "rb") as handle:
        return not handle.read().strip()


def _session_setting(conn: Connection, statement: str) -> bool:
    """Run a session ``SET``/``RESET`` outside any transaction; False if it failed.

    Older DuckDB (1.1 does) refuses ``preserve_insertion_order`` per connection: the load then
    keeps the order, slower but the same.
    """
    try:
        conn.exec_driver_sql(statement)
        conn.commit()
    except SQLAlchemyError as exc:
        logger.debug("agentprof: %s failed (%s)", statement, first_line(exc))
        with suppress(SQLAlchemyError):
            conn.rollback()
        return False
    return True


class DuckDBLoader:
    """Bulk loader for DuckDB stores."""

    @contextmanager
    def session(self, conn: Connection) -> Iterator[None]:
        """Hold this process's load lock and turn insertion order off around the transactions."""
        with _LOAD_LOCK:
            fast = _session_setting(conn, FAST_SESSION)
            try:
                yield
            finally:
                # The pooled connection goes on to serve queries that may rely on the order; one
                # that cannot be reset is discarded instead.
                if fast and not _session_setting(conn, RESET_SESSION):
                    conn.invalidate()

    def already_ingested(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """The subset of ``names`` recorded in ``ingested_segments``."""
        return {row[0] for row in conn.exec_driver_sql(ALREADY_INGESTED, (list(names),))}

    def load(
        self, conn: Connection, paths: Sequence[Path], now: datetime, *, isolating: bool = False
    ) -> dict[str, int]:
        """Load ``paths`` inside the caller's transaction; return rows read per loaded segment name.

        A segment absent from the result vanished before it was read (another ingester took it).
        ``isolating`` (one segment after a failed bulk load) reads with :data:`STAGE_SEGMENTS_BY_LINE`.

        Raises:
            StoreError: A segment that exists and has content yielded no rows (it is left alone).
        """
        stage = STAGE_SEGMENTS_BY_LINE if isolating else STAGE_SEGMENTS
        conn.exec_driver_sql(stage, ([str(path) for path in paths],))
        read = {str(segment): int(count) for segment, count in conn.exec_driver_sql(ROWS_PER_SEGMENT)}
        counts: dict[str, int] = {}
        for path in paths:
            if str(path) in read:
                counts[path.name] = read[str(path)]
            elif path.exists():
                if not _blank(path):
                    raise StoreError(
                        f"DuckDB read no rows from {path}, which is not empty: it was left in place; report this bug"
                    )
                counts[path.name] = 0
        self._drop_duplicates(conn)
        for statement in INSERTS:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(DROP_STAGING)
        if counts:
            conn.exec_driver_sql(RECORD_SEGMENTS, (list(counts), now, list(counts.values())))
        return counts

    def _drop_duplicates(self, conn: Connection) -> None:
        first, last, repeated = conn.exec_driver_sql(BATCH_SUMMARY).one()
        if first is not None:
            conn.exec_driver_sql(DROP_STORED, (first, last))
        if repeated:
            conn.exec_driver_sql(DROP_REPEATS)

    def is_segment_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` can be blamed on a segment (or a segment that vanished meanwhile)."""
        error = driver_error(exc)
        if isinstance(error, _SEGMENT_ERRORS):
            return True
        return isinstance(error, duckdb.IOException) and any(text in str(error) for text in _VANISHED)
