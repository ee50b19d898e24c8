from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from agentprof import analytics
from agentprof.analytics import CostStats, Filters, SelectionSize, Summary
from tests.analytics._data import T1, add_call, add_task


def test_summary_of_everything(conn: sa.Connection) -> None:
    result = analytics.summary(conn, Filters())
    assert result.tasks == 4
    assert result.failed_tasks == 1
    assert result.model_calls == 8
    assert result.unpriced_calls == 2
    assert result.total_cost_usd == Decimal("0.0445")
    # per-task costs: T1 0.0335, T2 0.001 (+1 unpriced), T3 0 (no calls); T4 only unpriced: left out
    assert result.cost_per_task_usd == CostStats(
        mean=Decimal("0.0345") / 3, p50=Decimal("0.001"), p95=Decimal("0.03025")
    )
    assert result.cost_per_successful_task_usd == Decimal("0.0445") / 3
    assert result.task_latency_ms.p50 == pytest.approx(1500.0)
    assert result.task_latency_ms.p95 == pytest.approx(2850.0)


def test_summary_money_is_exact_decimal(conn: sa.Connection) -> None:
    result = analytics.summary(conn)
    assert isinstance(result.total_cost_usd, Decimal)
    assert str(result.total_cost_usd.normalize()) == "0.0445"


def test_summary_of_one_task_name(conn: sa.Connection) -> None:
    result = analytics.summary(conn, Filters(task="triage"))
    assert (result.tasks, result.failed_tasks, result.model_calls, result.unpriced_calls) == (2, 1, 6, 1)
    assert result.total_cost_usd == Decimal("0.0345")
    assert result.cost_per_task_usd == CostStats(Decimal("0.01725"), Decimal("0.01725"), Decimal("0.031875"))
    assert result.cost_per_successful_task_usd == Decimal("0.0345")


def test_all_calls_unpriced_means_unknown_total_not_zero(conn: sa.Connection) -> None:
    result = analytics.summary(conn, Filters(task="research"))
    assert (result.tasks, result.model_calls, result.unpriced_calls) == (2, 1, 1)
    assert result.total_cost_usd is None
    assert result.cost_per_successful_task_usd is None
    # T3 has no calls (costs 0); T4's cost is unknown and left out
    assert result.cost_per_task_usd == CostStats(Decimal(0), Decimal(0), Decimal(0))


def test_since_selects_tasks_and_calls_by_start_time(conn: sa.Connection) -> None:
    since = datetime(2025, 1, 1, 11, 30, tzinfo=UTC)
    result = analytics.summary(conn, Filters(since=since))
    assert (result.tasks, result.model_calls, result.total_cost_usd) == (2, 1, None)
    # the same instant in another time zone selects the same rows
    other_zone = since.astimezone(timezone(timedelta(hours=-5)))
    assert analytics.summary(conn, Filters(since=other_zone)) == result


def test_naive_since_is_utc(conn: sa.Connection) -> None:
    assert analytics.summary(conn, Filters(since=datetime(2025, 1, 1, 11, 30))).tasks == 2


def test_summary_of_empty_store(empty_conn: sa.Connection) -> None:
    assert analytics.summary(empty_conn) == Summary(
        tasks=0,
        failed_tasks=0,
        model_calls=0,
        unpriced_calls=0,
        total_cost_usd=Decimal(0),
        cost_per_task_usd=CostStats(None, None, None),
        cost_per_successful_task_usd=None,
        task_latency_ms=analytics.LatencyStats(None, None),
    )


def test_tasks_without_calls_cost_zero(empty_conn: sa.Connection) -> None:
    add_task(empty_conn, T1, "idle", datetime(2025, 1, 1), 10.0, True)
    result = analytics.summary(empty_conn)
    assert result.total_cost_usd == 0
    assert result.cost_per_task_usd == CostStats(Decimal(0), Decimal(0), Decimal(0))
    assert result.cost_per_successful_task_usd == 0


def test_tiny_costs_keep_every_digit(empty_conn: sa.Connection) -> None:
    for index, cost in enumerate(["0.000000001", "0.123456789012345678"]):
        add_call(empty_conn, f"c{index}", parent=None, task_id=None, task_name="(untracked)", step_name="(task)",
                 start=datetime(2025, 1, 1), duration_ms=1.0, provider="p", model="m", cost=cost)  # fmt: skip
    assert analytics.summary(empty_conn).total_cost_usd == Decimal("0.123456790012345678")


def test_selection_size_and_task_names(conn: sa.Connection) -> None:
    assert analytics.selection_size(conn, Filters()) == SelectionSize(tasks=4, model_calls=8)
    assert analytics.selection_size(conn, Filters(task="nope")).empty
    assert analytics.selection_size(conn, Filters(task="(untracked)")) == SelectionSize(tasks=0, model_calls=1)
    assert analytics.task_names(conn) == ["(untracked)", "research", "triage"]


def test_public_names() -> None:
    assert analytics.__all__ == sorted(analytics.__all__)
    assert {name for name in dir(analytics) if not name.startswith("_")} >= set(analytics.__all__)
