"""``long_context_tier``: calls just over a long-context price tier, re-priced as if trimmed to the tier start."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from agentprof._usage import CanonicalUsage
from agentprof.pricing import price_call, resolve_model
from agentprof.reports.rules._config import LongContextTierConfig, RulesConfig
from tests.reports.rules._call_factory import T0, call, run

SONNET = {"provider": "anthropic", "model": "claude-sonnet-4-6"}  # 200k-token tier in genai-prices


def cost(input_tokens: int, output_tokens: int = 500) -> Decimal:
    usage = CanonicalUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    result = price_call(
        usage, resolve_model("anthropic", "claude-sonnet-4-6"), timestamp=datetime.fromtimestamp(T0 / 1e9, UTC)
    )
    assert result.cost_usd is not None
    return result.cost_usd


def test_calls_just_over_the_tier_save_the_cliff() -> None:
    calls = [call(f"c{k}", at=k, step="research", input_tokens=210_000, output_tokens=500, cost=str(cost(210_000)),
                  **SONNET) for k in range(3)]  # fmt: skip
    [finding] = run("long_context_tier", calls)
    assert (finding.kind, finding.step, finding.confidence) == ("long_context_tier", "research", "medium")
    assert cost(200_000) < cost(200_001)  # the cliff: above the start every token pays the tier rate
    assert finding.estimated_savings_usd == 3 * (cost(210_000) - cost(200_000))
    assert finding.evidence["tier_starts"] == [200_000]
    assert finding.evidence["tokens_to_trim_max"] == 10_000
    assert "200,000" in finding.suggestion


def test_calls_far_over_or_under_the_tier_are_not_flagged() -> None:
    far = call("far", input_tokens=300_000, output_tokens=500, cost=str(cost(300_000)), **SONNET)
    under = call("under", input_tokens=199_000, output_tokens=500, cost=str(cost(199_000)), **SONNET)
    at = call("at", input_tokens=200_000, output_tokens=500, cost=str(cost(200_000)), **SONNET)
    flat = call("flat", input_tokens=210_000, cost="1", provider="openai", model="gpt-4o")  # no tiers
    assert run("long_context_tier", [far, under, at, flat]) == []


def test_the_margin_is_configurable() -> None:
    over = call("c", input_tokens=230_000, output_tokens=500, cost=str(cost(230_000)), **SONNET)  # 15% over
    assert len(run("long_context_tier", [over])) == 1  # default margin 20%
    narrow = RulesConfig(long_context_tier=LongContextTierConfig(max_over_fraction=0.1))
    assert run("long_context_tier", [over], config=narrow) == []
