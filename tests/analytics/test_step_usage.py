"""One step's calls summed by task name, price period and usage, against the rows themselves."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from agentprof.analytics import Filters
from agentprof.analytics._step_usage import PricePeriods, UsageGroup, distinct_tasks, usage_groups
from agentprof.store.schema import model_calls
from tests.analytics._data import random_calls

#: claude-sonnet-4-6's price change (2026-03-13 00:00 UTC) as ``Repricer.price_periods`` gives it.
CHANGE_NS = 1_773_360_000_000_000_000
DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9


@pytest.fixture
def plan_conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.begin() as connection:
        random_calls(connection, random.Random(11))
    with engine.connect() as connection:
        yield connection


def _rows(conn: sa.Connection) -> list[sa.RowMapping]:
    """The calls of ``plan``; ``cost_text`` is the exact cost (duckdb-engine reads NUMERIC through a float)."""
    cost_text = sa.cast(model_calls.c.cost_usd, sa.String).label("cost_text")
    query = sa.select(model_calls, cost_text).where(model_calls.c.step_name == "plan")
    return list(conn.execute(query).mappings())


def _repriceable(row: sa.RowMapping) -> bool:
    return bool(row["priced"] and row["usage_known"])


def _key(row: sa.RowMapping, periods: PricePeriods | None) -> tuple[object, ...]:
    """The group a call belongs to, computed in Python as the module docstring defines it."""
    if not _repriceable(row):
        return (row["task_name"], False, None, None, None, None, None, None, None, None)
    start = row["start_time_ns"]
    if periods is None:
        period = start - start % MINUTE_NS
    else:
        changes, within_days = periods
        period = sum(1 for change in changes if start >= change)
        if within_days:
            period = period * DAY_NS + start % DAY_NS - start % MINUTE_NS
    usage = (
        row["input_tokens"],
        row["output_tokens"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
        row["cache_write_5m_tokens"],
        row["cache_write_1h_tokens"],
        row["reasoning_tokens"],
    )
    return (row["task_name"], True, period, *usage)


def _group_key(group: UsageGroup) -> tuple[object, ...]:
    return (group.task, group.repriceable, group.period, *group[6:])


@pytest.mark.parametrize("periods", [((), False), ((CHANGE_NS,), False), ((CHANGE_NS,), True), None])
def test_groups_sum_the_calls_that_share_task_period_and_usage(
    plan_conn: sa.Connection, periods: PricePeriods | None
) -> None:
    groups = list(usage_groups(plan_conn, Filters(), "plan", periods))
    rows = _rows(plan_conn)
    calls = Counter(_key(row, periods) for row in rows)
    assert {_group_key(group): group.calls for group in groups} == calls
    assert len(groups) < len(rows)  # the data repeats usages: grouping has something to do
    for group in groups:
        members = [row for row in rows if _key(row, periods) == _group_key(group)]
        assert group.first_start_ns == min(row["start_time_ns"] for row in members)
        priced = [Decimal(row["cost_text"]) for row in members if row["priced"]]
        assert group.cost_usd == (sum(priced, Decimal(0)) if priced else None)


def test_distinct_tasks_leave_out_the_groups_named(plan_conn: sa.Connection) -> None:
    periods: PricePeriods = ((CHANGE_NS,), False)
    groups = [group for group in usage_groups(plan_conn, Filters(), "plan", periods) if group.repriceable]
    left_out = groups[::3]
    dropped = {_group_key(group) for group in left_out}
    kept = [row for row in _rows(plan_conn) if _repriceable(row) and _key(row, periods) not in dropped]
    expected_by_name: dict[str, set[str]] = {}
    for row in kept:
        expected_by_name.setdefault(row["task_name"], set()).add(row["task_id"] or row["span_id"])

    by_name, overall = distinct_tasks(plan_conn, Filters(), "plan", periods, left_out)

    assert by_name == {name: len(tasks) for name, tasks in expected_by_name.items()}
    assert overall == len(set().union(*expected_by_name.values()))
    everything, _ = distinct_tasks(plan_conn, Filters(), "plan", periods)
    assert sum(everything.values()) > sum(by_name.values())  # leaving groups out changed the counts
