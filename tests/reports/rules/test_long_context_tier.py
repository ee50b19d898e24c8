"""``long_context_tier``: calls just over a long-context price tier, re-priced as if trimmed to the tier start."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from agentprof._usage import CanonicalUsage
from agentprof.pricing import price_call, resolve_model
from agentprof.reports.rules._config import LongContextTierConfig, RulesConfig
from agentprof.reports.rules._prices import PriceBook
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


def test_step_totals_count_the_calls_the_rule_prices() -> None:
    over = [call(f"c{k}", at=k, input_tokens=210_000, output_tokens=500, cost=str(cost(210_000)), **SONNET)
            for k in range(2)]  # fmt: skip
    others = [
        call("small", at=3, input_tokens=1000, output_tokens=500, cost=str(cost(1000)), **SONNET),  # counted
        call("unpriced", at=4, input_tokens=210_000, cost=None, **SONNET),
        call("failed", at=5, status="error", input_tokens=210_000, **SONNET),
        call("unknown", at=6, input_tokens=210_000, cost="1", usage_known=False, **SONNET),
        call("flat", at=7, input_tokens=210_000, cost="1", provider="openai", model="gpt-4o"),  # another model
    ]
    [finding] = run("long_context_tier", over + others)
    assert finding.span_ids == ("c0", "c1")
    assert finding.evidence["step_calls"] == 3
    assert finding.current_cost_usd == 2 * cost(210_000) + cost(1000)


def test_price_book_gives_each_tier_its_own_prices() -> None:
    """Calls below a model's first tier share its one price entry; above it, each tier's are looked up."""
    book, fresh = PriceBook(), PriceBook()
    below, above = call("below", input_tokens=1000, **SONNET), call("above", input_tokens=210_000, **SONNET)
    base = book.get(below)
    assert base is not None and book.get(above) is not base
    assert book.get(above, input_tokens=1000) is base and book.get(below, input_tokens=210_000) is book.get(above)
    assert book.get(call("again", at=9, input_tokens=200_000, **SONNET)) is base  # the tier applies above its start
    for one in (below, above):
        assert book.get(one).per_mtok() == fresh.get(one).per_mtok()  # type: ignore[union-attr]
    flat = call("flat", provider="openai", model="gpt-4o")
    assert book.get(flat) is book.get(flat._replace(input_tokens=500_000)) is not None
