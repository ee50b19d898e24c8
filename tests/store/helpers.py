"""Builders of valid spool rows (see ``agentprof._records.SPOOL_COLUMNS``) shared by store tests.

A plain module (not only fixtures) so subprocesses started by the concurrency tests can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from agentprof._spool import SpoolWriter
from agentprof.store import schema

T0 = 1_760_000_000_000_000_000  # a fixed clock: 2025-10-09T08:53:20Z in ns
TRACE = "0af7651916cd43dd8448eb211c80319c"


def span_id(number: int) -> str:
    return f"{number:016x}"


def task_row(number: int, *, name: str = "support_ticket", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "task",
        "trace_id": TRACE,
        "span_id": span_id(number),
        "name": f"invoke_agent {name}",
        "start_time_ns": T0 + number * 1_000_000,
        "end_time_ns": T0 + number * 1_000_000 + 2_500_000_000,
        "status": "ok",
        "task_id": span_id(number),
        "task_name": name,
        "service_name": "tests",
        "pid": 1234,
        "attributes": '{"customer": "acme"}',
    }
    row.update(overrides)
    return row


def step_row(number: int, *, task: int, name: str = "plan", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "step",
        "trace_id": TRACE,
        "span_id": span_id(number),
        "parent_span_id": span_id(task),
        "name": name,
        "start_time_ns": T0 + number * 1_000_000,
        "end_time_ns": T0 + number * 1_000_000 + 900_000_000,
        "status": "ok",
        "task_id": span_id(task),
        "task_name": "support_ticket",
        "step_name": name,
        "step_kind": "step",
        "step_path": name,
    }
    row.update(overrides)
    return row


def model_call_row(
    number: int, *, task: int | None = None, cost: str | None = "0.0012", **overrides: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "model_call",
        "trace_id": TRACE,
        "span_id": span_id(number),
        "parent_span_id": span_id(task) if task is not None else None,
        "name": "chat gpt-4o-mini",
        "start_time_ns": T0 + number * 1_000_000,
        "end_time_ns": T0 + number * 1_000_000 + 1_234_567_000,
        "status": "ok",
        "task_id": span_id(task) if task is not None else None,
        "task_name": "support_ticket" if task is not None else "(untracked)",
        "step_name": "plan" if task is not None else "(task)",
        "operation": "chat",
        "provider": "openai",
        "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "usage_known": True,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 1024,
        "priced": cost is not None,
        "cost_usd": cost,
        "price_source": "genai-prices" if cost is not None else None,
        "request_fingerprint": f"{number:032x}",
        "finish_reasons": '["stop"]',
    }
    row.update(overrides)
    return {key: value for key, value in row.items() if value is not None}


def model_calls(first: int, count: int, **overrides: Any) -> list[dict[str, Any]]:
    return [model_call_row(number, **overrides) for number in range(first, first + count)]


def write_segments(spool_dir: Path, batches: Iterable[Sequence[dict[str, Any]]]) -> list[Path]:
    """Write each batch as one segment with the real SpoolWriter; return the new segment paths."""
    before = set(spool_dir.glob("seg-*.jsonl"))
    writer = SpoolWriter(spool_dir)
    for batch in batches:
        writer.write_segment(batch)
    return sorted(set(spool_dir.glob("seg-*.jsonl")) - before)


def count_rows(engine: Engine, table_name: str) -> int:
    table = schema.metadata.tables[table_name]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
