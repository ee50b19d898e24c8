"""SQLAlchemy Core description of the store: one table each for tasks, spans and model calls.

Schema changes are never made here alone: every change is a new numbered migration in
``agentprof.store._migrations`` that brings an existing database to this shape.

Design notes:
    * Names (task, step, model, provider) are plain strings; DuckDB dictionary-compresses them.
    * Money is ``DECIMAL(38, 18)``: exact sums, and a cost of $1e-9 is still representable.
    * ``start_time`` is a naive UTC ``TIMESTAMP``; ``start_time_ns`` keeps full precision.
    * ``model_calls`` repeats the task/step names it was recorded under so the hot report
      queries (cost by task, step, model) need no joins.
    * ``spans`` holds the other spans (tasks, steps, tools): the tree ``show`` draws from them and
      the calls. A model call is stored once, in ``model_calls`` (migration ``m003``): a copy in
      ``spans`` was read by nothing but the duplicate check, and writing it cost a seventh of the
      ingestion time.
    * The span tables' primary keys exist everywhere except in DuckDB (see :func:`_span_key`):
      there ingestion removes duplicate spans itself, because the ART index behind a key cost
      0.3 s of CPU per 200,000 spans loaded into an empty store, 1.5 s in a store of 2.2 million
      spans, and doubled the file. Elsewhere the generic loader looks spans up through the key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _outside_duckdb(ddl: Any, target: Any, bind: Any, tables: Any = None, state: Any = None, **kw: Any) -> bool:
    """``ddl_if`` condition: render the constraint for every dialect but DuckDB."""
    dialect: Dialect = kw["dialect"]
    return dialect.name != "duckdb"


def _span_key(column: str) -> PrimaryKeyConstraint:
    """A span table's primary key, created in every database but DuckDB (see the module notes).

    The key column is declared ``nullable=False`` itself, so it stays NOT NULL in DuckDB too.
    """
    return PrimaryKeyConstraint(column).ddl_if(callable_=_outside_duckdb)


MONEY = Numeric(38, 18)

migrations_table = Table(
    "agentprof_migrations",
    metadata,
    Column("name", String, primary_key=True),
    Column("applied_at", DateTime, nullable=False),
)

meta_table = Table(
    "agentprof_meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

ingested_segments = Table(
    "ingested_segments",
    metadata,
    Column("segment", String, primary_key=True),
    Column("ingested_at", DateTime, nullable=False),
    Column("rows", Integer, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("task_id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("name", String, nullable=False),
    Column("start_time", DateTime, nullable=False),
    Column("start_time_ns", BigInteger, nullable=False),
    Column("end_time_ns", BigInteger, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("status", String, nullable=False),  # "ok" | "error"
    Column("error_type", String),
    Column("success", Boolean, nullable=False),
    Column("score", Double),
    Column("outcome_explicit", Boolean, nullable=False),
    Column("service_name", String),
    Column("pid", Integer),
    Column("attributes", Text),
    _span_key("task_id"),
)

spans = Table(
    "spans",
    metadata,
    Column("span_id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("parent_span_id", String),
    Column("kind", String, nullable=False),  # "task" | "step" (model calls are in model_calls alone)
    Column("name", String, nullable=False),
    Column("task_id", String),
    Column("task_name", String, nullable=False),
    Column("step_name", String),
    Column("step_kind", String),
    Column("step_path", String),
    Column("start_time", DateTime, nullable=False),
    Column("start_time_ns", BigInteger, nullable=False),
    Column("end_time_ns", BigInteger, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("status", String, nullable=False),
    Column("error_type", String),
    Column("service_name", String),
    Column("pid", Integer),
    Column("tool_args_hash", String),
    Column("tool_result_hash", String),
    _span_key("span_id"),
)

model_calls = Table(
    "model_calls",
    metadata,
    Column("span_id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("parent_span_id", String),
    Column("task_id", String),
    Column("task_name", String, nullable=False),
    Column("step_name", String, nullable=False),
    Column("step_kind", String),
    Column("step_path", String),
    Column("operation", String),
    Column("provider", String),
    Column("request_model", String),
    Column("response_model", String),
    Column("server_address", String),
    Column("start_time", DateTime, nullable=False),
    Column("start_time_ns", BigInteger, nullable=False),
    Column("end_time_ns", BigInteger, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("ttft_ms", Double),
    Column("status", String, nullable=False),
    Column("error_type", String),
    Column("stream", Boolean),
    Column("stream_complete", Boolean),
    Column("usage_known", Boolean, nullable=False),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cache_read_tokens", BigInteger),
    Column("cache_write_tokens", BigInteger),
    Column("cache_write_5m_tokens", BigInteger),
    Column("cache_write_1h_tokens", BigInteger),
    Column("reasoning_tokens", BigInteger),
    Column("raw_usage", Text),
    Column("priced", Boolean, nullable=False),
    Column("cost_usd", MONEY),
    Column("input_cost_usd", MONEY),
    Column("output_cost_usd", MONEY),
    Column("price_source", String),
    Column("price_version", String),
    Column("priced_provider", String),
    Column("priced_model", String),
    Column("unpriced_reason", String),
    Column("request_fingerprint", String),
    Column("prefix_fingerprints", Text),
    Column("cache_breakpoints", Integer),
    Column("tool_count", Integer),
    Column("response_format", String),
    Column("tool_choice", String),
    Column("output_hash", String),
    Column("output_chars", BigInteger),
    Column("finish_reasons", Text),
    Column("temperature", Double),
    Column("response_id", String),
    Column("attempts", Integer),
    Column("service_name", String),
    Column("pid", Integer),
    Column("input_messages", Text),
    Column("output_text", Text),
    _span_key("span_id"),
)
