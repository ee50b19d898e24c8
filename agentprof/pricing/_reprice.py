"""Re-price recorded usage on another model: exact genai-prices arithmetic, fast enough for 100,000 calls.

"What would these calls have cost on model X?" is asked per call (``cheaper_model``, ``agentprof
whatif``). The model's price entry in force is looked up once per minute of timestamps (price
history and time-of-day prices change it) and applied through the same per-entry linear rates
:func:`~agentprof.pricing.price_call` uses (``_genai._linear_price``: one set of rates per band
between long-context tier starts); an entry those rates cannot reproduce exactly is priced by
:func:`~agentprof.pricing.price_call`, memoised per usage.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from agentprof._usage import CanonicalUsage
from agentprof.pricing._calculator import price_call
from agentprof.pricing._genai import _linear_price, lookup_model
from agentprof.pricing._normalize import ModelRef, resolve_model

__all__ = ["Repricer"]

_NS_PER_MINUTE = 60 * 1_000_000_000


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

    def price_periods(self) -> tuple[tuple[int, ...], bool] | None:
        """When the target model's price entry can change: ``(changes, within_days)``.

        ``changes`` are the instants (ns since the epoch, ascending) from which another entry may
        apply (its start dates); ``within_days`` says whether it also depends on the time of day
        (off-peak prices, on whole minutes). ``None`` for a rule this does not know. Calls in the same
        period (and minute of the day, when ``within_days``) share one entry, so a caller can price
        them per distinct usage instead of one by one (``agentprof whatif`` groups them so in SQL).
        """
        from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

        prices = None if self._model is None else self._model.prices
        if not isinstance(prices, list):
            return (), False
        changes: set[int] = set()
        within_days = False
        for conditional in prices:
            constraint = conditional.constraint
            if isinstance(constraint, StartDateConstraint):
                # active from the UTC midnight that starts its date (StartDateConstraint.active)
                midnight = datetime.combine(constraint.start_date, time(), UTC)
                changes.add(int(midnight.timestamp()) * 1_000_000_000)
            elif isinstance(constraint, TimeOfDateConstraint):
                within_days = True
            elif constraint is not None:
                return None
        return tuple(sorted(changes)), within_days

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
        linear = _linear_price(entry)
        if linear is not None:
            return linear.price(usage)[0]
        exact_key = (usage, id(entry))
        if exact_key not in self._exact:
            self._exact[exact_key] = price_call(usage, self.ref, timestamp=_datetime(when)).cost_usd
        return self._exact[exact_key]
