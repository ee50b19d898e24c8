"""Received model calls priced once per (model, usage, price in force), not once per call.

Pricing a call (:func:`agentprof.pricing.price_call`) costs ~9 µs of CPU, a tenth of all the
receiver spends on a span. Calls of one agent often repeat a usage exactly (the same prompt
template and answer length, embeddings of fixed-size chunks, eval runs, retries), and the price
of a call depends on nothing else than its usage, its normalised model, the user prices and the
genai-prices entry in force at its timestamp. So :class:`PriceMemo` keys the result on exactly
those, and answers a repeated one from memory: the same :class:`~agentprof.pricing.PriceResult`
``price_call`` gives, without its arithmetic: ~1 µs instead of ~9. A new usage costs ~3 µs more
than ``price_call`` alone (finding the entry in force, remembering the result).

The entry in force is found the way genai-prices finds it (``ModelInfo.get_prices(timestamp)``),
so price history and time-of-day prices still apply per call. Groq (minimum billed seconds) and
anything that cannot be looked up are priced call by call. A snapshot replaced by a price update
gives new lookups and entries, so the memo never mixes them with the old.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from agentprof._usage import CanonicalUsage
from agentprof.pricing import ModelRef, PriceResult, price_call
from agentprof.pricing._genai import lookup_model

_MAX_ENTRIES = 4096


class _Priced(NamedTuple):
    """A result and everything it was computed from, held so that their ids stay theirs."""

    snapshot: Any  # the genai-prices snapshot then current
    user_prices: Any
    model: Any  # the genai-prices model (None: user prices applied, or no model was found)
    entry: Any  # its price entry in force at the call's time
    result: PriceResult


class PriceMemo:
    """A :class:`~agentprof._mapping.Pricer` remembering results by what they depend on (see the module docstring)."""

    def __init__(self, max_entries: int = _MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._results: dict[tuple[CanonicalUsage, ModelRef], _Priced] = {}
        self._snapshot: Callable[[], Any] | None = None

    def __call__(
        self, usage: CanonicalUsage | None, ref: ModelRef, *, timestamp: datetime, user_prices: Any
    ) -> PriceResult:
        """What ``price_call(usage, ref, timestamp=timestamp, user_prices=user_prices)`` returns."""
        if usage is None or not ref.model:
            return price_call(usage, ref, timestamp=timestamp, user_prices=user_prices)  # no arithmetic to save
        if self._snapshot is None:
            from genai_prices.data_snapshot import get_snapshot  # what lookup_model checks its cache against

            self._snapshot = get_snapshot
        snapshot = self._snapshot()
        key = (usage, ref)
        known = self._results.get(key)
        if (
            known is not None
            and known.snapshot is snapshot
            and known.user_prices is user_prices
            and (known.model is None or known.model.get_prices(timestamp) is known.entry)
        ):
            return known.result
        model: Any = None
        entry: Any = None
        if not (user_prices and user_prices.lookup(ref) is not None):  # user prices have no history
            found = lookup_model(ref.provider, ref.model)
            if found.error is None:
                if found.provider.id == "groq":  # billed by minimum seconds: priced call by call
                    return price_call(usage, ref, timestamp=timestamp, user_prices=user_prices)
                model, entry = found.model, found.model.get_prices(timestamp)
        result = price_call(usage, ref, timestamp=timestamp, user_prices=user_prices)
        if len(self._results) >= self.max_entries:
            self._results.clear()
        self._results[key] = _Priced(snapshot, user_prices, model, entry, result)
        return result
