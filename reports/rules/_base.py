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

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, NamedTuple, Protocol

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
    trace_id: str
    parent_span_id: str | None
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
    output_chars: int | None
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
        return _parse_prefixes(self.prefix_fingerprints_json)

    @property
    def boundaries(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """The prefix boundaries' hashes and approximate token positions (what the cache rules compare).

        Cheaper than :attr:`prefixes` (no per-boundary tuples, no roles): the rules that walk every
        call's prefixes use this and read roles only for the few calls that need them.
        """
        if not self.prefix_fingerprints_json:
            return (), ()
        return _parse_boundaries(self.prefix_fingerprints_json)

    @property
    def first_segment(self) -> tuple[int, str] | None:
        """``(index, role)`` of the first prefix boundary (tools -2, system -1, else a message index)."""
        text = self.prefix_fingerprints_json
        if not text:
            return None
        match = _FIRST_KIND.search(text)
        if match is not None:
            return int(match[1]), match[2]
        prefixes = self.prefixes
        return (prefixes[0][2], prefixes[0][3]) if prefixes else None


# The recorder's layout (compact JSON, keys in this order); anything else goes through ``json``.
_BOUNDARY = re.compile(r'\{"hash":"([^"]*)","tokens":(\d+),"index":(-?\d+),"role":"([^"]*)"\}')


_FIRST_KIND = re.compile(r'"index":(-?\d+),"role":"([^"]*)"')
_HASHES = re.compile(r'"hash":"([^"]*)"')
_TOKENS = re.compile(r'"tokens":(\d+)')


_Boundaries = tuple[tuple[str, ...], tuple[int, ...]]
_BOUNDARIES: dict[str, _Boundaries] = {}
_BOUNDARIES_LIMIT = 1 << 18
_NEXT = '},{"hash"'


def _parse_boundaries(prefix_fingerprints_json: str) -> _Boundaries:
    """Hashes and token positions of a prefix list, parsed incrementally along agent loops.

    An agent loop's request k is request k-1 plus one or two messages, and so is its prefix
    list: when the list without its last one or two boundaries was parsed before, only the new
    boundaries are parsed. That turns the cost of a loop from quadratic in its length (every
    call re-parsing the whole history) into linear, which is most of the parsing in a store.
    """
    text = prefix_fingerprints_json
    known = _BOUNDARIES.get(text)
    if known is not None:
        return known
    parsed = None
    cut = len(text)
    for _ in range(2):  # one or two new boundaries since an earlier request of the same loop
        cut = text.rfind(_NEXT, 0, cut)
        if cut < 0:
            break
        head = _BOUNDARIES.get(text[: cut + 1] + "]")
        if head is not None:
            tail = _parse_all(text[cut + 2 :])
            if tail is not None:
                parsed = (head[0] + tail[0], head[1] + tail[1])
            break
    if parsed is None:
        parsed = _parse_all(text)
    if parsed is None:
        full = _parse_prefixes(text)
        parsed = tuple(p[0] for p in full), tuple(p[1] for p in full)
    if len(_BOUNDARIES) >= _BOUNDARIES_LIMIT:
        _BOUNDARIES.clear()
    _BOUNDARIES[text] = parsed
    return parsed


def _parse_all(text: str) -> _Boundaries | None:
    """Parse every boundary of ``text`` in the recorder's layout; ``None`` for any other layout."""
    hashes = tuple(_HASHES.findall(text))
    tokens = tuple(map(int, _TOKENS.findall(text)))
    if len(hashes) == len(tokens) == text.count('"hash"'):
        return hashes, tokens
    return None


@lru_cache(maxsize=1 << 18)
def _parse_prefixes(prefix_fingerprints_json: str) -> tuple[tuple[str, int, int, str], ...]:
    # A cache outside the record (several rules read the same call's prefixes; a named tuple has
    # no per-instance storage). The regular expression reads the recorder's own layout 1.4x faster
    # than ``json.loads`` builds dictionaries; a count mismatch means another layout (imported
    # spans, hand-written JSON), which ``json`` parses.
    found = _BOUNDARY.findall(prefix_fingerprints_json)
    if len(found) == prefix_fingerprints_json.count('"hash"'):
        return tuple((hash_, int(tokens), int(index), role) for hash_, tokens, index, role in found)
    return tuple((p["hash"], p["tokens"], p["index"], p["role"]) for p in json.loads(prefix_fingerprints_json))


class ToolRecord(NamedTuple):
    """One tool step (``@agentprof.step(kind="tool")``) as the rules see it."""

    span_id: str
    parent_span_id: str | None
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
    _parse_prefixes.cache_clear()
    _BOUNDARIES.clear()
