"""Per-token prices of the models in a workload, as the cache and trimming rules need them.

The rules' formulas (``S = (N-1)·P·(p_in - p_read) - P·(p_write - p_in)`` and friends) need a
model's own price per token of each kind, at the price tier a call falls in: never a hard-coded
"90% off". Prices come from :func:`agentprof.pricing.price_call` itself (user prices first, then
genai-prices), by pricing one probe usage per token kind at the call's tier, so cache
multipliers, write premiums and long-context tiers are exactly what the cost of the calls used.

Prices are looked up once per (provider, model, server, tier) at the time of the first call
asked about; a price change inside one report's selection is not followed (the rules estimate,
the report's totals stay exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agentprof._usage import CanonicalUsage

from ._base import ZERO, CallRecord

_PROBE_TOKENS = 10_000  # below every long-context tier start genai-prices knows (128k and up)
_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True, eq=False)
class UnitPrices:
    """A model's price per token (USD) for each kind of token, at one tier and moment.

    Compared and hashed by identity: :class:`PriceBook` hands out one instance per price entry,
    and rules group calls by it (hashing five Decimals per call would cost more than the rule).

    Attributes:
        input: Uncached input.
        output: Output (reasoning included).
        cache_read: Input served from the prompt cache.
        cache_write: Input written to the cache with the default (5-minute or unspecified) TTL.
        cache_write_1h: Input written with a 1-hour TTL (equal to ``cache_write`` where the
            provider has no such TTL).
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal

    @property
    def read_discount(self) -> Decimal:
        """What a cache hit saves per token (``p_in - p_read``; 0 when reads are not cheaper)."""
        return max(self.input - self.cache_read, ZERO)

    @property
    def write_premium(self) -> Decimal:
        """What a default-TTL cache write costs above plain input (0 when writes are free)."""
        return max(self.cache_write - self.input, ZERO)

    @property
    def write_premium_1h(self) -> Decimal:
        """What a 1-hour cache write costs above plain input."""
        return max(self.cache_write_1h - self.input, ZERO)

    def per_mtok(self) -> dict[str, str]:
        """The prices in USD per million tokens, for a finding's evidence."""
        return {
            "input_per_mtok": str(self.input * _MTOK),
            "output_per_mtok": str(self.output * _MTOK),
            "cache_read_per_mtok": str(self.cache_read * _MTOK),
            "cache_write_per_mtok": str(self.cache_write * _MTOK),
            "cache_write_1h_per_mtok": str(self.cache_write_1h * _MTOK),
        }


class PriceBook:
    """Unit prices and long-context tier starts of a workload's models, memoised.

    One instance per rule run: prices are those of the calls being analysed.
    """

    def __init__(self) -> None:
        self._prices: dict[tuple[Any, ...], UnitPrices | None] = {}
        self._tiers: dict[tuple[str | None, str | None, str | None], tuple[int, ...]] = {}
        # Per model: where its first tier starts (None: no tiers) and its prices below that, which most
        # calls get without the tier arithmetic.
        self._below_tiers: dict[tuple[str | None, str | None, str | None], tuple[int | None, UnitPrices | None]] = {}
        self._user_prices: Any = None

    def get(self, call: CallRecord, input_tokens: int | None = None) -> UnitPrices | None:
        """Unit prices of ``call``'s model at the tier ``input_tokens`` (default the call's) falls in.

        ``None`` when the model has no price.
        """
        model = (call.provider, call.model, call.server_address)
        level = call.input_tokens if input_tokens is None else input_tokens
        below = self._below_tiers.get(model)
        if below is not None and (below[0] is None or level <= below[0]):
            return below[1]
        starts = self.tier_starts(call)
        tier_start = 0
        if starts and level > starts[0]:
            tier_start = max(start for start in starts if start < level)  # tiers apply above their start
        key = (*model, tier_start)
        try:
            prices = self._prices[key]
        except KeyError:
            prices = self._prices[key] = self._lookup(call, tier_start)
        if not tier_start:
            self._below_tiers[model] = (starts[0] if starts else None, prices)
        return prices

    def cost(self, call: CallRecord, usage: CanonicalUsage) -> Decimal | None:
        """Exact cost of ``usage`` on ``call``'s model at ``call``'s time, as the store priced it."""
        from agentprof.pricing import price_call

        result = price_call(usage, self._ref(call), timestamp=_moment(call), user_prices=self._user())
        return result.cost_usd

    def tier_starts(self, call: CallRecord) -> tuple[int, ...]:
        """Input-token counts where a long-context price tier of ``call``'s model starts (ascending).

        From genai-prices' tiered input price at the call's time; empty for models without tiers
        or priced by the user's own table (flat prices).
        """
        key = (call.provider, call.model, call.server_address)
        starts = self._tiers.get(key)
        if starts is None:
            starts = self._tiers[key] = self._lookup_tiers(call)
        return starts

    def _ref(self, call: CallRecord) -> Any:
        from agentprof.pricing import resolve_model

        base_url = f"https://{call.server_address}" if call.server_address else None
        return resolve_model(call.provider, call.model, base_url)

    def _user(self) -> Any:
        from agentprof.pricing import UserPrices

        if self._user_prices is None:
            self._user_prices = UserPrices.load()
        return self._user_prices

    def _lookup_tiers(self, call: CallRecord) -> tuple[int, ...]:
        from agentprof.pricing._genai import lookup_model

        ref = self._ref(call)
        if not ref.model or self._user().lookup(ref) is not None:
            return ()
        found = lookup_model(ref.provider, ref.model)
        if found.model is None:
            return ()
        try:
            entry = found.model.get_prices(_moment(call))
        except Exception:  # no price in force at that time: no tiers either
            return ()
        tiered = getattr(entry, "input_mtok", None)
        tiers = getattr(tiered, "tiers", None) or ()
        return tuple(sorted(int(tier.start) for tier in tiers))

    def _lookup(self, call: CallRecord, tier_start: int) -> UnitPrices | None:
        from agentprof.pricing import price_call

        ref = self._ref(call)
        moment = _moment(call)
        user_prices = self._user()
        level = tier_start + 1 if tier_start else _PROBE_TOKENS

        def cost(**parts: int) -> Decimal | None:
            result = price_call(CanonicalUsage(**parts), ref, timestamp=moment, user_prices=user_prices)  # type: ignore[arg-type]
            return result.cost_usd

        n = level
        plain = cost(input_tokens=n)
        probes = (
            cost(input_tokens=n, output_tokens=n),
            cost(input_tokens=n, cache_read_tokens=n),
            cost(input_tokens=n, cache_write_tokens=n, cache_write_5m_tokens=n),
        )
        if plain is None or any(probe is None for probe in probes):
            return None
        fee = cost() or ZERO
        with_output, read, write = (probe for probe in probes if probe is not None)
        # Providers without a 1-hour TTL price it like any write.
        write_1h = cost(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n) or write
        return UnitPrices(
            input=(plain - fee) / n,
            output=(with_output - plain) / n,
            cache_read=(read - fee) / n,
            cache_write=(write - fee) / n,
            cache_write_1h=(write_1h - fee) / n,
        )


def _moment(call: CallRecord) -> datetime:
    return datetime.fromtimestamp(call.start_ns / 1e9, tz=UTC)
