from __future__ import annotations

from decimal import Decimal

from agentprof.reports._build import project
from agentprof.reports.rules._base import Finding


def finding(savings: str, confidence: str, task: str = "support") -> Finding:
    amount = Decimal(savings)
    return Finding("exact_cache", task, "s", None, amount, amount, (amount, amount), confidence, "do it")  # type: ignore[arg-type]


def test_projection_counts_only_high_and_medium_tracked_savings() -> None:
    findings = [finding("1", "high"), finding("2", "medium"), finding("50", "low"), finding("7", "high", "(untracked)")]
    result = project(findings, tasks=10, mean_cost_per_task=Decimal("0.5"), tasks_per_day=20)
    assert result.monthly_cost_usd == Decimal("300")  # 0.5 x 20 x 30
    assert result.monthly_savings_usd == Decimal("180")  # (1 + 2) / 10 x 20 x 30
    assert result.monthly_cost_after_usd == Decimal("120")


def test_projection_without_a_task_cost() -> None:
    result = project([finding("1", "high")], tasks=0, mean_cost_per_task=None, tasks_per_day=5)
    assert (result.tasks_per_day, result.monthly_cost_usd, result.monthly_savings_usd) == (5, None, None)
