"""The headline numbers of a report: tasks, calls, total cost and cost per task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentprof.analytics._groups import CallGroup, add_up, call_groups
from agentprof.analytics._sql import (
    Filters,
    call_conditions,
    money,
    money_from_float,
    percentile,
    priced_cost,
    task_conditions,
    to_decimal,
)
from agentprof.store.schema import model_calls, tasks


@dataclass(frozen=True, slots=True)
class CostStats:
    """Distribution of cost over tasks; every field is ``None`` when no task has a known cost."""

    mean: Decimal | None
    p50: Decimal | None
    p95: Decimal | None


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Percentiles of a duration in milliseconds (``None`` when there is nothing to measure)."""

    p50: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    """What a selection of the store cost.

    Attributes:
        tasks: Tasks in the selection.
        failed_tasks: Tasks that did not succeed.
        model_calls: Every model call in the selection, untracked ones included.
        unpriced_calls: Calls without a price (unknown model); never counted as $0.
        total_cost_usd: Cost of the priced calls; ``None`` when there were calls and none was priced.
        cost_per_task_usd: Mean, p50 and p95 of the per-task cost (see :func:`summary`).
        cost_per_successful_task_usd: All spend of the selection over the successful tasks.
        task_latency_ms: p50 and p95 of the tasks' durations.
    """

    tasks: int
    failed_tasks: int
    model_calls: int
    unpriced_calls: int
    total_cost_usd: Decimal | None
    cost_per_task_usd: CostStats
    cost_per_successful_task_usd: Decimal | None
    task_latency_ms: LatencyStats


@dataclass(frozen=True, slots=True)
class SelectionSize:
    """How many tasks and model calls a selection holds (cheap: no cost or percentiles)."""

    tasks: int
    model_calls: int

    @property
    def empty(self) -> bool:
        """True when the selection holds neither a task nor a model call."""
        return self.tasks == 0 and self.model_calls == 0


def summary(conn: Connection, filters: Filters | None = None, groups: Sequence[CallGroup] | None = None) -> Summary:
    """Compute the headline numbers of the selection.

    A task's cost is the sum of its priced calls. A task without calls costs 0 (it really
    cost nothing); a task whose calls are all unpriced has an unknown cost and is left out of
    the mean and percentiles rather than counted as $0. ``cost_per_successful_task_usd`` divides
    *all* spend in the selection (failed tasks and untracked calls included) by the number of
    successful tasks: what one success really costs. ``groups`` (:func:`~agentprof.analytics.call_groups`
    of the same selection) saves reading the calls again for their totals.
    """
    filters = filters or Filters()
    if groups is None:
        groups = call_groups(conn, filters)
    calls = add_up(groups)
    total_cost = calls.cost_usd
    if total_cost is None and calls.model_calls == 0:
        total_cost = Decimal(0)

    # Calls are summed per task first and then joined, rather than joining every call to its task
    # and grouping the result: 0.4 s instead of 0.9 to 1.3 s for 10 million calls in 500,000 tasks.
    call_totals = (
        sa.select(
            model_calls.c.task_id,
            sa.func.count().label("calls"),
            sa.func.sum(priced_cost()).label("cost"),
        )
        .group_by(model_calls.c.task_id)
        .subquery("call_totals")
    )
    per_task = (
        sa.select(
            tasks.c.task_id,
            tasks.c.success,
            tasks.c.duration_ms,
            sa.case(
                (call_totals.c.calls.is_(None), sa.cast(0, model_calls.c.cost_usd.type)),
                else_=call_totals.c.cost,
            ).label("cost"),
        )
        .select_from(tasks.outerjoin(call_totals, call_totals.c.task_id == tasks.c.task_id))
        .where(*task_conditions(filters))
        .subquery("per_task")
    )
    stats = conn.execute(
        sa.select(
            sa.func.count().label("tasks"),
            sa.func.coalesce(sa.func.sum(sa.case((sa.not_(per_task.c.success), 1), else_=0)), 0).label("failed"),
            money(sa.func.sum(per_task.c.cost)).label("cost_sum"),
            sa.func.count(per_task.c.cost).label("costed"),
            percentile(0.5, per_task.c.cost).label("cost_p50"),
            percentile(0.95, per_task.c.cost).label("cost_p95"),
            percentile(0.5, per_task.c.duration_ms).label("latency_p50"),
            percentile(0.95, per_task.c.duration_ms).label("latency_p95"),
        )
    ).one()
    cost_sum = to_decimal(stats.cost_sum)
    mean = cost_sum / stats.costed if cost_sum is not None and stats.costed else None
    successful = stats.tasks - stats.failed
    return Summary(
        tasks=stats.tasks,
        failed_tasks=stats.failed,
        model_calls=calls.model_calls,
        unpriced_calls=calls.unpriced_calls,
        total_cost_usd=total_cost,
        cost_per_task_usd=CostStats(mean, money_from_float(stats.cost_p50), money_from_float(stats.cost_p95)),
        cost_per_successful_task_usd=total_cost / successful if total_cost is not None and successful else None,
        task_latency_ms=LatencyStats(_float_or_none(stats.latency_p50), _float_or_none(stats.latency_p95)),
    )


def selection_size(conn: Connection, filters: Filters | None = None) -> SelectionSize:
    """Count the tasks and model calls in the selection."""
    filters = filters or Filters()
    task_count = sa.select(sa.func.count()).select_from(tasks).where(*task_conditions(filters)).scalar_subquery()
    call_count = sa.select(sa.func.count()).select_from(model_calls).where(*call_conditions(filters)).scalar_subquery()
    row = conn.execute(sa.select(task_count.label("tasks"), call_count.label("calls"))).one()
    return SelectionSize(tasks=row.tasks, model_calls=row.calls)


def task_names(conn: Connection) -> list[str]:
    """Every task name in the store, sorted; ``"(untracked)"`` is included when such calls exist."""
    names = sa.union(sa.select(tasks.c.name.label("name")), sa.select(model_calls.c.task_name.label("name")))
    return sorted(conn.execute(names).scalars())


def _float_or_none(value: float | Decimal | None) -> float | None:
    return None if value is None else float(value)
