"""The contract every recommendation rule follows, and the ledger that keeps totals honest.

A rule is a small module in ``reports/rules/`` exposing one object that satisfies :class:`Rule`:
a ``kind`` and a ``run(context) -> list[Finding]``. Rules read the selection's model calls and
tool steps once loaded by the engine (:class:`Workload`), their thresholds from
:class:`agentprof.reports.rules._config.RulesConfig`, and *claim* the savings they promise from
the :class:`ResidualLedger`: a rule can only save what earlier rules left of each call's cost,
so overlapping rules (an exact duplicate that also missed prompt caching) are never added twice.
The engine runs rules in :data:`agentprof.reports.rules._engine.RULE_ORDER`.

Money is ``Decimal`` throughout; ranges are ``(low, high)`` with ``low <= estimate <= high``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Protocol

from . import _prefixes
from ._prefixes import known_boundaries as _known_boundaries
from ._prefixes import parse_unseen as _parse_unseen

Confidence = Literal["high", "medium", "low"]

#: Ranking weight of each confidence level (pricing_routing.md, "Report presentation guidance").
CONFIDENCE_WEIGHT: dict[str, Decimal] = {"high": Decimal("1.0"), "medium": Decimal("0.6"), "low": Decimal("0.25")}

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Finding:
    """One recommendation: what to change, where, and what it would save.

    Attributes:
        kind: The rule that found it (``"exact_cache"``, ``"prompt_cache"``, ...).
        task: Task name the finding applies to (``"*"`` when it spans tasks).
        step: Step name the finding applies to.
        model: Model the affected calls used, if one.
        current_cost_usd: Cost of the affected calls as recorded.
        estimated_savings_usd: Point estimate of the saving, already claimed from the ledger.
        savings_range_usd: ``(low, high)`` around the estimate.
        confidence: ``high`` (arithmetic on observed usage), ``medium`` (assumes provider or
            agent behaviour), ``low`` (assumes output quality unchanged: validate first).
        suggestion: One line a user can act on.
        evidence: The numbers the finding rests on (JSON-serialisable).
        span_ids: The model calls whose cost the finding claims (for tests and drill-down).
    """

    kind: str
    task: str
    step: str
    model: str | None
    current_cost_usd: Decimal
    estimated_savings_usd: Decimal
    savings_range_usd: tuple[Decimal, Decimal]
    confidence: Confidence
    suggestion: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    span_ids: tuple[str, ...] = ()

    @property
    def rank_key(self) -> tuple[Decimal, str, str, str, str]:
        """Sort key: savings x confidence weight (descending), then stable names."""
        weighted = self.estimated_savings_usd * CONFIDENCE_WEIGHT[self.confidence]
        return (-weighted, self.kind, self.task, self.step, self.model or "")


class CallRecord(NamedTuple):
    """One model call as the rules see it (a row of ``model_calls``; ``cost`` is ``None`` if unpriced).

    A named tuple, not a frozen dataclass: immutable all the same, and built straight from the
    driver's row tuples seven times faster (a frozen dataclass sets every field through
    ``object.__setattr__``), which matters at 100,000+ calls per report.
    """

    span_id: str
    task_id: str | None
    task_name: str
    step_name: str
    step_kind: str | None
    provider: str | None
    model: str | None  # response model, else request model
    request_model: str | None
    start_ns: int
    end_ns: int
    status: str
    error_type: str | None
    usage_known: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cache_write_5m_tokens: int | None
    cache_write_1h_tokens: int | None
    reasoning_tokens: int
    cost: Decimal | None
    request_fingerprint: str | None
    prefix_fingerprints_json: str | None
    cache_breakpoints: int | None
    tool_count: int | None
    response_format: str | None
    tool_choice: str | None
    output_hash: str | None
    temperature: float | None
    attempts: int | None
    finish_reasons: str | None
    server_address: str | None
    operation: str | None = None  # "chat", "embeddings", ...: rules about outputs skip non-chat calls

    @property
    def prefixes(self) -> tuple[tuple[str, int, int, str], ...]:
        """Prefix boundaries ``(hash, approx_tokens, index, role)``; empty when not recorded."""
        if not self.prefix_fingerprints_json:
            return ()
        return _prefixes.parse_prefixes(self.prefix_fingerprints_json)

    @property
    def boundaries(self) -> _prefixes.Boundaries:
        """The prefix boundaries' hashes and approximate token positions (what the cache rules compare).

        Cheaper than :attr:`prefixes` (no per-boundary tuples, no roles): the rules that walk every
        call's prefixes use this (or :mod:`._prefixes` directly) and read roles only for the few calls
        that need them.
        """
        text = self.prefix_fingerprints_json
        if not text:
            return (), ()
        return _known_boundaries(text) or _parse_unseen(text)

    @property
    def first_segment(self) -> tuple[int, str] | None:
        """``(index, role)`` of the first prefix boundary (tools -2, system -1, else a message index)."""
        text = self.prefix_fingerprints_json
        if not text:
            return None
        return _prefixes.first_segment(text)


class ToolRecord(NamedTuple):
    """One tool step (``@agentprof.step(kind="tool")``) as the rules see it."""

    span_id: str
    task_id: str | None
    task_name: str
    step_name: str
    start_ns: int
    end_ns: int
    status: str
    args_hash: str | None
    result_hash: str | None


@dataclass(slots=True)
class Workload:
    """Everything the rules read, loaded once by the engine; calls and tools sorted by start time."""

    calls: Sequence[CallRecord]
    tools: Sequence[ToolRecord]


class ResidualLedger:
    """What is left of each priced call's cost after the rules that ran before.

    Rules never add savings directly: they :meth:`claim` them per call, and receive at most what
    is left. That is what makes the sum of all findings' savings a saving that can really happen.
    """

    def __init__(self, calls: Sequence[CallRecord]) -> None:
        self._cost: dict[str, Decimal] = {c.span_id: c.cost for c in calls if c.cost is not None}
        self._left: dict[str, Decimal] = dict(self._cost)

    def claimed(self, span_id: str) -> Decimal:
        """How much of ``span_id``'s cost earlier findings already claimed."""
        return self._cost.get(span_id, ZERO) - self._left.get(span_id, ZERO)

    def left(self, span_id: str) -> Decimal:
        """Cost of ``span_id`` not yet claimed by an earlier finding (0 for unpriced calls)."""
        return self._left.get(span_id, ZERO)

    def claim(self, span_id: str, amount: Decimal) -> Decimal:
        """Claim up to ``amount`` of ``span_id``'s remaining cost; return what was granted."""
        left = self._left.get(span_id, ZERO)
        granted = min(max(amount, ZERO), left)
        if granted:
            self._left[span_id] = left - granted
        return granted

    def claim_fraction(self, span_id: str, fraction: Decimal) -> Decimal:
        """Claim ``fraction`` (0..1) of what is left of ``span_id``; return what was granted."""
        return self.claim(span_id, self.left(span_id) * min(max(fraction, ZERO), Decimal(1)))


@dataclass(slots=True)
class RuleContext:
    """What a rule gets: the workload, its thresholds and the shared ledger."""

    workload: Workload
    config: Any  # RulesConfig; typed loosely here to keep this module free of pydantic
    ledger: ResidualLedger


class Rule(Protocol):
    """A recommendation rule: a kind and a deterministic ``run``."""

    kind: str

    def run(self, context: RuleContext) -> list[Finding]:
        """Return findings (deterministic for the same workload), claiming savings from the ledger."""
        ...


def clear_parse_caches() -> None:
    """Forget parsed prefixes (benchmarks time every run cold; a long-lived service frees memory)."""
    _prefixes.clear()
