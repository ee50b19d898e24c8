from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from agentprof import analytics
from agentprof.analytics import Filters, ModelRow

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
