from __future__ import annotations

from decimal import Decimal

import pytest

from agentprof.reports.rules._base import ResidualLedger
from agentprof.reports.rules._config import ContextGrowthConfig, RulesConfig
from tests.reports.rules._call_factory import call, run

SONNET = {"provider": "anthropic", "model": "claude-sonnet-4-6"}  # $3 input, $0.30 cache read, $3.75 5m write


def loop(task: str = "t1", iterations: int = 10, *, cached: bool = False, growth: int = 1000) -> list:
    """An agent loop: a 3,000-token system prompt, then ``growth`` more tokens of history every iteration."""
    calls = []
    for k in range(iterations):
        prefixes = [("system", 3000, -1, "system")]
        prefixes += [(f"{task}-m{j}", 3000 + growth * (j + 1), j, "user") for j in range(k + 1)]
        input_tokens = 3000 + growth * (k + 1)
        calls.append(call(f"{task}-c{k}", at=10 * k, task=task, step="agent", fingerprint=f"{task}-{k}",
                          prefixes=prefixes, input_tokens=input_tokens, output_tokens=100, cost="1",
                          cache_read_tokens=input_tokens - growth if cached and k else 0, **SONNET))  # fmt: skip
    return calls


def test_a_growing_uncached_loop_saves_what_prompt_caching_would() -> None:
    [finding] = run("context_growth", loop())
    assert (finding.kind, finding.task, finding.step, finding.model) == (
        "context_growth",
        "support",
        "agent",
        "claude-sonnet-4-6",
    )
    evidence = finding.evidence
    assert (evidence["input_tokens"], evidence["new_tokens"], evidence["resent_tokens"]) == (85000, 13000, 72000)
    assert evidence["resend_ratio"] == round(85000 / 13000, 2)
    assert evidence["cached_fraction"] == 0
    # 72,000 re-sent tokens x ($3 - $0.30)/M, less the write premium 13,000 x ($3.75 - $3)/M.
    assert finding.estimated_savings_usd == pytest.approx(Decimal("0.18465"), abs=Decimal("1e-12"))
    assert finding.confidence == "medium"
    assert Decimal(evidence["resent_cost_usd"]) == Decimal("0.216")  # 72,000 x $3/M
    assert len(finding.span_ids) == 9
    assert "enable prompt caching" in finding.suggestion


def test_an_already_cached_loop_suggests_compaction_without_savings() -> None:
    [finding] = run("context_growth", loop(cached=True))
    assert (finding.estimated_savings_usd, finding.confidence) == (0, "low")
    assert "compact or trim" in finding.suggestion


def test_short_flat_or_fresh_sequences_are_not_flagged() -> None:
    assert run("context_growth", loop(iterations=7)) == []
    flat = [call(f"c{k}", at=k, step="agent", fingerprint=f"f{k}", prefixes=[("system", 3000, -1, "system"),
            (f"m{k}", 4000, 0, "user")], input_tokens=4000, **SONNET) for k in range(10)]  # fmt: skip
    assert run("context_growth", flat) == []
    # Input grows but nothing is re-sent: every call has a fresh history after the system prompt.
    fresh = [call(f"c{k}", at=k, step="agent", fingerprint=f"f{k}", prefixes=[("system", 100, -1, "system"),
             (f"m{k}", 1000 * (k + 1), 0, "user")], input_tokens=1000 * (k + 1), **SONNET)
             for k in range(10)]  # fmt: skip
    assert run("context_growth", fresh) == []


def test_thresholds_are_configurable() -> None:
    strict = RulesConfig(context_growth=ContextGrowthConfig(min_resend_ratio=7))
    assert run("context_growth", loop(), config=strict) == []
    short = RulesConfig(context_growth=ContextGrowthConfig(min_iterations=5, min_resend_ratio=4))
    assert len(run("context_growth", loop(iterations=6), config=short)) == 1


def test_loops_aggregate_over_tasks_and_savings_claimed_earlier_are_not_counted_again() -> None:
    calls = loop("t1") + loop("t2")
    [finding] = run("context_growth", calls)
    assert finding.evidence["loops"] == 2
    assert finding.estimated_savings_usd == pytest.approx(Decimal("0.3693"), abs=Decimal("1e-12"))
    ledger = ResidualLedger(calls)
    for c in loop("t2"):
        ledger.claim(c.span_id, Decimal("1"))  # prompt_cache already claimed all of t2
    [finding] = run("context_growth", calls, ledger=ledger)
    assert finding.estimated_savings_usd == pytest.approx(Decimal("0.18465"), abs=Decimal("1e-12"))


def test_calls_of_one_step_with_two_system_prompts_are_two_loops() -> None:
    first, second = loop("t1"), loop("t1")
    renamed = [
        c._replace(span_id=c.span_id + "-b", start_ns=c.start_ns + 5 * 10**9,
                   prefix_fingerprints_json=(c.prefix_fingerprints_json or "").replace('"system"', '"other-system"', 1))
        for c in second
    ]  # fmt: skip
    [finding] = run("context_growth", first + renamed)
    assert finding.evidence["loops"] == 2
    assert finding.evidence["input_tokens"] == 2 * 85000


def test_errors_inside_a_loop_count_against_its_length() -> None:
    calls = loop(iterations=8)
    assert len(run("context_growth", calls)) == 1
    failed = calls[:3] + [calls[3]._replace(status="error", usage_known=False)] + calls[4:]
    assert run("context_growth", failed) == []  # 7 calls left: below min_iterations
