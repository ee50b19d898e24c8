"""A small hand-computed store: four tasks, eight model calls, one untracked.

T1 triage  ok      1000 ms  classify[c1 $0.001, c2 $0.002]  answer[draft[c3 $0.03]]  (task)[c4 $0.0005]
T2 triage  failed  3000 ms  classify[c5 $0.001]  answer[c6 unpriced]
T3 research ok     2000 ms  no calls
T4 research ok      500 ms  search[c7 unpriced]
untracked                   c8 $0.01 (openai gpt-4o)
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from agentprof.store.schema import MONEY, model_calls, spans, tasks

T1, T2, T3, T4 = "a1a1a1a1a1a1a1a1", "a1a1a1a1b2b2b2b2", "c3c3c3c3c3c3c3c3", "d4d4d4d4d4d4d4d4"
BASE = datetime(2025, 1, 1, 10, 0, 0)
EPOCH = datetime(1970, 1, 1)


def _ns(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds()) * 1_000_000_000


def add_task(conn: sa.Connection, task_id: str, name: str, start: datetime, duration_ms: float, success: bool) -> None:
    conn.execute(
        tasks.insert().values(
            task_id=task_id,
            trace_id="t" + task_id,
            name=name,
            start_time=start,
            start_time_ns=_ns(start),
            end_time_ns=_ns(start) + int(duration_ms * 1e6),
            duration_ms=duration_ms,
            status="ok" if success else "error",
            error_type=None if success else "ValueError",
            success=success,
            outcome_explicit=False,
        )
    )
    add_span(conn, task_id, None, "task", name, task_id, name, None, start, duration_ms)


def add_span(
    conn: sa.Connection,
    span_id: str,
    parent: str | None,
    kind: str,
    name: str,
    task_id: str,
    task_name: str,
    step_name: str | None,
    start: datetime,
    duration_ms: float,
    step_kind: str | None = "step",
) -> None:
    conn.execute(
        spans.insert().values(
            span_id=span_id,
            trace_id="t" + task_id,
            parent_span_id=parent,
            kind=kind,
            name=name,
            task_id=task_id,
            task_name=task_name,
            step_name=step_name,
            step_kind=step_kind if kind == "step" else None,
            start_time=start,
            start_time_ns=_ns(start),
            end_time_ns=_ns(start) + int(duration_ms * 1e6),
            duration_ms=duration_ms,
            status="ok",
        )
    )


def add_call(
    conn: sa.Connection,
    span_id: str,
    *,
    parent: str | None,
    task_id: str | None,
    task_name: str,
    step_name: str,
    start: datetime,
    duration_ms: float,
    provider: str,
    model: str,
    cost: str | None,
    input_tokens: int = 1000,
    output_tokens: int = 100,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    response_model: str | None = None,
    **columns: Any,
) -> None:
    """Insert one model call; ``columns`` sets any other ``model_calls`` column (or overrides one)."""
    values: dict[str, Any] = dict(
        span_id=span_id,
        trace_id="t" + (task_id or span_id),
        parent_span_id=parent,
        task_id=task_id,
        task_name=task_name,
        step_name=step_name,
        operation="chat",
        provider=provider,
        request_model=model,
        response_model=response_model,
        start_time=start,
        start_time_ns=_ns(start),
        end_time_ns=_ns(start) + int(duration_ms * 1e6),
        duration_ms=duration_ms,
        status="ok",
        usage_known=True,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        priced=cost is not None,
        # Through a string: duckdb-engine would send a Decimal parameter as a float.
        cost_usd=None if cost is None else sa.cast(sa.literal(cost, sa.String()), MONEY),
        unpriced_reason=None if cost is not None else "unknown model",
    )
    values.update(columns)
    conn.execute(model_calls.insert().values(**values))


def populate(conn: sa.Connection) -> None:
    """Insert the data set described in the module docstring."""
    s = timedelta(seconds=1)
    t1, t2, t3, t4 = BASE, BASE + timedelta(hours=1), BASE + timedelta(hours=2), BASE + timedelta(hours=3)
    add_task(conn, T1, "triage", t1, 1000.0, True)
    add_span(conn, "s1", T1, "step", "classify", T1, "triage", "classify", t1 + s, 300.0)
    add_span(conn, "s2", T1, "step", "answer", T1, "triage", "answer", t1 + 4 * s, 500.0)
    add_span(conn, "s3", "s2", "step", "draft", T1, "triage", "draft", t1 + 5 * s, 400.0)
    mini: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini"}
    add_call(conn, "c1", parent="s1", task_id=T1, task_name="triage", step_name="classify", start=t1 + s,
             duration_ms=100.0, cost="0.001", **mini)  # fmt: skip
    add_call(conn, "c2", parent="s1", task_id=T1, task_name="triage", step_name="classify", start=t1 + 2 * s,
             duration_ms=200.0, cost="0.002", **mini)  # fmt: skip
    add_call(conn, "c3", parent="s3", task_id=T1, task_name="triage", step_name="draft", start=t1 + 5 * s,
             duration_ms=350.0, provider="anthropic", model="claude-sonnet-4",
             response_model="claude-sonnet-4-20250514", cost="0.03", input_tokens=5000, output_tokens=500,
             cache_read_tokens=4000, cache_write_tokens=200)  # fmt: skip
    add_span(conn, "c3", "s3", "model_call", "chat claude-sonnet-4", T1, "triage", "draft", t1 + 5 * s, 350.0)
    add_call(conn, "c4", parent=T1, task_id=T1, task_name="triage", step_name="(task)", start=t1 + 9 * s,
             duration_ms=50.0, cost="0.0005", **mini)  # fmt: skip

    add_task(conn, T2, "triage", t2, 3000.0, False)
    add_span(conn, "s4", T2, "step", "classify", T2, "triage", "classify", t2 + s, 300.0)
    add_span(conn, "s5", T2, "step", "answer", T2, "triage", "answer", t2 + 2 * s, 2000.0)
    add_call(conn, "c5", parent="s4", task_id=T2, task_name="triage", step_name="classify", start=t2 + s,
             duration_ms=300.0, cost="0.001", **mini)  # fmt: skip
    add_call(conn, "c6", parent="s5", task_id=T2, task_name="triage", step_name="answer", start=t2 + 2 * s,
             duration_ms=1500.0, provider="vllm", model="my-local-llm", cost=None)  # fmt: skip

    add_task(conn, T3, "research", t3, 2000.0, True)
    add_task(conn, T4, "research", t4, 500.0, True)
    add_span(conn, "s6", T4, "step", "search", T4, "research", "search", t4, 400.0, step_kind="tool")
    add_call(conn, "c7", parent="s6", task_id=T4, task_name="research", step_name="search", start=t4 + s,
             duration_ms=250.0, provider="vllm", model="my-local-llm", cost=None)  # fmt: skip

    add_call(conn, "c8", parent=None, task_id=None, task_name="(untracked)", step_name="(task)",
             start=BASE - timedelta(hours=1), duration_ms=800.0, provider="openai", model="gpt-4o",
             cost="0.01")  # fmt: skip


def random_calls(conn: sa.Connection, rng: random.Random) -> None:
    """Calls of ``plan`` (and noise in ``other``) straddling claude-sonnet-4-6's 2026-03-13 price
    change (before it, long-context tiers) and deepseek-chat's off-peak hours, in two task names and
    outside tasks; some unpriced, some without usage, some with every kind of token."""
    start = datetime(2026, 3, 11, 20, 0)
    task_ids = [f"task{n:03d}" for n in range(40)]
    for n in range(400):
        task_id = rng.choice([*task_ids, None])
        name = "(untracked)" if task_id is None else ("alpha" if task_ids.index(task_id) % 3 else "beta")
        input_tokens = rng.choice([1200, 1200, 5000, 250_000, rng.randrange(100, 300_000)])
        cache_read = rng.choice([0, 0, input_tokens // 2])
        cache_write = rng.choice([0, (input_tokens - cache_read) // 4])
        write_1h = rng.choice([None, cache_write // 2])
        output_tokens = rng.choice([50, 400, rng.randrange(1, 4000)])
        add_call(
            conn,
            f"call{n:04d}",
            parent=task_id,
            task_id=task_id,
            task_name=name,
            step_name="plan" if n % 5 else "other",
            start=start + timedelta(minutes=rng.randrange(0, 3 * 24 * 60), seconds=rng.randrange(60)),
            duration_ms=100.0,
            provider="openai",
            model="gpt-4o",
            cost=rng.choice([None, "0.0123", "0.5", "0.000001", f"0.{rng.randrange(10**9):09d}"]),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=write_1h,
            cache_write_5m_tokens=None if write_1h is None else cache_write - write_1h,
            reasoning_tokens=rng.choice([0, output_tokens // 3]),
            usage_known=rng.random() > 0.05,
        )
