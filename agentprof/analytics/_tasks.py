"""Individual tasks: the recent ones, with what each cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agentprof.analytics._sql import Filters, money, priced_cost, sum_tokens, task_conditions, to_decimal, unpriced_flag
from agentprof.store.schema import model_calls, tasks


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task and the totals of its model calls.

    Attributes:
        task_id: The task's id (the span id of its task span).
        start_time: When it started, naive UTC.
        status: ``"ok"`` or ``"error"``: whether the task raised.
        success: The task's outcome (a task may finish without error and still fail).
        cost_usd: Sum of its priced calls; 0 without calls, ``None`` when every call is unpriced.
    """

    task_id: str
    name: str
    start_time: datetime
    duration_ms: float
    status: str
    error_type: str | None
    success: bool
    model_calls: int
    unpriced_calls: int
    cost_usd: Decimal | None
    input_tokens: int
    output_tokens: int


def tasks_list(conn: Connection, filters: Filters | None = None, limit: int | None = 20) -> list[TaskRow]:
    """The most recent tasks of the selection, newest first (``limit=None`` for all)."""
    return select_tasks(conn, task_conditions(filters or Filters()), limit)


def select_tasks(conn: Connection, conditions: list[ColumnElement[bool]], limit: int | None) -> list[TaskRow]:
    """Tasks matching ``conditions`` with their call totals, newest first."""
    per_task = (
        sa.select(
            model_calls.c.task_id,
            sa.func.count().label("calls"),
            sa.func.sum(unpriced_flag()).label("unpriced"),
            money(sa.func.sum(priced_cost())).label("cost"),
            sum_tokens(model_calls.c.input_tokens).label("input_tokens"),
            sum_tokens(model_calls.c.output_tokens).label("output_tokens"),
        )
        .where(model_calls.c.task_id.is_not(None))
        .group_by(model_calls.c.task_id)
        .subquery("per_task")
    )
    query = (
        sa.select(
            tasks.c.task_id,
            tasks.c.name,
            tasks.c.start_time,
            tasks.c.duration_ms,
            tasks.c.status,
            tasks.c.error_type,
            tasks.c.success,
            per_task.c.calls,
            per_task.c.unpriced,
            per_task.c.cost,
            per_task.c.input_tokens,
            per_task.c.output_tokens,
        )
        .select_from(tasks.outerjoin(per_task, per_task.c.task_id == tasks.c.task_id))
        .where(*conditions)
        .order_by(tasks.c.start_time.desc(), tasks.c.task_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [_task_row(row) for row in conn.execute(query)]


def _task_row(row: Any) -> TaskRow:
    calls = int(row.calls or 0)
    cost = to_decimal(row.cost)
    return TaskRow(
        task_id=row.task_id,
        name=row.name,
        start_time=row.start_time,
        duration_ms=float(row.duration_ms),
        status=row.status,
        error_type=row.error_type,
        success=bool(row.success),
        model_calls=calls,
        unpriced_calls=int(row.unpriced or 0),
        cost_usd=Decimal(0) if calls == 0 else cost,
        input_tokens=int(row.input_tokens or 0),
        output_tokens=int(row.output_tokens or 0),
    )
