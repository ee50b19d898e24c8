"""Build ``CallRecord``/``ToolRecord`` lists by hand and run rules on them (engine, exact_cache, ...)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from agentprof.reports.rules._base import CallRecord, Finding, ResidualLedger, RuleContext, ToolRecord, Workload
from agentprof.reports.rules._config import RulesConfig
from agentprof.reports.rules._engine import run_workload

T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01 00:00 UTC
SECOND = 1_000_000_000


def call(
    span_id: str,
    *,
    at: float = 0.0,
    task: str | None = "t1",
    task_name: str = "support",
    step: str = "classify",
    provider: str = "openai",
    model: str = "gpt-4o",
    cost: str | None = "0.01",
    status: str = "ok",
    fingerprint: str | None = "f1",
    output_hash: str | None = "o1",
    temperature: float | None = 0.0,
    input_tokens: int = 1000,
    output_tokens: int = 10,
    cache_read_tokens: int = 0,
    prefixes: Sequence[tuple[str, int, int, str]] | None = None,
    finish: str | None = '["stop"]',
    attempts: int | None = 1,
    **overrides: Any,
) -> CallRecord:
    """A model call at ``T0 + at`` seconds; ``prefixes`` as (hash, tokens, index, role)."""
    start = T0 + int(at * SECOND)
    fields: dict[str, Any] = dict(
        span_id=span_id,
        task_id=task,
        task_name=task_name if task is not None else "(untracked)",
        step_name=step,
        step_kind="step",
        provider=provider,
        model=model,
        request_model=model,
        start_ns=start,
        end_ns=start + SECOND // 2,
        status=status,
        error_type="RateLimitError" if status == "error" else None,
        usage_known=status != "error",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=0,
        cache_write_5m_tokens=None,
        cache_write_1h_tokens=None,
        reasoning_tokens=0,
        cost=None if cost is None or status == "error" else Decimal(cost),
        request_fingerprint=fingerprint,
        prefix_fingerprints_json=None
        if prefixes is None
        else json.dumps(
            [{"hash": h, "tokens": n, "index": i, "role": r} for h, n, i, r in prefixes], separators=(",", ":")
        ),
        cache_breakpoints=0,
        tool_count=0,
        response_format=None,
        tool_choice=None,
        output_hash=None if status == "error" else output_hash,
        temperature=temperature,
        attempts=attempts,
        finish_reasons=None if status == "error" else finish,
        server_address=None,
        operation="chat",
    )
    fields.update(overrides)
    return CallRecord(**fields)


def tool(
    span_id: str,
    *,
    at: float,
    task: str | None = "t1",
    task_name: str = "support",
    name: str = "search",
    args: str | None = "a1",
    result: str | None = "r1",
    status: str = "ok",
) -> ToolRecord:
    """A tool step at ``T0 + at`` seconds."""
    start = T0 + int(at * SECOND)
    return ToolRecord(span_id, task, task_name, name, start, start + SECOND // 10, status, args, result)


def run(kind: str, calls: Sequence[CallRecord], tools: Sequence[ToolRecord] = (), config: RulesConfig | None = None,
        ledger: ResidualLedger | None = None) -> list[Finding]:  # fmt: skip
    """Run one rule directly on records (optionally on a ledger earlier rules already claimed from)."""
    from importlib import import_module

    ordered = sorted(calls, key=lambda c: (c.start_ns, c.span_id))
    context = RuleContext(Workload(ordered, list(tools)), config or RulesConfig(), ledger or ResidualLedger(ordered))
    rule = import_module(f"agentprof.reports.rules.{kind}").RULE
    return list(rule.run(context))


def run_engine(calls: Sequence[CallRecord], tools: Sequence[ToolRecord] = (), **kwargs: Any) -> list[Finding]:
    """Run the engine on records."""
    ordered = sorted(calls, key=lambda c: (c.start_ns, c.span_id))
    return run_workload(Workload(ordered, list(tools)), **kwargs)
