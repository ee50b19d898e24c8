"""price_call with genai-prices: expected values are hand-computed from genai-prices' table rows.

Rates (USD per million tokens) read from the bundled genai-prices 0.2.3 data:
gpt-4o input 2.5, cache read 1.25, output 10; claude-sonnet-4-5 input 3, output 15, cache read 0.3,
cache write 3.75, 1h cache write 6, and above 200k input tokens 6 / 22.5 / 0.6 / 7.5 / 12;
gpt-5 input 1.25, output 10; sonar-deep-research output 8, output reasoning 3;
o3 input 10 / output 40 until 2025-06-10, then 2 / 8.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agentprof._usage import CanonicalUsage
from agentprof.pricing import ModelRef, PriceResult, price_call, resolve_model
from agentprof.pricing import _genai as genai_adapter

WHEN = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
M = Decimal(1_000_000)


def usd(micro_dollars: int) -> Decimal:
    """Sum of token counts times USD-per-million rates, as dollars."""
    return Decimal(micro_dollars) / M


def test_gpt_4o_with_cached_tokens() -> None:
    usage = CanonicalUsage(input_tokens=10_000, output_tokens=500, cache_read_tokens=4_000)
    result = price_call(usage, resolve_model("openai", "gpt-4o-2024-08-06"), timestamp=WHEN)
    expected_input = (6_000 * Decimal("2.5") + 4_000 * Decimal("1.25")) / M
    expected_output = 500 * Decimal(10) / M
    assert result.priced
    assert result.input_cost_usd == expected_input == Decimal("0.02")
    assert result.output_cost_usd == expected_output == Decimal("0.005")
    assert result.cost_usd == Decimal("0.025")
    assert result.source == "genai-prices"
    assert result.version == "genai-prices 0.2.3"
    assert (result.priced_provider, result.priced_model) == ("openai", "gpt-4o")
    assert result.unpriced_reason is None


def test_claude_with_cache_read_and_5m_and_1h_writes() -> None:
    usage = CanonicalUsage(
        input_tokens=50_000,
        output_tokens=2_000,
        cache_read_tokens=30_000,
        cache_write_tokens=15_000,
        cache_write_5m_tokens=10_000,
        cache_write_1h_tokens=5_000,
    )
    result = price_call(usage, resolve_model("anthropic", "claude-sonnet-4-5-20250929"), timestamp=WHEN)
    expected_input = (5_000 * Decimal(3) + 30_000 * Decimal("0.3") + 10_000 * Decimal("3.75") + 5_000 * Decimal(6)) / M
    assert result.input_cost_usd == expected_input == Decimal("0.0915")
    assert result.output_cost_usd == Decimal("0.03")
    assert result.cost_usd == Decimal("0.1215")
    assert result.priced_model == "claude-sonnet-4-5"


def test_claude_write_without_ttl_split_pays_the_5m_rate() -> None:
    usage = CanonicalUsage(input_tokens=20_000, output_tokens=0, cache_write_tokens=20_000)
    result = price_call(usage, resolve_model("anthropic", "claude-sonnet-4-5"), timestamp=WHEN)
    assert result.cost_usd == 20_000 * Decimal("3.75") / M


def test_reasoning_tokens_are_not_double_counted() -> None:
    ref = resolve_model("openai", "gpt-5-2025-08-07")
    with_reasoning = CanonicalUsage(input_tokens=1_000, output_tokens=3_000, reasoning_tokens=2_500)
    without = CanonicalUsage(input_tokens=1_000, output_tokens=3_000)
    priced = price_call(with_reasoning, ref, timestamp=WHEN)
    assert priced.cost_usd == usd(1_000 * 125 // 100 + 3_000 * 10) == Decimal("0.03125")
    assert priced.cost_usd == price_call(without, ref, timestamp=WHEN).cost_usd


def test_separately_priced_reasoning_is_split_out_of_output() -> None:
    # sonar-deep-research bills reasoning at $3 instead of the $8 output rate.
    usage = CanonicalUsage(input_tokens=0, output_tokens=1_000, reasoning_tokens=600)
    result = price_call(usage, resolve_model("perplexity", "sonar-deep-research"), timestamp=WHEN)
    assert result.output_cost_usd == (400 * Decimal(8) + 600 * Decimal(3)) / M == Decimal("0.005")


@pytest.mark.parametrize(
    ("input_tokens", "expected"),
    [
        (199_999, (199_999 * Decimal(3) + 1_000 * Decimal(15)) / M),  # $0.614997
        (200_000, (200_000 * Decimal(3) + 1_000 * Decimal(15)) / M),  # the tier starts *above* 200k
        (200_001, (200_001 * Decimal(6) + 1_000 * Decimal("22.5")) / M),  # $1.222506: all tokens at the tier rate
    ],
)
def test_long_context_tier_cliff(input_tokens: int, expected: Decimal) -> None:
    usage = CanonicalUsage(input_tokens=input_tokens, output_tokens=1_000)
    assert price_call(usage, resolve_model("anthropic", "claude-sonnet-4-5"), timestamp=WHEN).cost_usd == expected


def test_tier_is_chosen_by_total_input_including_cache() -> None:
    usage = CanonicalUsage(input_tokens=200_001, output_tokens=0, cache_read_tokens=200_000)
    result = price_call(usage, resolve_model("anthropic", "claude-sonnet-4-5"), timestamp=WHEN)
    assert result.cost_usd == (1 * Decimal(6) + 200_000 * Decimal("0.6")) / M


def test_price_history_o3() -> None:
    usage = CanonicalUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    ref = resolve_model("openai", "o3-2025-04-16")
    before = price_call(usage, ref, timestamp=datetime(2025, 5, 1, tzinfo=UTC))
    after = price_call(usage, ref, timestamp=datetime(2025, 7, 1, tzinfo=UTC))
    assert before.cost_usd == Decimal(50)
    assert after.cost_usd == Decimal(10)


def test_price_context_selects_a_variant() -> None:
    usage = CanonicalUsage(input_tokens=1_000_000, output_tokens=0)
    ref = resolve_model("openai", "o3")
    when = datetime(2026, 11, 1, tzinfo=UTC)
    assert price_call(usage, ref, timestamp=when).cost_usd == Decimal(2)
    assert price_call(usage, ref, timestamp=when, price_context={"service_tier": "flex"}).cost_usd == Decimal(1)


def test_unknown_model_is_unpriced_never_zero() -> None:
    usage = CanonicalUsage(input_tokens=100, output_tokens=100)
    result = price_call(usage, resolve_model("openai", "foo"), timestamp=WHEN)
    assert result == PriceResult(
        False, None, None, None, None, None, None, None, "unknown model 'foo' for provider 'openai'"
    )


def test_unknown_provider_without_a_known_model_is_unpriced() -> None:
    result = price_call(CanonicalUsage(10, 10), resolve_model("ollama", "llama3.1:8b"), timestamp=WHEN)
    assert not result.priced
    assert result.unpriced_reason == "unknown model 'llama3.1:8b' for provider 'ollama'"


def test_unknown_provider_falls_back_to_the_model_alone() -> None:
    result = price_call(CanonicalUsage(1_000_000, 0), ModelRef("my-gateway", "gpt-4o", "gpt-4o"), timestamp=WHEN)
    assert (result.priced, result.cost_usd, result.priced_provider) == (True, Decimal("2.5"), "openai")


def test_no_provider_finds_it_from_the_model() -> None:
    result = price_call(CanonicalUsage(0, 1_000_000), resolve_model(None, "claude-opus-4-1"), timestamp=WHEN)
    assert (result.cost_usd, result.priced_provider) == (Decimal(75), "anthropic")


def test_no_provider_and_unknown_model_is_unpriced() -> None:
    result = price_call(CanonicalUsage(10, 10), resolve_model(None, "totally-new-model"), timestamp=WHEN)
    assert result.unpriced_reason == "unknown model 'totally-new-model'"


def test_usage_none_is_unpriced() -> None:
    result = price_call(None, resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert not result.priced and result.cost_usd is None
    assert result.unpriced_reason == "usage unknown (stream ended early or error)"


def test_missing_model_is_unpriced() -> None:
    result = price_call(CanonicalUsage(10, 10), resolve_model("openai", None), timestamp=WHEN)
    assert not result.priced
    assert result.unpriced_reason == "model unknown (no model name reported)"


def test_zero_usage_of_a_known_model_is_a_real_zero() -> None:
    result = price_call(CanonicalUsage(0, 0), resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert result.priced and result.cost_usd == Decimal(0)


@pytest.mark.parametrize(
    "usage",
    [
        CanonicalUsage(input_tokens=10, output_tokens=0, cache_read_tokens=8, cache_write_tokens=3),
        CanonicalUsage(input_tokens=10, output_tokens=0, cache_write_tokens=4, cache_write_1h_tokens=5),
        CanonicalUsage(input_tokens=10, output_tokens=5, reasoning_tokens=6),
        CanonicalUsage(input_tokens=-1, output_tokens=5),
    ],
)
def test_inconsistent_usage_is_a_caller_bug(usage: CanonicalUsage) -> None:
    with pytest.raises(ValueError, match="invalid usage"):
        price_call(usage, resolve_model("openai", "gpt-4o"), timestamp=WHEN)


def test_genai_prices_failure_is_unpriced_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("bad\nprice data")

    monkeypatch.setattr(genai_adapter, "calculate", broken)
    result = price_call(CanonicalUsage(10, 10), resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert not result.priced and result.cost_usd is None
    assert result.unpriced_reason == "genai-prices failed: RuntimeError: bad price data"


@pytest.mark.parametrize(
    ("provider", "model", "usage"),
    [
        ("openai", "gpt-4o-2024-08-06", CanonicalUsage(10_000, 500, cache_read_tokens=4_000)),
        ("anthropic", "claude-sonnet-4-5", CanonicalUsage(250_000, 900, 1_000, 2_000, 500, 1_500, 300)),
        ("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0", CanonicalUsage(5_000, 100, 1_000, 1_000)),
        ("google", "gemini-2.5-pro", CanonicalUsage(300_000, 7_000, 100_000, reasoning_tokens=5_000)),
        ("azure", "gpt-4.1", CanonicalUsage(1_234, 567, 200)),
        ("perplexity", "sonar-deep-research", CanonicalUsage(1_000, 1_000, reasoning_tokens=700)),
    ],
)
def test_cached_lookup_matches_calc_price(provider: str, model: str, usage: CanonicalUsage) -> None:
    import genai_prices

    fields = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    reference = genai_prices.calc_price(
        genai_prices.Usage(**fields), model, provider_id=provider, genai_request_timestamp=WHEN
    )
    result = price_call(usage, resolve_model(provider, model), timestamp=WHEN)
    assert result.cost_usd == reference.total_price > 0
    assert (result.input_cost_usd, result.output_cost_usd) == (reference.input_price, reference.output_price)


@pytest.fixture
def custom_snapshot() -> Iterator[None]:
    from genai_prices import data_snapshot, types

    model = types.ModelInfo(
        id="gpt-4o",
        match=types.ClauseEquals(equals="gpt-4o"),
        prices=types.ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(2)),
    )
    provider = types.Provider(id="openai", name="OpenAI", api_pattern="https://api.openai.com", models=[model])
    snapshot = data_snapshot.DataSnapshot(
        providers=[provider], from_auto_update=True, timestamp=datetime(2026, 1, 2, 3, 4, 5)
    )
    data_snapshot.set_custom_snapshot(snapshot)
    try:
        yield
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_a_new_snapshot_replaces_cached_lookups(custom_snapshot: None) -> None:
    usage = CanonicalUsage(1_000_000, 1_000_000)
    result = price_call(usage, resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert result.cost_usd == Decimal(3)
    assert result.version == "genai-prices 0.2.3 (prices of 2026-01-02T03:04:05)"


def test_bundled_snapshot_is_back_after_a_custom_one(custom_snapshot: None) -> None:
    from genai_prices import data_snapshot

    data_snapshot.set_custom_snapshot(None)
    result = price_call(CanonicalUsage(1_000_000, 0), resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert (result.cost_usd, result.version) == (Decimal("2.5"), "genai-prices 0.2.3")


def test_every_bundled_price_is_reproduced_exactly() -> None:
    """The per-entry linear fast path gives calc_price's own numbers for every model genai-prices knows."""
    import genai_prices
    from genai_prices.data_snapshot import get_snapshot

    usages = [
        CanonicalUsage(1_234, 567),
        CanonicalUsage(50_000, 2_000, cache_read_tokens=30_000, cache_write_tokens=5_000, reasoning_tokens=800),
        CanonicalUsage(260_000, 9_000, 100_000, 20_000, 15_000, 5_000, 3_000),  # over the 200k/256k tiers
    ]
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            for usage in usages:
                fields = {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_read_tokens": usage.cache_read_tokens or None,
                    "cache_write_tokens": usage.cache_write_tokens or None,
                    "cache_write_5m_tokens": usage.cache_write_5m_tokens,
                    "cache_write_1h_tokens": usage.cache_write_1h_tokens,
                    "output_reasoning_tokens": usage.reasoning_tokens or None,
                }
                try:
                    reference = genai_prices.calc_price(
                        genai_prices.Usage(**{k: v for k, v in fields.items() if v is not None}),
                        model.id,
                        provider_id=provider.id,
                        genai_request_timestamp=WHEN,
                    )
                except Exception:
                    continue  # genai-prices itself cannot price this model or usage
                result = price_call(usage, resolve_model(provider.id, model.id), timestamp=WHEN)
                if result.priced_model != model.id or result.priced_provider != provider.id:
                    continue  # the name resolves to another entry first (aliases): compared elsewhere
                assert (result.cost_usd, result.input_cost_usd, result.output_cost_usd) == (
                    reference.total_price,
                    reference.input_price,
                    reference.output_price,
                ), (provider.id, model.id, usage)
                checked += 1
    assert checked > 1000


