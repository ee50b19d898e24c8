"""The one place agentprof talks to genai-prices: cached model lookup and per-call calculation.

genai-prices is imported lazily here, because importing it (pydantic models plus a 1.6 MB data
module) costs about a third of a second and ``import agentprof`` must stay fast.

Lookups are cached per data snapshot. genai-prices caches its hits itself, but a miss scans every
model of the provider again, and an agent that calls an unpriced model thousands of times would
pay that scan each time; this cache remembers misses too. The cache belongs to the snapshot it
was built from, so a snapshot swapped in by ``UpdatePrices`` or ``set_custom_snapshot`` is used at
once and never mixed with lookups from the old one.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from agentprof._usage import CanonicalUsage

__all__ = ["GenaiPrice", "Lookup", "calculate", "lookup_model"]

_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Lookup:
    """The result of resolving ``(provider, model)`` in one genai-prices snapshot.

    Attributes:
        provider: genai-prices ``Provider`` object, or ``None`` when the lookup failed.
        model: genai-prices ``ModelInfo`` object, or ``None`` when the lookup failed.
        error: Why the lookup failed, one line; ``None`` on success.
    """

    provider: Any
    model: Any
    error: str | None


@dataclass(frozen=True, slots=True)
class GenaiPrice:
    """A price computed by genai-prices for one call."""

    total: Decimal
    input: Decimal
    output: Decimal
    provider_id: str
    model_id: str
    version: str


class _SnapshotCache:
    """Model lookups for one genai-prices ``DataSnapshot``."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.find = functools.lru_cache(maxsize=_CACHE_SIZE)(self._find)

    def _find(self, provider: str | None, model: str) -> Lookup:
        from genai_prices.data_snapshot import find_provider_by_id

        provider_id = provider
        if provider is not None and find_provider_by_id(self.snapshot.providers, provider) is None:
            # A provider genai-prices does not know (self-hosted, a proxy): the model may still be
            # one it knows, priced at its usual provider.
            provider_id = None
        try:
            found_provider, found_model = self.snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            where = f" for provider {provider!r}" if provider else ""
            return Lookup(None, None, f"unknown model {model!r}{where}")
        return Lookup(found_provider, found_model, None)


_cache: _SnapshotCache | None = None


def _current_cache() -> _SnapshotCache:
    global _cache
    from genai_prices.data_snapshot import get_snapshot

    snapshot = get_snapshot()
    cache = _cache
    if cache is None or cache.snapshot is not snapshot:
        # A racing thread may build its own cache too; both are correct, one is kept.
        cache = _cache = _SnapshotCache(snapshot)
    return cache


def lookup_model(provider: str | None, model: str) -> Lookup:
    """Find the genai-prices model for a normalised ``(provider, model)``, cached per snapshot."""
    return _current_cache().find(provider, model.lower())


@functools.cache
def _package_version() -> str:
    from genai_prices import __version__

    return f"genai-prices {__version__}"


def calculate(
    usage: CanonicalUsage,
    provider: str | None,
    model: str,
    *,
    timestamp: datetime,
    price_context: Mapping[str, str] | None,
) -> GenaiPrice | str:
    """Price one call with genai-prices at its timestamp; return the reason when it cannot be priced.

    This is ``genai_prices.calc_price`` with the model lookup served from the cache: the same
    ``ModelInfo.calc_price`` call ``DataSnapshot.calc`` makes after its own lookup, so tiers,
    price history and price variants apply per call exactly as there.
    """
    cache = _current_cache()
    found = cache.find(provider, model.lower())
    if found.error is not None:
        return found.error
    snapshot = cache.snapshot
    auto_update = snapshot.timestamp if snapshot.from_auto_update else None
    linear = None
    if not price_context and found.provider.id != "groq":  # groq bills some audio by minimum seconds
        linear = _linear_price(found.model.get_prices(timestamp))
    if linear is not None:
        total, input_price, output_price = linear.price(usage)
    else:
        calc = found.model.calc_price(
            _genai_usage(usage),
            found.provider,
            genai_request_timestamp=timestamp,
            auto_update_timestamp=auto_update,
            price_context=price_context or None,
        )
        total, input_price, output_price = calc.total_price, calc.input_price, calc.output_price
    version = _package_version()
    if auto_update is not None:
        version = f"{version} (prices of {auto_update.isoformat(timespec='seconds')})"
    return GenaiPrice(
        total=total,
        input=input_price,
        output=output_price,
        provider_id=found.provider.id,
        model_id=found.model.id,
        version=version,
    )


