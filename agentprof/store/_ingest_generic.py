"""The portable path of spool ingestion, for any SQLAlchemy database that is not DuckDB.

PostgreSQL (the shared store of a team) and SQLite have no reader for our segments, so rows are
parsed and converted in Python and inserted with SQLAlchemy Core in batches. Spans already stored
are filtered out first, so a span seen twice is stored once without dialect-specific upserts.
Conversions mirror :mod:`agentprof.store._ingest_duckdb` exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Numeric, Table, select

from agentprof._records import SpoolRow
from agentprof.store import schema

_EPOCH = datetime(1970, 1, 1)
_BATCH = 1000
_LOOKUP_CHUNK = 500
_MONEY_QUANTUM = Decimal(1).scaleb(-(schema.MONEY.scale or 0))


class SegmentError(ValueError):
    """A segment cannot be parsed or converted (blamed on the file, never on the database)."""


def read_segment(path: Path) -> list[SpoolRow]:
    """Parse one JSON-lines segment.

    Raises:
        SegmentError: A line is not a JSON object.
        FileNotFoundError: The segment vanished (another ingester took it).
    """
    rows: list[SpoolRow] = []
    with open(path, encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise SegmentError(f"{path.name} line {number} is not a JSON object")
                rows.append(row)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SegmentError(f"{path.name} is not valid JSON lines: {exc}") from None
    return rows


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value)).quantize(_MONEY_QUANTUM)
    except InvalidOperation:
        raise SegmentError(f"{value!r} is not a decimal amount") from None


def _common(row: SpoolRow) -> dict[str, Any]:
    start, end = row.get("start_time_ns"), row.get("end_time_ns")
    if not isinstance(start, int) or not isinstance(end, int):
        raise SegmentError(f"span {row.get('span_id')!r} has no integer start_time_ns/end_time_ns")
    return {
        "start_time": _EPOCH + timedelta(microseconds=start // 1000),
        "duration_ms": (end - start) / 1e6,
        "status": row.get("status") or "ok",
    }


def _task(row: SpoolRow, common: dict[str, Any]) -> dict[str, Any]:
    success = row.get("success")
    return {
        "task_id": row.get("span_id"),
        "name": row.get("task_name") or row.get("name"),
        "success": common["status"] == "ok" if success is None else success,
        "outcome_explicit": bool(row.get("outcome_explicit")),
    }


def _span(row: SpoolRow, common: dict[str, Any]) -> dict[str, Any]:
    fallback = row.get("name") if row.get("kind") == "task" else None
    return {"task_name": row.get("task_name") or fallback or "(untracked)"}


def _model_call(row: SpoolRow, common: dict[str, Any]) -> dict[str, Any]:
    usage_known = row.get("usage_known")
    priced = row.get("priced")
    return {
        "task_name": row.get("task_name") or "(untracked)",
        "step_name": row.get("step_name") or "(task)",
        "usage_known": (row.get("input_tokens") is not None or row.get("output_tokens") is not None)
        if usage_known is None
        else usage_known,
        "priced": row.get("cost_usd") is not None if priced is None else priced,
    }


_SPECIAL = {"tasks": _task, "spans": _span, "model_calls": _model_call}


def convert(table: Table, row: SpoolRow) -> dict[str, Any]:
    """One spool row as a row of ``table`` (same rules as the DuckDB SQL)."""
    values = {column.name: row.get(column.name) for column in table.columns}
    common = _common(row)
    values.update(common)
    values.update(_SPECIAL[table.name](row, common))
    for column in table.columns:
        if isinstance(column.type, Numeric):
            values[column.name] = _money(values[column.name])
    missing = [column.name for column in table.columns if not column.nullable and values[column.name] is None]
    if missing:
        raise SegmentError(f"span {row.get('span_id')!r} lacks required {', '.join(missing)}")
    return values


def split(rows: Sequence[SpoolRow]) -> dict[str, list[dict[str, Any]]]:
    """Convert spool rows into rows of ``tasks``, ``spans`` (all but model calls) and ``model_calls``."""
    out: dict[str, list[dict[str, Any]]] = {"tasks": [], "spans": [], "model_calls": []}
    for row in rows:
        kind = row.get("kind")
        if kind == "model_call":
            out["model_calls"].append(convert(schema.model_calls, row))
            continue
        out["spans"].append(convert(schema.spans, row))
        if kind == "task":
            out["tasks"].append(convert(schema.tasks, row))
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_new(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    key = next(iter(table.primary_key.columns))
    fresh: dict[Any, dict[str, Any]] = {}
    for row in rows:
        fresh.setdefault(row[key.name], row)
    for chunk in _chunks(list(fresh), _LOOKUP_CHUNK):
        for existing in conn.scalars(select(key).where(key.in_(chunk))):
            fresh.pop(existing, None)
    for batch in _chunks(list(fresh.values()), _BATCH):
        conn.execute(table.insert(), list(batch))


class GenericLoader:
    """Portable loader through SQLAlchemy Core (PostgreSQL, SQLite, ...)."""

    def session(self, conn: Connection) -> AbstractContextManager[None]:
        """Nothing: the primary keys settle concurrent ingesters (the loser retries)."""
        return nullcontext()

    def already_ingested(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """The subset of ``names`` recorded in ``ingested_segments``."""
        column = schema.ingested_segments.c.segment
        found: set[str] = set()
        for chunk in _chunks(names, _LOOKUP_CHUNK):
            found.update(conn.scalars(select(column).where(column.in_(chunk))))
        return found

    def load(
        self, conn: Connection, paths: Sequence[Path], now: datetime, *, isolating: bool = False
    ) -> dict[str, int]:
        """Load ``paths`` inside the caller's transaction; return rows read per segment name.

        Spans already stored, or repeated within ``paths`` (the first copy wins), are left out.
        This loader has one reader, so ``isolating`` changes nothing.
        """
        counts: dict[str, int] = {}
        tables: dict[str, list[dict[str, Any]]] = {"tasks": [], "spans": [], "model_calls": []}
        for path in paths:
            rows = read_segment(path)
            counts[path.name] = len(rows)
            for name, converted in split(rows).items():
                tables[name].extend(converted)
        for table in (schema.tasks, schema.spans, schema.model_calls):
            _insert_new(conn, table, tables[table.name])
        records = [{"segment": name, "ingested_at": now, "rows": count} for name, count in counts.items()]
        for batch in _chunks(records, _BATCH):
            conn.execute(schema.ingested_segments.insert(), list(batch))
        return counts

    def is_segment_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` can be blamed on a segment (or a segment that vanished meanwhile)."""
        return isinstance(exc, SegmentError | FileNotFoundError)
