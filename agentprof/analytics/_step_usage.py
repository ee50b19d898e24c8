"""One step's model calls summed by recorded usage: what re-pricing them on another model needs.

Why grouped in SQL: re-pricing a call depends only on its canonical usage and on the target
model's price entry in force when it started, so calls that agree on both cost the same and are
priced once per group (the sum of ``n`` identical prices is ``n`` times one). In the benchmarks'
store of ten million calls a step of one to two million calls makes 8 to 1,124 groups; at worst
(every usage distinct) a group per call, still read a chunk at a time. Reading the calls as records
instead held every call of the store in memory (``agentprof whatif`` there: 94 s and 18 GB; now 2 s).

The caller says when the target's price entry can change (``Repricer.price_periods``): its start
dates, and whether it also depends on the time of day (off-peak prices change on whole minutes).
Calls are grouped by the period they started in, and by the minute of the day when needed: a step
spanning a year still makes at most 1,440 periods per start date, not one per minute.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agentprof.analytics._sql import Filters, call_conditions, model_name, money, priced_cost
from agentprof.store.schema import model_calls

_NS_PER_MINUTE = 60 * 1_000_000_000
_NS_PER_DAY = 24 * 60 * _NS_PER_MINUTE
#: When a target's price entry can change: the instants from which another one may apply
#: (ascending), and whether it also depends on the minute of the day (``Repricer.price_periods``).
PricePeriods = tuple[tuple[int, ...], bool]
#: Groups fetched from the driver at a time: memory stays bounded however many groups a step has.
_CHUNK = 10_000


class UsageGroup(NamedTuple):
    """Calls of one step, task name and price period that recorded the same usage.

    ``repriceable`` calls are priced and reported their usage; the others only count (their usage
    fields and ``period`` are ``None``). Token fields follow ``CallRecord``: unknown counts are 0,
    except the two cache-write durations, which stay ``None`` when not reported.
    """

    task: str
    repriceable: bool
    period: int | None
    first_start_ns: int
    calls: int
    cost_usd: Decimal | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cache_write_5m_tokens: int | None
    cache_write_1h_tokens: int | None
    reasoning_tokens: int | None


def _repriceable() -> ColumnElement[bool]:
    condition = sa.and_(priced_cost().is_not(None), model_calls.c.usage_known.is_(True))
    return sa.case((condition, sa.true()), else_=sa.false())


def _period(periods: PricePeriods | None) -> ColumnElement[Any]:
    """The price period a call started in (see :data:`PricePeriods`), or its minute without ``periods``."""
    start = model_calls.c.start_time_ns
    if periods is None:
        return start - start % _NS_PER_MINUTE
    changes, within_days = periods
    period: ColumnElement[Any] = sa.literal(0, sa.BigInteger())
    if changes:
        period = sa.case(*((start < change, index) for index, change in enumerate(changes)), else_=len(changes))
    if within_days:  # the period's index, then the minute of the day
        period = period * _NS_PER_DAY + (start % _NS_PER_DAY - start % _NS_PER_MINUTE)
    return period


#: The names of the grouping keys after the task name, in :class:`UsageGroup`'s order.
_KEYS = (
    "period",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _step_conditions(filters: Filters, step: str) -> list[ColumnElement[bool]]:
    return [*call_conditions(filters), model_calls.c.step_name == step]


def _step_calls(filters: Filters, step: str, periods: PricePeriods | None) -> sa.Subquery:
    """The selected calls of ``step``, one row each, with their keys computed once.

    A subquery, so that the outer ``GROUP BY`` names plain columns: PostgreSQL (and DuckDB) do not
    match a grouped expression whose bound parameters are numbered apart from the selected one.
    """
    c = model_calls.c
    repriceable = _repriceable()
    values: list[ColumnElement[Any]] = [
        _period(periods),
        sa.func.coalesce(c.input_tokens, 0),
        sa.func.coalesce(c.output_tokens, 0),
        sa.func.coalesce(c.cache_read_tokens, 0),
        sa.func.coalesce(c.cache_write_tokens, 0),
        c.cache_write_5m_tokens,
        c.cache_write_1h_tokens,
        sa.func.coalesce(c.reasoning_tokens, 0),
    ]
    return (
        sa.select(
            c.task_name,
            sa.func.coalesce(sa.func.nullif(c.task_id, ""), c.span_id).label("task"),
            repriceable.label("repriceable"),
            c.start_time_ns,
            priced_cost().label("cost"),
            *(sa.case((repriceable, value)).label(name) for name, value in zip(_KEYS, values, strict=True)),
        )
        .where(*_step_conditions(filters, step))
        .subquery("step_calls")
    )


def usage_groups(conn: Connection, filters: Filters, step: str, periods: PricePeriods | None) -> Iterator[UsageGroup]:
    """The selected calls of ``step`` by task name, price period and usage (see the module docstring).

    Read to the end before running another query on ``conn``: the rows come from its open cursor.
    """
    calls = _step_calls(filters, step, periods)
    keys = [calls.c[name] for name in _KEYS]
    query = sa.select(
        calls.c.task_name,
        calls.c.repriceable,
        keys[0],
        sa.func.min(calls.c.start_time_ns),
        sa.func.count(),
        money(sa.func.sum(calls.c.cost)),
        *keys[1:],
    ).group_by(calls.c.task_name, calls.c.repriceable, *keys)
    result = conn.execute(query)
    for rows in result.partitions(_CHUNK):
        for row in rows:
            yield UsageGroup(*row)


def distinct_tasks(
    conn: Connection,
    filters: Filters,
    step: str,
    periods: PricePeriods | None,
    left_out: Sequence[UsageGroup] = (),
) -> tuple[dict[str, int], int]:
    """Tasks with a repriceable call of ``step``: per task name, and in all.

    A call outside any task counts as its own task, as in the per-task means. ``left_out`` are
    groups the caller could not re-price: their calls do not make a task count.
    """
    calls = _step_calls(filters, step, periods)
    conditions: list[ColumnElement[bool]] = [calls.c.repriceable]
    for group in left_out:
        same = [calls.c.task_name == group.task]
        same += [calls.c[name].is_not_distinct_from(getattr(group, name)) for name in _KEYS]
        conditions.append(sa.not_(sa.and_(*same)))
    count = sa.func.count(sa.distinct(calls.c.task))
    per_name = conn.execute(sa.select(calls.c.task_name, count).where(*conditions).group_by(calls.c.task_name)).all()
    overall = conn.execute(sa.select(count).where(*conditions)).scalar_one()
    return {name: int(tasks) for name, tasks in per_name}, int(overall)


def step_models(conn: Connection, filters: Filters, step: str) -> list[tuple[str | None, str | None]]:
    """Distinct ``(provider, model)`` of the selected calls of ``step`` (the model answered, else asked for)."""
    query = sa.select(model_calls.c.provider, model_name()).where(*_step_conditions(filters, step)).distinct()
    return [(provider, model) for provider, model in conn.execute(query)]


def step_names(conn: Connection, filters: Filters) -> list[str]:
    """The step names of the selected calls, sorted."""
    query = sa.select(model_calls.c.step_name).where(*call_conditions(filters)).distinct()
    return sorted(name for (name,) in conn.execute(query))
