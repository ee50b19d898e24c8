"""Where the money goes: cost and tokens by step and by model."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentprof.analytics._sql import (
    Filters,
    call_conditions,
    model_name,
    money,
    percentile,
    priced_cost,
    sum_tokens,
    to_decimal,
    unpriced_flag,
)
from agentprof.analytics._summary import LatencyStats
from agentprof.store.schema import model_calls


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


def steps(conn: Connection, filters: Filters | None = None) -> list[StepRow]:
    """Group the selected calls by (task, step), most expensive first.

    Sorted by cost descending with unpriced-only steps last, then by task and step name.
    """
    filters = filters or Filters()
    group = (model_calls.c.task_name, model_calls.c.step_name)
    rows = conn.execute(
        sa.select(
            *group,
            sa.func.count().label("calls"),
            sum_tokens(model_calls.c.input_tokens).label("input_tokens"),
            sum_tokens(model_calls.c.cache_read_tokens).label("cache_read_tokens"),
            sum_tokens(model_calls.c.cache_write_tokens).label("cache_write_tokens"),
            sum_tokens(model_calls.c.output_tokens).label("output_tokens"),
            money(sa.func.sum(priced_cost())).label("cost"),
            sa.func.sum(unpriced_flag()).label("unpriced"),
            percentile(0.5, model_calls.c.duration_ms).label("p50"),
            percentile(0.95, model_calls.c.duration_ms).label("p95"),
        )
        .where(*call_conditions(filters))
        .group_by(*group)
    ).all()
    models_by_step: dict[tuple[str, str], list[str]] = defaultdict(list)
    step_models = (
        sa.select(*group, model_name().label("model"))
        .where(*call_conditions(filters), model_name().is_not(None))
        .distinct()
    )
    for task, step, model in conn.execute(step_models):
        models_by_step[task, step].append(model)

    costs = [to_decimal(row.cost) for row in rows]
    total = _total(costs)
    result = [
        StepRow(
            task=row.task_name,
            step=row.step_name,
            model_calls=row.calls,
            models=tuple(sorted(models_by_step[row.task_name, row.step_name])),
            input_tokens=int(row.input_tokens),
            cache_read_tokens=int(row.cache_read_tokens),
            cache_write_tokens=int(row.cache_write_tokens),
            output_tokens=int(row.output_tokens),
            cost_usd=cost,
            unpriced_calls=int(row.unpriced),
            share=_share(cost, total),
            latency_ms=LatencyStats(row.p50, row.p95),
        )
        for row, cost in zip(rows, costs, strict=True)
    ]
    result.sort(key=lambda step: (*_by_cost_desc(step.cost_usd), step.task, step.step))
    return result


def models(conn: Connection, filters: Filters | None = None) -> list[ModelRow]:
    """Group the selected calls by provider and model, most expensive first."""
    filters = filters or Filters()
    model = model_name()
    rows = conn.execute(
        sa.select(
            model_calls.c.provider,
            model.label("model"),
            sa.func.count().label("calls"),
            sum_tokens(model_calls.c.input_tokens).label("input_tokens"),
            sum_tokens(model_calls.c.cache_read_tokens).label("cache_read_tokens"),
            sum_tokens(model_calls.c.cache_write_tokens).label("cache_write_tokens"),
            sum_tokens(model_calls.c.output_tokens).label("output_tokens"),
            money(sa.func.sum(priced_cost())).label("cost"),
            sa.func.sum(unpriced_flag()).label("unpriced"),
        )
        .where(*call_conditions(filters))
        .group_by(model_calls.c.provider, model)
    ).all()
    costs = [to_decimal(row.cost) for row in rows]
    total = _total(costs)
    result = [
        ModelRow(
            provider=row.provider,
            model=row.model,
            model_calls=row.calls,
            input_tokens=int(row.input_tokens),
            cache_read_tokens=int(row.cache_read_tokens),
            cache_write_tokens=int(row.cache_write_tokens),
            output_tokens=int(row.output_tokens),
            cost_usd=cost,
            unpriced_calls=int(row.unpriced),
            share=_share(cost, total),
        )
        for row, cost in zip(rows, costs, strict=True)
    ]
    result.sort(key=lambda m: (*_by_cost_desc(m.cost_usd), m.provider or "", m.model or ""))
    return result


def _total(costs: list[Decimal | None]) -> Decimal | None:
    known = [cost for cost in costs if cost is not None]
    return sum(known, Decimal(0)) if known else None


def _share(cost: Decimal | None, total: Decimal | None) -> float | None:
    if cost is None or not total:
        return None
    return float(cost / total)


def _by_cost_desc(cost: Decimal | None) -> tuple[bool, Decimal]:
    """Sort key: priced rows first, most expensive first."""
    return (cost is None, -(cost or Decimal(0)))