def test_flat_prices_take_the_linear_path_and_tiered_prices_one_line_per_band() -> None:
    from agentprof.pricing import _genai

    flat = _genai.lookup_model("openai", "gpt-4o").model.get_prices(WHEN)
    tiered = _genai.lookup_model("anthropic", "claude-sonnet-4-6").model.get_prices(WHEN)
    assert isinstance(_genai._linear_price(flat), _genai._LinearPrice)
    banded = _genai._linear_price(tiered)
    assert isinstance(banded, _genai._BandedPrice) and banded.starts == (200_000,)
    assert banded.bands[1].input[0] == 2 * banded.bands[0].input[0]  # the cliff: $3 -> $6 per MTok
    price_call(CanonicalUsage(1_000, 10), resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert _genai._LINEAR[id(flat)][0] is flat


def test_every_tier_cliff_is_priced_exactly_on_both_sides() -> None:
    """At each tier start of every bundled entry, the banded rates give calc_price's own numbers."""
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import TieredPrices

    from agentprof.pricing import _genai

    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            entry = model.get_prices(WHEN)
            starts = {t.start for v in vars(entry).values() if isinstance(v, TieredPrices) for t in v.tiers}
            if not starts:
                continue
            banded = _genai._linear_price(entry)
            # Every bundled tiered entry is linear between its tier starts (131 on 2026-12-02).
            assert isinstance(banded, _genai._BandedPrice), (provider.id, model.id)
            for start in starts:
                for total in (start - 1, start, start + 1, 2 * start):
                    for usage in (
                        CanonicalUsage(total, 321, cache_read_tokens=total // 3, reasoning_tokens=20),
                        CanonicalUsage(total, 5, cache_write_tokens=total // 2, cache_write_1h_tokens=total // 4),
                    ):
                        assert banded.price(usage) == _genai._calc(entry, usage), (provider.id, model.id, usage)
                        checked += 1
    assert checked > 50


class _Quadratic:
    """A price entry whose input price grows with the square of the tokens: linear nowhere."""

    def calc_price(self, usage: object) -> dict[str, Decimal]:
        tokens = Decimal(getattr(usage, "input_tokens", 0) or 0)
        input_price = tokens * tokens / Decimal(10**12)
        output_price = Decimal(getattr(usage, "output_tokens", 0) or 0) / Decimal(10**6)
        return {"input_price": input_price, "output_price": output_price, "total_price": input_price + output_price}


def test_an_entry_the_tiers_do_not_explain_is_priced_call_by_call() -> None:
    from agentprof.pricing import _genai

    assert _genai._linear_price(_Quadratic()) is None
