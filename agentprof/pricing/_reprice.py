"""Re-price recorded usage on another model: exact genai-prices arithmetic, fast enough for 100,000 calls.

"What would these calls have cost on model X?" is asked per call (``cheaper_model``, ``agentprof
whatif``), and one :func:`~agentprof.pricing.price_call` costs about 70 microseconds, too slow for
a rule set that must run on 100,000 calls in under two seconds. But genai-prices' cost is linear
in the token counts for one price entry without tiers: ``fee + sum(tokens_k x rate_k)``. So the
rates are measured once per price entry (the one genai-prices applies at the call's timestamp:
price history and time-of-day prices change it) by pricing one probe usage per token kind
through :func:`price_call` itself, and checked against a large mixed probe. An entry with tiers
(or anything else non-linear) fails that check and is priced exactly, call by call, memoised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agentprof._usage import CanonicalUsage
from agentprof.pricing._calculator import price_call
from agentprof.pricing._genai import lookup_model
from agentprof.pricing._normalize import ModelRef, resolve_model

__all__ = ["Repricer"]

_PROBE_TOKENS = 1000
_NS_PER_MINUTE = 60 * 1_000_000_000
# Crosses every long-context tier genai-prices knows (200k, 272k, 1M starts), so a tiered entry
# never passes as linear.
_CHECK_USAGE = CanonicalUsage(
    input_tokens=2_400_000,
    output_tokens=120_000,
    cache_read_tokens=600_000,
    cache_write_tokens=500_000,
    cache_write_5m_tokens=200_000,
    cache_write_1h_tokens=100_000,
    reasoning_tokens=30_000,
)


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token of each usage part for one price entry, plus any per-request fee."""

    fee: Decimal
    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    output: Decimal
    reasoning: Decimal

    def cost(self, usage: CanonicalUsage) -> Decimal:
        """Cost of ``usage``; every part is priced once, as genai-prices decomposes it."""
        write_5m = usage.cache_write_5m_tokens or 0
        write_1h = usage.cache_write_1h_tokens or 0
        uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        return (
            self.fee
            + uncached * self.input
            + usage.cache_read_tokens * self.cache_read
            + (usage.cache_write_tokens - write_5m - write_1h) * self.cache_write
            + write_5m * self.cache_write_5m
            + write_1h * self.cache_write_1h
            + (usage.output_tokens - usage.reasoning_tokens) * self.output
            + usage.reasoning_tokens * self.reasoning
        )


def _datetime(when: datetime | int) -> datetime:
    """``when`` itself, or the aware UTC datetime of a timestamp in nanoseconds since the epoch."""
    return when if isinstance(when, datetime) else datetime.fromtimestamp(when / 1e9, UTC)


class Repricer:
    """Prices canonical usages on one target model at their own timestamps (genai-prices data).

    Args:
        provider: Provider of the target model (a genai-prices id or alias), or ``None`` to let
            genai-prices find it from the model name.
        model: Target model name.

    Results are exactly what :func:`~agentprof.pricing.price_call` returns for the same usage and
    timestamp; only the arithmetic is shared between calls of the same price entry.
    """

    def __init__(self, provider: str | None, model: str) -> None:
        self.ref: ModelRef = resolve_model(provider, model)
        lookup = lookup_model(self.ref.provider, self.ref.model) if self.ref.model else None
        found = lookup is not None and lookup.error is None
        self._model: Any = lookup.model if lookup is not None and found else None
        self._provider: Any = lookup.provider if lookup is not None and found else None
        self.error: str | None = None if self._model is not None else (lookup.error if lookup else "no model name")
        # Keyed by id() of genai-prices' price entry; the entry is kept alive next to its rates,
        # so the id cannot be reused while this cache exists.
        self._rates: dict[int, tuple[Any, _Rates | None]] = {}
        self._exact: dict[tuple[CanonicalUsage, int], Decimal | None] = {}
        self._entry_by_minute: dict[int, Any] = {}

    @property
    def known(self) -> bool:
        """Whether genai-prices can price the target model at all."""
        return self._model is not None

    @property
    def priced_model(self) -> str | None:
        """The genai-prices model id used (``gpt-4o`` for ``gpt-4o-2024-08-06``)."""
        return str(self._model.id) if self._model is not None else None

    @property
    def priced_provider(self) -> str | None:
        """The genai-prices provider id whose prices are used (``openai`` for a proxy serving gpt-4o)."""
        return str(self._provider.id) if self._provider is not None else None

    def cost(self, usage: CanonicalUsage, timestamp: datetime) -> Decimal | None:
        """USD cost of ``usage`` on the target model at ``timestamp``; ``None`` if it cannot be priced."""
        if self._model is None:
            return None
        return self._cost(usage, self._model.get_prices(timestamp), timestamp)

    def cost_at_ns(self, usage: CanonicalUsage, start_ns: int) -> Decimal | None:
        """:meth:`cost` for a timestamp in nanoseconds since the epoch (as stored).

        The price entry in force is looked up once per minute of timestamps: genai-prices' price
        changes (dates, time-of-day windows) fall on whole minutes.
        """
        if self._model is None:
            return None
        minute = start_ns // _NS_PER_MINUTE
        entry = self._entry_by_minute.get(minute)
        if entry is None:
            entry = self._entry_by_minute[minute] = self._model.get_prices(_datetime(start_ns))
        return self._cost(usage, entry, start_ns)

    def _cost(self, usage: CanonicalUsage, entry: Any, when: datetime | int) -> Decimal | None:
        key = id(entry)
        cached = self._rates.get(key)
        if cached is None:
            cached = self._rates[key] = (entry, self._measure(_datetime(when)))
        rates = cached[1]
        if rates is not None:
            return rates.cost(usage)
        exact_key = (usage, key)
        if exact_key not in self._exact:
            self._exact[exact_key] = self._price(usage, _datetime(when))
        return self._exact[exact_key]

    def _price(self, usage: CanonicalUsage, timestamp: datetime) -> Decimal | None:
        return price_call(usage, self.ref, timestamp=timestamp).cost_usd

    def _measure(self, timestamp: datetime) -> _Rates | None:
        """Rates of the price entry in force at ``timestamp``; ``None`` when it is not linear."""
        n = _PROBE_TOKENS
        fee = self._price(CanonicalUsage(), timestamp)
        probes = (
            CanonicalUsage(input_tokens=n),
            CanonicalUsage(input_tokens=n, cache_read_tokens=n),
            CanonicalUsage(input_tokens=n, cache_write_tokens=n),
            CanonicalUsage(input_tokens=n, cache_write_tokens=n, cache_write_5m_tokens=n),
            CanonicalUsage(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n),
            CanonicalUsage(output_tokens=n),
            CanonicalUsage(output_tokens=n, reasoning_tokens=n),
        )
        costs = [self._price(probe, timestamp) for probe in probes]
        if fee is None or any(cost is None for cost in costs):
            return None
        per_token = [(cost - fee) / n for cost in costs if cost is not None]
        rates = _Rates(fee, *per_token)
        return rates if rates.cost(_CHECK_USAGE) == self._price(_CHECK_USAGE, timestamp) else None
