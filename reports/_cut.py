"""How the text and Markdown reports stay readable when a store has thousands of steps or findings.

Why: step names that vary per call (an id in the name) make one table row per call and one
finding per step. A store of 100,000 calls in 47,468 (task, step) pairs printed a 146,775-line
terminal report in 92 s, and its Markdown (meant for a PR comment, which GitHub caps at 65,536
characters) was 10.5 MB. The text and Markdown forms therefore show the most expensive rows and the
most valuable findings, and one line that sums the rest, so totals still add up; ``--format json``
keeps every one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from . import _format as fmt
from ._model import Latency, ModelEntry, Recommendation, StepEntry

#: Rows of the steps and models tables shown when there are more than ``SHOWN_ROWS + SLACK``.
SHOWN_ROWS = 25
#: Recommendations shown when there are more than ``SHOWN_RECOMMENDATIONS + SLACK``.
SHOWN_RECOMMENDATIONS = 20
#: A cut hides more than this many, or nothing: a summary line in place of two or three rows helps no one.
SLACK = 5


#: Names that look made per call: at least this many, averaging fewer than ``CALLS_PER_NAME`` calls each.
MANY_NAMES = 1000
CALLS_PER_NAME = 10


def per_call_names(names: int, calls: int) -> bool:
    """Whether ``names`` distinct names over ``calls`` model calls look made per call (an id in each name).

    High-cardinality names are the usual tracing mistake (``step(f"fetch-{url}")``), and agentprof
    groups by name, so they scatter every table and finding. ``agentprof doctor`` checks task and
    step names with this; the report says so under a steps table of that many rows.
    """
    return names >= MANY_NAMES and names * CALLS_PER_NAME > calls


def steps_note(entries: list[StepEntry]) -> str | None:
    """A sentence for a steps table whose rows look made per call, else ``None``."""
    calls = sum(entry.model_calls for entry in entries)
    if not per_call_names(len(entries), calls):
        return None
    return (
        f"{len(entries):,} (task, step) pairs for {calls:,} model calls: task or step names that carry an id give "
        "calls rows of their own and keep the recommendations from comparing them; `agentprof doctor` says which."
    )


def _hidden(count: int, shown: int) -> bool:
    return count > shown + SLACK


def _totals(entries: Sequence[StepEntry] | Sequence[ModelEntry]) -> dict[str, Any]:
    """What steps and models rows both have, summed (money over priced rows, ``None`` if none is)."""
    costs = [entry.cost_usd for entry in entries if entry.cost_usd is not None]
    shares = [entry.share for entry in entries if entry.share is not None]
    totals: dict[str, Any] = {
        name: sum(getattr(entry, name) for entry in entries)
        for name in ("model_calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
    }
    totals["unpriced_calls"] = sum(entry.unpriced_calls for entry in entries)
    totals["cost_usd"] = sum(costs, Decimal(0)) if costs else None
    totals["share"] = sum(shares) if shares else None
    return totals


#: The first cell of a summing row; the second says what it sums (:func:`more_label`).
ELLIPSIS = "…"


def more_label(count: int, noun: str) -> str:
    """``47,443 more steps``."""
    return f"{count:,} more {noun}{'' if count == 1 else 's'}"


def steps(entries: list[StepEntry]) -> list[StepEntry]:
    """The first :data:`SHOWN_ROWS` steps and one entry summing the rest (latency left empty), or all."""
    if not _hidden(len(entries), SHOWN_ROWS):
        return entries
    rest = entries[SHOWN_ROWS:]
    summed = StepEntry(
        task=ELLIPSIS,
        step=more_label(len(rest), "step"),
        models=[],
        latency_ms=Latency(p50=None, p95=None),
        **_totals(rest),
    )
    return [*entries[:SHOWN_ROWS], summed]


def models(entries: list[ModelEntry]) -> list[ModelEntry]:
    """The first :data:`SHOWN_ROWS` models and one entry summing the rest, or all."""
    if not _hidden(len(entries), SHOWN_ROWS):
        return entries
    rest = entries[SHOWN_ROWS:]
    summed = ModelEntry(provider=ELLIPSIS, model=more_label(len(rest), "model"), **_totals(rest))
    return [*entries[:SHOWN_ROWS], summed]


def recommendations(items: list[Recommendation]) -> tuple[list[Recommendation], str | None]:
    """The recommendations to show, and the sentence standing for the others (``None`` if none is hidden).

    Their savings add up (the rules never count a call's cost twice), so the sentence gives their sum.
    """
    if not _hidden(len(items), SHOWN_RECOMMENDATIONS):
        return items, None
    rest = items[SHOWN_RECOMMENDATIONS:]
    saves = sum((item.estimated_savings_usd for item in rest if item.estimated_savings_usd is not None), Decimal(0))
    return items[:SHOWN_RECOMMENDATIONS], (
        f"{ELLIPSIS} {more_label(len(rest), 'recommendation')}, saving {fmt.money(saves)} together: "
        "`--format json` lists every one."
    )
