"""How numbers look in every human-readable format (terminal, Markdown)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from ._model import RecommendationBasis, ReportFilters

UNPRICED = "unpriced"
DOCTOR_HINT = "unknown model or no usage reported: `agentprof doctor` lists why"
_CENT_FRACTION = Decimal("0.0001")
#: A console width no table reaches: rich caps a measurement at the console's width, so tables are
#: measured against this to learn whether they fit.
UNBOUNDED_WIDTH = 10_000


def money(value: Decimal | None) -> str:
    """``$1,234.5678``; amounts under $0.0001 keep two significant digits (``$0.000015``)."""
    if value is None:
        return UNPRICED
    if value == 0:
        return "$0.0000"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude >= _CENT_FRACTION:
        return f"{sign}${magnitude.quantize(_CENT_FRACTION, rounding=ROUND_HALF_UP):,}"
    exponent = magnitude.adjusted() - 1
    return f"{sign}${magnitude.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP):f}"


def money_with_unpriced(value: Decimal | None, unpriced_calls: int) -> str:
    """Cost that says how many calls it leaves out: ``$0.0120 +2 unpriced``."""
    if value is None or unpriced_calls == 0:
        return money(value)
    return f"{money(value)} +{unpriced_calls} {UNPRICED}"


def tokens(value: int) -> str:
    """Token count with thousands separators."""
    return f"{value:,}"


def share(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    return "" if value is None else f"{value:.1%}"


def duration(milliseconds: float | None) -> str:
    """``850 ms``, ``12.3 s`` or ``4m 05s``."""
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def unpriced_note(unpriced_calls: int) -> str:
    """The sentence shown whenever some calls have no price."""
    noun = "call" if unpriced_calls == 1 else "calls"
    return f"{unpriced_calls} unpriced {noun} ({DOCTOR_HINT})"


def basis_note(basis: RecommendationBasis) -> str:
    """The sentence saying that recommendations were estimated from a sample, and how to avoid it."""
    return (
        f"Recommendations estimated from the latest {basis.calls_analysed:,} of {basis.calls_in_selection:,} calls "
        f"(since {timestamp(basis.since)}), money scaled to the whole selection (max_calls = {basis.max_calls:,} in "
        "[tool.agentprof.rules]; narrow the selection with --since or --task, or set max_calls = 0, for an exact "
        "analysis)."
    )


def count(value: int, noun: str) -> str:
    """``1 call``, ``3 calls``."""
    return f"{value:,} {noun}" if value == 1 else f"{value:,} {noun}s"


def selection(filters: ReportFilters) -> str:
    """The selection in words: ``task triage, since 2025-01-31 14:00 UTC`` or ``all data``."""
    parts = []
    if filters.task is not None:
        parts.append(f"task {filters.task}")
    if filters.since is not None:
        parts.append(f"since {timestamp(filters.since)}")
    return ", ".join(parts) or "all data"


def timestamp(moment: datetime) -> str:
    """A UTC instant to the minute: ``2025-01-31 14:00 UTC`` (naive values are UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"
