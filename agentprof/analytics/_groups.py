"""The selection's calls summed by (task, step, provider, model): what the report's tables add up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentprof.analytics._sql import (
    Filters,
    call_conditions,
    model_name,
    money,
    priced_cost,
    sum_tokens,
    to_decimal,
    unpriced_flag,
)
from agentprof.store.schema import model_calls

#: Digits a sum of stored amounts can need: ``NUMERIC(38, 18)`` values, and a few more for the carry.
EXACT_DIGITS = 48


class CallTotals(NamedTuple):
    """What some calls add up to; the names are those of :class:`~agentprof.analytics.StepRow`'s fields."""

    model_calls: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: Decimal | None  # priced calls only; None when none is priced
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class CallGroup:
    """The calls of one (task, step, provider, model): the finest grain the report's tables add up.

    The step and model tables, the summary's call totals and the rules' scaling of a sample
    (``group_totals``) are sums of these rows, so a report reads the calls once for all of them
    instead of once each (at ten million calls each of those scans cost about as much as a whole
    ``GROUP BY`` with a p95).
    """

    task: str
    step: str
    provider: str | None
    model: str | None
    totals: CallTotals


def call_groups(conn: Connection, filters: Filters | None = None) -> list[CallGroup]:
    """Sum the selected calls by (task, step, provider, model): one scan, a few hundred rows."""
    filters = filters or Filters()
    model = model_name()
    group = (model_calls.c.task_name, model_calls.c.step_name, model_calls.c.provider, model)
    rows = conn.execute(
        sa.select(
            *group,
            sa.func.count(),
            sum_tokens(model_calls.c.input_tokens),
            sum_tokens(model_calls.c.cache_read_tokens),
            sum_tokens(model_calls.c.cache_write_tokens),
            sum_tokens(model_calls.c.output_tokens),
            money(sa.func.sum(priced_cost())),
            sa.func.sum(unpriced_flag()),
        )
        .where(*call_conditions(filters))
        .group_by(*group)
    ).all()
    return [
        CallGroup(
            task, step, provider, model, CallTotals(n, int(i), int(cr), int(cw), int(o), to_decimal(cost), int(u))
        )
        for task, step, provider, model, n, i, cr, cw, o, cost, u in rows
    ]


def add_up(groups: Iterable[CallGroup]) -> CallTotals:
    """The totals of ``groups`` together (the cost exact, ``None`` when no call is priced)."""
    totals = [group.totals for group in groups]
    return CallTotals(
        sum(t.model_calls for t in totals),
        sum(t.input_tokens for t in totals),
        sum(t.cache_read_tokens for t in totals),
        sum(t.cache_write_tokens for t in totals),
        sum(t.output_tokens for t in totals),
        exact_total([t.cost_usd for t in totals]),
        sum(t.unpriced_calls for t in totals),
    )


def exact_total(costs: list[Decimal | None]) -> Decimal | None:
    """The exact sum of the known costs, ``None`` if none is known (as SQL's ``sum`` of NULLs).

    Exact beyond the default context's 28 digits: the store keeps 38 (``NUMERIC(38, 18)``).
    """
    known = [cost for cost in costs if cost is not None]
    if not known:
        return None
    with localcontext(prec=EXACT_DIGITS):
        return sum(known, Decimal(0))