def _genai_usage(usage: CanonicalUsage) -> Any:
    """genai-prices' ``Usage`` for a canonical usage (only the parts that are present)."""
    from genai_prices import Usage

    values: dict[str, int] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cache_read_tokens:
        values["cache_read_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        values["cache_write_tokens"] = usage.cache_write_tokens
        if usage.cache_write_5m_tokens:
            values["cache_write_5m_tokens"] = usage.cache_write_5m_tokens
        if usage.cache_write_1h_tokens:
            values["cache_write_1h_tokens"] = usage.cache_write_1h_tokens
    if usage.reasoning_tokens:
        # A part of output_tokens, not an addition: genai-prices subtracts it from output only for
        # models that price reasoning separately, and ignores it for all others.
        values["output_reasoning_tokens"] = usage.reasoning_tokens
    return Usage(**values)


@dataclass(frozen=True, slots=True)
class _LinearPrice:
    """USD per token of each usage part for one genai-prices price entry, plus any per-request fee.

    Why: genai-prices' ``calc_price`` decomposes the usage and validates its units on every
    call, about 60 microseconds of the exporter thread's time per model call here. For a price
    entry without tiers the price is linear in the token counts, so the rates are measured once
    per entry by ``calc_price`` itself and applied with the same decomposition. An entry that
    does not reproduce ``calc_price`` exactly on a large mixed probe (tiers, anything non-linear)
    is priced by ``calc_price``, call by call.
    """

    fee: Decimal
    input: tuple[Decimal, Decimal, Decimal, Decimal, Decimal]  # uncached, read, write, write 5m, write 1h
    output: tuple[Decimal, Decimal]  # non-reasoning, reasoning

    def price(self, usage: CanonicalUsage) -> tuple[Decimal, Decimal, Decimal]:
        """``(total, input, output)``, equal in value to what ``calc_price`` returns."""
        write_5m = usage.cache_write_5m_tokens or 0
        write_1h = usage.cache_write_1h_tokens or 0
        uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        rate_in, rate_read, rate_write, rate_5m, rate_1h = self.input
        input_price = (
            uncached * rate_in
            + usage.cache_read_tokens * rate_read
            + (usage.cache_write_tokens - write_5m - write_1h) * rate_write
            + write_5m * rate_5m
            + write_1h * rate_1h
        )
        rate_out, rate_reasoning = self.output
        reasoning = usage.reasoning_tokens
        output_price = (usage.output_tokens - reasoning) * rate_out + reasoning * rate_reasoning
        return self.fee + input_price + output_price, input_price, output_price


_PROBE = 1000
_LINEAR: dict[int, tuple[Any, _LinearPrice | _BandedPrice | None]] = {}


@dataclass(frozen=True, slots=True)
class _BandedPrice:
    """Linear rates per band of total input tokens, for an entry with long-context tiers.

    Why: genai-prices' tiers are cliffs chosen by the request's total input tokens (crossing a
    tier start prices *all* tokens at the tier's rate), so between two tier starts the price is
    linear again. Claude Sonnet and Gemini Pro, the models agents run most, have such tiers;
    without bands every one of their calls went through ``calc_price`` (about 200 µs of the
    exporter thread per call). Band ``k`` holds totals in ``(starts[k-1], starts[k]]``.
    """

    starts: tuple[int, ...]
    bands: tuple[_LinearPrice, ...]

    def price(self, usage: CanonicalUsage) -> tuple[Decimal, Decimal, Decimal]:
        """``(total, input, output)`` with the rates of the band ``usage``'s total input falls in."""
        return self.bands[bisect_left(self.starts, usage.input_tokens)].price(usage)


def _linear_price(entry: Any) -> _LinearPrice | _BandedPrice | None:
    """The (banded) linear rates of a price entry (memoised by identity), or ``None`` if it is not linear."""
    cached = _LINEAR.get(id(entry))
    if cached is not None and cached[0] is entry:
        return cached[1]
    try:
        linear = _measure(entry)
    except Exception:  # an entry genai-prices cannot apply to a probe: price it exactly, per call
        linear = None
    if len(_LINEAR) > 4096:
        _LINEAR.clear()
    _LINEAR[id(entry)] = (entry, linear)  # the entry is kept alive with it, so its id is not reused
    return linear


def _measure(entry: Any) -> _LinearPrice | _BandedPrice | None:
    """Measure an entry's rates with ``calc_price`` itself, band by band, and keep them only if exact.

    Each band's rates come from probes whose total input lies in the band, and are then checked
    against ``calc_price`` on mixed usages (every token kind at once) at both ends of the band (the
    last band: just above its start and at 10 million tokens or twice its start). Anything non-linear that the tier
    starts do not explain, or a rounding difference, fails a check: the entry is then priced by
    ``calc_price``, call by call.
    """
    from genai_prices.types import TieredPrices

    starts = sorted(
        {tier.start for value in vars(entry).values() if isinstance(value, TieredPrices) for tier in value.tiers}
    )
    bounds = [(0, *starts), (*starts, None)]
    bands = []
    for lower, upper in zip(*bounds, strict=True):
        if upper is not None and upper <= lower:
            return None  # a tier starting at 0 leaves band 0 empty: not worth a path of its own
        total = lower + _PROBE if upper is None else min(lower + _PROBE, upper)
        band = _measure_band(entry, total)
        ends = (lower + 1, upper if upper is not None else max(10_000_000, 2 * lower))
        if any(band.price(check) != _calc(entry, check) for end in ends for check in _checks(end)):
            return None
        bands.append(band)
    if not starts:
        return bands[0]
    return _BandedPrice(tuple(starts), tuple(bands))


def _calc(entry: Any, usage: CanonicalUsage) -> tuple[Decimal, Decimal, Decimal]:
    calc = entry.calc_price(_genai_usage(usage))
    return calc["total_price"], calc["input_price"], calc["output_price"]


def _measure_band(entry: Any, total: int) -> _LinearPrice:
    """The rates of the band holding ``total`` input tokens, from probes of exactly that total."""
    n = _PROBE
    inputs = (
        CanonicalUsage(input_tokens=total),
        CanonicalUsage(input_tokens=total, cache_read_tokens=total),
        CanonicalUsage(input_tokens=total, cache_write_tokens=total),
        CanonicalUsage(input_tokens=total, cache_write_tokens=total, cache_write_5m_tokens=total),
        CanonicalUsage(input_tokens=total, cache_write_tokens=total, cache_write_1h_tokens=total),
    )
    outputs = (
        CanonicalUsage(input_tokens=total, output_tokens=n),
        CanonicalUsage(input_tokens=total, output_tokens=n, reasoning_tokens=n),
    )
    plain_total, plain_input, plain_output = _calc(entry, inputs[0])
    fee = plain_total - plain_input - plain_output
    rate_in = plain_input / total
    rate_read, rate_write, rate_5m, rate_1h = (_calc(entry, usage)[1] / total for usage in inputs[1:])
    rate_out, rate_reasoning = (_calc(entry, usage)[2] / n for usage in outputs)
    return _LinearPrice(fee, (rate_in, rate_read, rate_write, rate_5m, rate_1h), (rate_out, rate_reasoning))


def _checks(total: int) -> tuple[CanonicalUsage, ...]:
    """Usages of ``total`` input tokens mixing every kind of token, to check measured rates on."""
    write_5m, write_1h = total // 10, total // 20
    return (
        CanonicalUsage(
            input_tokens=total,
            output_tokens=120_000,
            cache_read_tokens=total // 4,
            cache_write_tokens=total // 5 + write_5m + write_1h,
            cache_write_5m_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
            reasoning_tokens=30_000,
        ),
        CanonicalUsage(input_tokens=total, output_tokens=7, cache_read_tokens=max(total - 3, 0), reasoning_tokens=2),
    )
