"""``Repricer``: per-token rates per price entry must give exactly what ``price_call`` gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from agentprof._usage import CanonicalUsage
from agentprof.pricing import price_call
from agentprof.pricing._reprice import Repricer

MOMENTS = (
    datetime(2025, 5, 1, 12, tzinfo=UTC),  # o3 before its 2025-06-10 price cut
    datetime(2025, 7, 1, 3, tzinfo=UTC),
    datetime(2026, 1, 1, 10, tzinfo=UTC),  # deepseek peak hours
    datetime(2026, 1, 1, 20, tzinfo=UTC),  # deepseek off-peak
)


def random_usage(rnd: random.Random) -> CanonicalUsage:
    total = rnd.randint(0, 300_000)  # crosses the 200k long-context tiers
    read = rnd.randint(0, total // 2)
    write = rnd.randint(0, total - read)
    write_5m = rnd.choice([None, rnd.randint(0, write // 2)])
    write_1h = rnd.choice([None, rnd.randint(0, write - (write_5m or 0))])
    output = rnd.randint(0, 4000)
    return CanonicalUsage(total, output, read, write, write_5m, write_1h, rnd.randint(0, output))


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4.1-nano"),
        ("openai", "o3"),  # price history
        ("anthropic", "claude-sonnet-4-5"),  # long-context tiers: one set of rates per band
        ("anthropic", "claude-haiku-4-5"),
        ("google", "gemini-2.5-pro"),
        ("deepseek", "deepseek-chat"),  # time-of-day prices
    ],
)
def test_same_cost_as_price_call(provider: str, model: str) -> None:
    repricer = Repricer(provider, model)
    rnd = random.Random(model)
    for i in range(200):
        usage, moment = random_usage(rnd), MOMENTS[i % len(MOMENTS)]
        expected = price_call(usage, repricer.ref, timestamp=moment).cost_usd
        assert repricer.cost(usage, moment) == expected
        assert repricer.cost_at_ns(usage, int(moment.timestamp()) * 1_000_000_000) == expected


def test_price_history_is_followed() -> None:
    repricer = Repricer("openai", "o3")
    usage = CanonicalUsage(input_tokens=1_000_000)
    assert repricer.cost(usage, MOMENTS[0]) == 10
    assert repricer.cost(usage, MOMENTS[1]) == 2


def test_names_and_unknown_models() -> None:
    proxied = Repricer("my-proxy", "gpt-4o-2024-08-06")
    assert (proxied.known, proxied.priced_model, proxied.priced_provider) == (True, "gpt-4o", "openai")
    unknown = Repricer("openai", "gpt-9-ultra")
    assert not unknown.known and unknown.error == "unknown model 'gpt-9-ultra' for provider 'openai'"
    assert unknown.cost(CanonicalUsage(input_tokens=10), MOMENTS[0]) is None
