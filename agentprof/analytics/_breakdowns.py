"""Where the money goes: cost and tokens by step and by model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentprof.analytics._groups import CallGroup, add_up, call_groups, exact_total
from agentprof.analytics._sql import Filters, call_conditions, percentile
from agentprof.analytics._summary import LatencyStats
from agentprof.store.schema import model_calls

_NO_LATENCY = LatencyStats(None, None)


@dataclass(frozen=True, slots=True)
class StepRow:
    """The calls made under one step of one task.

    Attributes:
        task: Task name (``"(untracked)"`` for calls outside any task).
        step: Step name (``"(task)"`` for calls made by the task outside any step).
        model_calls: Number of calls.
        models: The distinct models called, sorted.
        cost_usd: Cost of the priced calls; ``None`` when every call is unpriced.
        unpriced_calls: Calls without a price.
        share: This step's part of the selection's total cost (0 to 1), ``None`` when unknown.
        latency_ms: p50 and p95 of the calls' durations.
    """

    task: str
    step: str
    model_calls: int
    models: tuple[str, ...]
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int
    share: float | None
    latency_ms: LatencyStats


@dataclass(frozen=True, slots=True)
class ModelRow:
    """The calls answered by one model of one provider (``None`` where the call did not say)."""

    provider: str | None
    model: str | None
    model_calls: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    unpriced_calls: int
    share: float | None


def steps(conn: Connection, filters: Filters | None = None, groups: Sequence[CallGroup] | None = None) -> list[StepRow]:
    """Group the selected calls by (task, step), most expensive first.

    Sorted by cost descending with unpriced-only steps last, then by task and step name.
    ``groups`` (:func:`call_groups` of the same selection) saves reading the calls again for the
    sums; the latency percentiles always need a query of their own.
    """
    filters = filters or Filters()
    if groups is None:
        groups = call_groups(conn, filters)
    group = (model_calls.c.task_name, model_calls.c.step_name)
    latencies = {
        (task, step): LatencyStats(p50, p95)
        for task, step, p50, p95 in conn.execute(
            sa.select(
                *group,
                percentile(0.5, model_calls.c.duration_ms),
                percentile(0.95, model_calls.c.duration_ms),
            )
            .where(*call_conditions(filters))
            .group_by(*group)
        )
    }
    by_step: dict[tuple[str, str], list[CallGroup]] = defaultdict(list)
    for row in groups:
        by_step[row.task, row.step].append(row)
    sums = {key: add_up(rows) for key, rows in by_step.items()}
    total = exact_total([step.cost_usd for step in sums.values()])
    result = [
        StepRow(
            task=task,
            step=step,
            models=tuple(sorted({row.model for row in by_step[task, step] if row.model is not None})),
            share=_share(sum_.cost_usd, total),
            latency_ms=latencies.get((task, step), _NO_LATENCY),  # a step written between the two reads
            **sum_._asdict(),
        )
        for (task, step), sum_ in sums.items()
    ]
    result.sort(key=lambda step: (*_by_cost_desc(step.cost_usd), step.task, step.step))
    return result


def models(
    conn: Connection, filters: Filters | None = None, groups: Sequence[CallGroup] | None = None
) -> list[ModelRow]:
    """Group the selected calls by provider and model, most expensive first (``groups`` as in :func:`steps`)."""
    if groups is None:
        groups = call_groups(conn, filters)
    by_model: dict[tuple[str | None, str | None], list[CallGroup]] = defaultdict(list)
    for row in groups:
        by_model[row.provider, row.model].append(row)
    sums = {key: add_up(rows) for key, rows in by_model.items()}
    total = exact_total([model.cost_usd for model in sums.values()])
    result = [
        ModelRow(provider=provider, model=model, share=_share(sum_.cost_usd, total), **sum_._asdict())
        for (provider, model), sum_ in sums.items()
    ]
    result.sort(key=lambda m: (*_by_cost_desc(m.cost_usd), m.provider or "", m.model or ""))
    return result


def _share(cost: Decimal | None, total: Decimal | None) -> float | None:
    if cost is None or not total:
        return None
    return float(cost / total)


def _by_cost_desc(cost: Decimal | None) -> tuple[bool, Decimal]:
    """Sort key: priced rows first, most expensive first."""
    return (cost is None, -(cost or Decimal(0)))
