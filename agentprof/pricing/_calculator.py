"""Exact dollar cost of one model call: user prices first, then genai-prices, else *unpriced*.

An unpriced call is never $0: a zero would silently under-report spend, so callers get
``priced=False`` with a one-line reason and reports show those calls as a separate bucket.
Pricing runs in the exporter thread, so it never raises for bad price data; only usage that
no provider could have sent (a part larger than its total) raises, because that is a bug in
the code that mapped the provider's usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from agentprof._usage import CanonicalUsage
from agentprof.pricing._arithmetic import check_usage, cost_from_prices
from agentprof.pricing._normalize import ModelRef
from agentprof.pricing._user_prices import UserPrices

__all__ = ["PriceResult", "price_call"]

SOURCE_GENAI_PRICES = "genai-prices"
SOURCE_USER = "user"
REASON_USAGE_UNKNOWN = "usage unknown (stream ended early or error)"
REASON_MODEL_UNKNOWN = "model unknown (no model name reported)"


@dataclass(frozen=True, slots=True)
class PriceResult:
    """The cost of one call, or why it has none.

    Attributes:
        priced: Whether a price was found; when ``False`` every cost is ``None``, never zero.
        cost_usd: Total cost in USD.
        input_cost_usd: Cost of input tokens, cache reads and writes included.
        output_cost_usd: Cost of output tokens, reasoning included.
        source: ``"genai-prices"`` or ``"user"``.
        version: Price data version, e.g. ``"genai-prices 0.2.3"`` or ``"user:/path/pyproject.toml"``,
            so stored costs can be explained and recomputed.
        priced_provider: The provider whose price was used (genai-prices may price an Azure call at
            OpenAI's rate, or find the provider from the model name).
        priced_model: The price entry used (``gpt-4o`` for ``gpt-4o-2024-08-06``).
        unpriced_reason: One line saying why the call is unpriced.
    """

    priced: bool
    cost_usd: Decimal | None
    input_cost_usd: Decimal | None
    output_cost_usd: Decimal | None
    source: str | None
    version: str | None
    priced_provider: str | None
    priced_model: str | None
    unpriced_reason: str | None

    @classmethod
    def unpriced(cls, reason: str) -> PriceResult:
        """Build the result for a call that has no price."""
        return cls(False, None, None, None, None, None, None, None, reason)


def price_call(
    usage: CanonicalUsage | None,
    ref: ModelRef,
    *,
    timestamp: datetime,
    user_prices: UserPrices | None = None,
    price_context: Mapping[str, str] | None = None,
) -> PriceResult:
    """Price one model call at the time it was made.

    Args:
        usage: Canonical usage, or ``None`` when the provider never reported it (an interrupted
            stream, an error): such a call is unpriced, not free.
        ref: The normalised model (see :func:`resolve_model`).
        timestamp: When the call was made; price history and time-of-day prices apply to it.
            Naive datetimes are UTC.
        user_prices: User prices, which win over genai-prices for the same model.
        price_context: genai-prices request context, e.g. ``{"service_tier": "flex"}`` or
            ``{"processing": "batch"}``; user prices ignore it.

    Returns:
        The cost, or ``priced=False`` with the reason.

    Raises:
        ValueError: ``usage`` is inconsistent (a cache or reasoning part exceeds its total).
    """
    if usage is None:
        return PriceResult.unpriced(REASON_USAGE_UNKNOWN)
    check_usage(usage)
    if not ref.model:
        return PriceResult.unpriced(REASON_MODEL_UNKNOWN)

    if user_prices and (user := user_prices.lookup(ref)) is not None:
        input_cost, output_cost = cost_from_prices(
            usage,
            input=user.input,
            output=user.output,
            cache_read=user.cache_read,
            cache_write=user.cache_write,
            cache_write_1h=user.cache_write_1h,
        )
        return PriceResult(
            priced=True,
            cost_usd=input_cost + output_cost,
            input_cost_usd=input_cost,
            output_cost_usd=output_cost,
            source=SOURCE_USER,
            version=f"user:{user.source}",
            priced_provider=user.provider or ref.provider,
            priced_model=user.model,
            unpriced_reason=None,
        )

    from agentprof.pricing._genai import calculate

    try:
        price = calculate(usage, ref.provider, ref.model, timestamp=timestamp, price_context=price_context)
    except Exception as exc:
        # Bad price data (or a genai-prices bug) must cost this call its price, never the exporter.
        return PriceResult.unpriced(_one_line(f"genai-prices failed: {type(exc).__name__}: {exc}"))
    if isinstance(price, str):
        return PriceResult.unpriced(price)
    return PriceResult(
        priced=True,
        cost_usd=price.total,
        input_cost_usd=price.input,
        output_cost_usd=price.output,
        source=SOURCE_GENAI_PRICES,
        version=price.version,
        priced_provider=price.provider_id,
        priced_model=price.model_id,
        unpriced_reason=None,
    )


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
