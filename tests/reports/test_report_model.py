from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

import agentprof.reports
from agentprof.analytics import Filters
from agentprof.reports import Recommendation, Report, SavingsRange, build_report, render_json

SUMMARY_KEYS = {
    "tasks",
    "failed_tasks",
    "model_calls",
    "unpriced_calls",
    "total_cost_usd",
    "cost_per_task_usd",
    "cost_per_successful_task_usd",
    "task_latency_ms",
}
STEP_KEYS = {
    "task",
    "step",
    "model_calls",
    "models",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cost_usd",
    "unpriced_calls",
    "share",
    "latency_ms",
}
MODEL_KEYS = {
    "provider",
    "model",
    "model_calls",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cost_usd",
    "unpriced_calls",
    "share",
}


def test_json_keys_and_values(report: Report) -> None:
    data = json.loads(render_json(report))
    assert set(data) == {
        "schema_version",
        "generated_at",
        "store",
        "filters",
        "summary",
        "steps",
        "models",
        "recommendations",
        "recommendations_basis",
        "projection",
    }
    assert data["schema_version"] == 1
    assert data["generated_at"] == "2025-01-02T08:30:00Z"
    assert data["store"] == {"location": ".agentprof", "dialect": "duckdb"}
    assert data["filters"] == {"since": None, "task": None}
    assert data["recommendations"] == []
    assert data["recommendations_basis"] is None  # every call analysed
    assert data["projection"] is None
    summary = data["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert set(summary["cost_per_task_usd"]) == {"mean", "p50", "p95"}
    assert set(summary["task_latency_ms"]) == {"p50", "p95"}
    assert (summary["tasks"], summary["failed_tasks"], summary["model_calls"], summary["unpriced_calls"]) == (
        4,
        1,
        8,
        2,
    )
    assert summary["total_cost_usd"] == 0.0445  # money is a JSON number
    assert summary["cost_per_task_usd"]["p50"] == 0.001
    assert summary["cost_per_successful_task_usd"] == pytest.approx(0.0445 / 3)
    assert summary["task_latency_ms"] == {"p50": 1500.0, "p95": 2850.0}
    assert all(set(step) == STEP_KEYS for step in data["steps"])
    assert all(set(step["latency_ms"]) == {"p50", "p95"} for step in data["steps"])
    first = data["steps"][0]
    assert (first["task"], first["step"], first["models"], first["cost_usd"]) == (
        "triage",
        "draft",
        ["claude-sonnet-4-20250514"],
        0.03,
    )
    assert data["steps"][-1]["cost_usd"] is None
    assert all(set(model) == MODEL_KEYS for model in data["models"])
    assert [(m["provider"], m["model"], m["model_calls"], m["cost_usd"]) for m in data["models"]] == [
        ("anthropic", "claude-sonnet-4-20250514", 1, 0.03),
        ("openai", "gpt-4o", 1, 0.01),
        ("openai", "gpt-4o-mini", 4, 0.0045),
        ("vllm", "my-local-llm", 2, None),
    ]


def test_model_keeps_decimals_in_python(report: Report) -> None:
    assert report.summary.total_cost_usd == Decimal("0.0445")
    assert report.model_dump()["summary"]["total_cost_usd"] == Decimal("0.0445")


def test_json_round_trips(report: Report) -> None:
    again = Report.model_validate_json(render_json(report))
    assert again.summary.tasks == report.summary.tasks
    assert again.steps[0].cost_usd == Decimal("0.03")


def test_filters_are_reported_in_utc(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        built = build_report(conn, Filters(since=datetime(2025, 1, 1, 11, 30), task="research"))
    data = json.loads(render_json(built))
    assert data["filters"] == {"since": "2025-01-01T11:30:00Z", "task": "research"}
    assert data["summary"]["total_cost_usd"] is None
    assert data["store"]["dialect"] == "duckdb"


def test_recommendation_shape() -> None:
    finding = Recommendation(
        kind="prompt_caching",
        task="triage",
        step="draft",
        model="claude-sonnet-4",
        current_cost_usd=Decimal("0.03"),
        estimated_savings_usd=Decimal("0.02"),
        savings_range_usd=SavingsRange(low=Decimal("0.01"), high=Decimal("0.025")),
        confidence="medium",
        suggestion="Cache the system prompt.",
        evidence={"repeated_prefix_tokens": 4000},
    )
    assert json.loads(finding.model_dump_json())["savings_range_usd"] == {"low": 0.01, "high": 0.025}


def test_public_names() -> None:
    assert agentprof.reports.__all__ == sorted(agentprof.reports.__all__)
    assert all(hasattr(agentprof.reports, name) for name in agentprof.reports.__all__)
