"""Dollar cost of model calls: genai-prices, model-name normalisation and user prices.

Typical use, off the hot path (in the exporter thread)::

    ref = resolve_model("openai", "gpt-4o-2024-08-06", base_url=None)
    result = price_call(usage, ref, timestamp=span_start, user_prices=UserPrices.load())
    if result.priced:
        ...  # result.cost_usd is a Decimal, result.version says which price data was used
    else:
        ...  # result.unpriced_reason; never treat the call as $0

genai-prices is imported on the first :func:`price_call`, not by importing this package.
"""

from __future__ import annotations

from agentprof.pricing._arithmetic import cost_from_prices
from agentprof.pricing._calculator import PriceResult, price_call
from agentprof.pricing._normalize import ModelRef, resolve_model
from agentprof.pricing._user_prices import UserPrice, UserPrices

__all__ = [
    "ModelRef",
    "PriceResult",
    "UserPrice",
    "UserPrices",
    "cost_from_prices",
    "price_call",
    "resolve_model",
]
