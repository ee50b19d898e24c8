"""The receiver's price memo answers exactly what ``price_call`` would, per call."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from agentprof._usage import CanonicalUsage
from agentprof.ingest._prices import PriceMemo
from agentprof.pricing import UserPrices, price_call, resolve_model

LONG = CanonicalUsage(input_tokens=300_000, output_tokens=1_000, cache_read_tokens=100_000)
SHORT = CanonicalUsage(input_tokens=1_200, output_tokens=80, cache_read_tokens=1_024)
BEFORE = datetime(2026, 3, 1, tzinfo=UTC)
AFTER = datetime(2026, 4, 1, tzinfo=UTC)


def test_repeated_usage_is_priced_once_and_alike() -> None:
    memo = PriceMemo()
    ref = resolve_model("openai", "gpt-4o-mini", None)
    first = memo(SHORT, ref, timestamp=AFTER, user_prices=None)
    assert memo(SHORT, ref, timestamp=AFTER, user_prices=None) is first  # remembered
    assert first == price_call(SHORT, ref, timestamp=AFTER)
    other = CanonicalUsage(input_tokens=1_300, output_tokens=80)
    assert memo(other, ref, timestamp=AFTER, user_prices=None) == price_call(other, ref, timestamp=AFTER)


def test_the_price_in_force_at_each_call_applies() -> None:
    # claude-sonnet-4-6 had long-context tiers until 2026-03-13 and a flat price after.
    memo = PriceMemo()
    ref = resolve_model("anthropic", "claude-sonnet-4-6", None)
    before, after = price_call(LONG, ref, timestamp=BEFORE), price_call(LONG, ref, timestamp=AFTER)
    assert before.cost_usd != after.cost_usd
    for _ in range(2):
        assert memo(LONG, ref, timestamp=BEFORE, user_prices=None) == before
        assert memo(LONG, ref, timestamp=AFTER, user_prices=None) == after


def test_user_prices_unknown_models_and_unknown_usage() -> None:
    memo = PriceMemo(max_entries=2)
    user = UserPrices.from_table({"acme/widget-1": {"input": 1, "output": 2}}, "test")
    widget = resolve_model("acme", "widget-1", None)
    priced = memo(SHORT, widget, timestamp=AFTER, user_prices=user)
    assert priced == price_call(SHORT, widget, timestamp=AFTER, user_prices=user)
    assert priced.source == "user" and priced.cost_usd == Decimal("1200") / 1_000_000 + Decimal("160") / 1_000_000
    unknown = resolve_model("acme", "no-such-model", None)
    for _ in range(2):
        assert memo(SHORT, unknown, timestamp=AFTER, user_prices=None) == price_call(SHORT, unknown, timestamp=AFTER)
    assert not memo(None, widget, timestamp=AFTER, user_prices=user).priced
    assert len(memo._results) <= 2
