from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from agentprof import analytics
from agentprof.analytics import Filters, ModelRow
from tests.analytics._data import BASE, add_call

TOTAL = Decimal("0.0445")


def test_steps_sorted_by_cost_with_unpriced_last(conn: sa.Connection) -> None:
    rows = analytics.steps(conn, Filters())
    assert [(row.task, row.step, row.cost_usd, row.unpriced_calls) for row in rows] == [
        ("triage", "draft", Decimal("0.03"), 0),
        ("(untracked)", "(task)", Decimal("0.01"), 0),
        ("triage", "classify", Decimal("0.004"), 0),
        ("triage", "(task)", Decimal("0.0005"), 0),
        ("research", "search", None, 1),
        ("triage", "answer", None, 1),
    ]


def test_step_row_values(conn: sa.Connection) -> None:
    by_step = {(row.task, row.step): row for row in analytics.steps(conn)}
    draft = by_step["triage", "draft"]
    assert draft.models == ("claude-sonnet-4-20250514",)  # response model wins over the requested one
    assert (draft.input_tokens, draft.cache_read_tokens, draft.cache_write_tokens, draft.output_tokens) == (
        5000,
        4000,
        200,
        500,
    )
    assert draft.share == pytest.approx(float(Decimal("0.03") / TOTAL))
    classify = by_step["triage", "classify"]
    assert (classify.model_calls, classify.models, classify.input_tokens, classify.output_tokens) == (
        3,
        ("gpt-4o-mini",),
        3000,
        300,
    )
    assert classify.latency_ms.p50 == pytest.approx(200.0)
    assert classify.latency_ms.p95 == pytest.approx(290.0)
    assert by_step["triage", "answer"].share is None
    assert sum(row.share or 0 for row in by_step.values()) == pytest.approx(1.0)


def test_steps_of_one_task(conn: sa.Connection) -> None:
    rows = analytics.steps(conn, Filters(task="research"))
    assert [(row.step, row.models, row.cost_usd, row.share) for row in rows] == [
        ("search", ("my-local-llm",), None, None)
    ]


def test_models(conn: sa.Connection) -> None:
    rows = analytics.models(conn, Filters())
    assert [(row.provider, row.model, row.model_calls, row.cost_usd, row.unpriced_calls) for row in rows] == [
        ("anthropic", "claude-sonnet-4-20250514", 1, Decimal("0.03"), 0),
        ("openai", "gpt-4o", 1, Decimal("0.01"), 0),
        ("openai", "gpt-4o-mini", 4, Decimal("0.0045"), 0),
        ("vllm", "my-local-llm", 2, None, 2),
    ]
    mini = rows[2]
    assert mini == ModelRow(
        provider="openai",
        model="gpt-4o-mini",
        model_calls=4,
        input_tokens=4000,
        cache_read_tokens=0,
        cache_write_tokens=0,
        output_tokens=400,
        cost_usd=Decimal("0.0045"),
        unpriced_calls=0,
        share=mini.share,
    )
    assert mini.share == pytest.approx(float(Decimal("0.0045") / TOTAL))


def test_breakdowns_of_empty_store(empty_conn: sa.Connection) -> None:
    assert analytics.steps(empty_conn) == []
    assert analytics.models(empty_conn) == []


def test_step_model_and_summary_sums_stay_exact_beyond_28_digits(engine: sa.Engine) -> None:
    # Each amount has 30 significant digits: Decimal's default context (28) would round their sum.
    amounts = ["12345678901.123456789012345678", "98765432109.876543210987654320", "0.000000000000000001"]
    with engine.begin() as conn:
        for index, (amount, provider) in enumerate(zip(amounts, ("openai", "azure", "openai"), strict=True)):
            add_call(
                conn,
                f"c{index}",
                parent=None,
                task_id="t1",
                task_name="big",
                step_name="loop",
                start=BASE,
                duration_ms=100.0 * (index + 1),
                provider=provider,
                model="gpt-4o",
                cost=amount,
            )
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT sum(cost_usd) FROM model_calls")).scalar_one()
        (step,) = analytics.steps(conn)
        by_provider = {row.provider: row for row in analytics.models(conn)}
        groups = analytics.call_groups(conn)
        total = analytics.summary(conn, groups=groups).total_cost_usd
    assert step.cost_usd == stored == total == Decimal("111111111010.999999999999999999")
    assert step.model_calls == 3 and step.models == ("gpt-4o",)
    assert step.latency_ms.p50 == pytest.approx(200.0)
    assert by_provider["openai"].cost_usd == Decimal("12345678901.123456789012345679")
    assert by_provider["azure"].model_calls == 1
    assert sorted((group.provider, group.totals.model_calls) for group in groups) == [("azure", 1), ("openai", 2)]
