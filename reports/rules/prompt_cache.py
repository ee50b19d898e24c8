"""R2 ``prompt_cache``: a shared prompt prefix above the provider's minimum re-sent without cache reads.

Calls are walked in time order within a *cache scope* (provider, model, server). Every call's
prefix boundaries (tools, system, each message: chained hashes with approximate token positions,
recorded without the text) are remembered with the time they were last sent. For each call the
rule finds the longest boundary an earlier call in the scope already sent; its tokens, scaled
from the approximate position to the call's real ``input_tokens``, are the shared prefix ``P``.
The call is then:

* **hit**: its cache reads cover at least ``read_fraction_below`` x ``P``;
* **below_minimum**: ``P`` is shorter than the model's minimum cacheable prefix (:mod:`._cache_facts`)
  (calls whose whole input is below the minimum are not even looked at);
* **ttl_expired**: the prefix was last sent longer ago than the provider's cache TTL;
* **missed** otherwise: caching would have served ``P`` and did not.

A call sharing nothing can still be a **prefix breaker**: its first segment (tools or system
prompt) has the same length as the one a recent call sent (within 2%) but a different hash, so
something small in it changes every call (a timestamp, an ID, reordered keys) and breaks the
whole prefix; ``P`` is then that segment. It is reported only when it is the step's pattern (at
least half of its calls): a few distinct system prompts of equal length are variants.

Money, per (task name, step, model, diagnosis), with the model's own prices (:mod:`._prices`, at
the call's tier, never a hard-coded discount): the ``S = (N-1)·P·(p_in - p_read) - P·(p_write -
p_in)`` of the research note, generalised to prefixes that grow: every missed call saves
``(cacheable(P) - cache_read) x (p_in - p_read)``, and every part of a prefix is written once per
TTL session at the write premium ``p_write - p_in`` (0 where writes are free). TTL-expired calls
are counted with the 1-hour write price when their gap is under an hour (a longer TTL would have
served them). The net is claimed from the ledger proportionally on the missed calls.

Diagnoses and confidence: ``no_breakpoint`` (Anthropic, no ``cache_control`` anywhere: deterministic
once marked, ``high``); ``breakpoint_misplaced`` (Anthropic, breakpoints set but the shared part
is not read, ``medium``); ``routing_miss`` (automatic caching, OpenAI or Gemini: identical prefix,
no hit; best-effort, ``medium``); ``prefix_breaker`` and ``ttl_expired`` (``medium``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import median

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext
from ._cache_facts import CacheFacts, cache_facts
from ._prices import PriceBook, UnitPrices

_HOUR_NS = 3600 * 1_000_000_000
_SAME_LENGTH = 0.02  # a first segment within 2% of a recent one's length "is the same, with a small change"

_Scope = tuple[str | None, str | None, str | None]


@dataclass(slots=True)
class _Miss:
    call: CallRecord
    prefix_tokens: int  # P, real tokens
    write_tokens: int  # part of P first written by this miss (the write premium applies)
    one_hour: bool = False  # a TTL miss that a 1-hour TTL would have served


@dataclass(slots=True)
class _Group:
    calls: list[CallRecord] = field(default_factory=list)
    hits: int = 0
    below_minimum: int = 0
    ttl_expired: int = 0
    misses: dict[str, list[_Miss]] = field(default_factory=lambda: defaultdict(list))  # diagnosis -> misses


@dataclass(slots=True)
class _ScopeState:
    """What one cache scope (provider, model, server) has seen, keyed by prefix hash."""

    facts: CacheFacts
    last_sent: dict[str, int] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # prefixes in a live cache session (caching on)
    written_1h: set[str] = field(default_factory=set)  # the same, had the TTL been one hour
    first_segment: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)  # -> (tokens, last ns)
    first_kind: dict[str, tuple[int, str]] = field(default_factory=dict)  # first hash -> (index, role)


def _longest_seen(hashes: tuple[str, ...], seen: dict[str, int]) -> int:
    """Index of the longest boundary already in ``seen``, or -1.

    Hashes are chained: if a boundary was sent before, so was every shorter one of the same
    request. So "seen" is monotone along the boundaries and bisection finds the last one; the
    usual case (an agent loop extending the previous request by one message) takes two tests.
    """
    low, high = 0, len(hashes)  # hashes[:low] all seen; hashes[high:] none seen
    if high >= 2 and hashes[high - 2] in seen:
        low = high - 1
    while low < high:
        middle = (low + high + 1) // 2
        if hashes[middle - 1] in seen:
            low = middle
        else:
            high = middle - 1
    return low - 1


class _Scanner:
    """Walks the calls of all scopes once and sorts every call into its group's buckets."""

    def __init__(self, read_fraction: float) -> None:
        self.read_fraction = read_fraction
        self.scopes: dict[_Scope, _ScopeState] = {}
        self.groups: dict[tuple[str, str, str], _Group] = defaultdict(_Group)

    def scan(self, call: CallRecord) -> None:
        scope = (call.provider, call.model, call.server_address)
        state = self.scopes.get(scope)
        if state is None:
            state = self.scopes[scope] = _ScopeState(cache_facts(call.provider, call.model))
        group = self.groups[(call.task_name, call.step_name, call.model or "")]
        group.calls.append(call)
        if call.input_tokens < state.facts.minimum_tokens:
            # Whatever it shares is below the minimum, and so is whatever a later call shares
            # with it alone: such calls are skipped (and their prefixes never parsed).
            return
        hashes, tokens = call.boundaries
        if not hashes:
            return
        scale = call.input_tokens / tokens[-1] if tokens[-1] else 0.0
        matched = _longest_seen(hashes, state.last_sent)
        if matched >= 0:
            self._classify(call, group, state, hashes, tokens, matched, scale)
        else:
            self._check_breaker(call, group, state, scale)
        state.last_sent.update(dict.fromkeys(hashes, call.start_ns))
        # (index, role) of the first segment is part of what its hash covers: looked up once per hash.
        first = state.first_kind.get(hashes[0])
        if first is None:
            first = state.first_kind[hashes[0]] = call.first_segment or (0, "")
        state.first_segment[first] = (tokens[0], call.start_ns)

    def _classify(
        self,
        call: CallRecord,
        group: _Group,
        state: _ScopeState,
        hashes: tuple[str, ...],
        tokens: tuple[int, ...],
        matched: int,
        scale: float,
    ) -> None:
        facts = state.facts
        key = hashes[matched]
        prefix = min(call.input_tokens, round(tokens[matched] * scale))
        if facts.cacheable(prefix) == 0:
            group.below_minimum += 1
            return
        if call.cache_read_tokens >= self.read_fraction * prefix:
            group.hits += 1
            state.written.add(key)
            return
        gap = call.start_ns - state.last_sent[key]
        if gap > facts.ttl_ns:
            group.ttl_expired += 1
            if gap > _HOUR_NS:
                state.written_1h.discard(key)
                return
            # A 1-hour TTL would have kept the entry alive: written once per 1-hour session.
            write = 0 if key in state.written_1h else prefix
            state.written_1h.add(key)
            group.misses["ttl_expired"].append(_Miss(call, prefix, write, one_hour=True))
            return
        write = 0
        if key not in state.written:
            # The part of P not already written in a live session is written (once) by this call.
            already = 0
            for position in range(matched):
                earlier = hashes[position]
                if earlier in state.written and call.start_ns - state.last_sent[earlier] <= facts.ttl_ns:
                    already = round(tokens[position] * scale)
            write = max(prefix - already, 0)
            state.written.add(key)
        group.misses[_diagnosis(call, facts)].append(_Miss(call, prefix, write))

    def _check_breaker(
        self,
        call: CallRecord,
        group: _Group,
        state: _ScopeState,
        scale: float,
    ) -> None:
        _, tokens, index, role = call.prefixes[0]
        if index >= 0 and role not in {"system", "developer"}:
            return  # a conversation's first user message differs by design
        seen = state.first_segment.get((index, role))
        if seen is None:
            return
        seen_tokens, seen_ns = seen
        if abs(seen_tokens - tokens) > max(8, _SAME_LENGTH * tokens) or call.start_ns - seen_ns > state.facts.ttl_ns:
            return
        prefix = min(call.input_tokens, round(tokens * scale))
        if state.facts.cacheable(prefix) == 0 or call.cache_read_tokens >= self.read_fraction * prefix:
            return
        key = f"breaker:{index}:{role}"
        fresh = key not in state.written
        state.written.add(key)
        group.misses["prefix_breaker"].append(_Miss(call, prefix, prefix if fresh else 0))


def _diagnosis(call: CallRecord, facts: CacheFacts) -> str:
    if facts.explicit:
        return "breakpoint_misplaced" if call.cache_breakpoints else "no_breakpoint"
    return "routing_miss"


_SUGGESTIONS = {
    "no_breakpoint": (
        "Add cache_control at the end of the shared prefix (tools/system prompt) in step '{step}': {misses} calls "
        "re-sent ~{prefix:,} shared tokens within the cache TTL without cache reads"
    ),
    "breakpoint_misplaced": (
        "Move the cache_control breakpoint in step '{step}' to the end of the shared ~{prefix:,}-token prefix, "
        "before content that changes: {misses} calls re-sent it without cache reads"
    ),
    "routing_miss": (
        "Step '{step}' re-sent a ~{prefix:,}-token prefix {misses} times with no cache hits: keep it byte-identical "
        "at the start of the request and set a prompt_cache_key (OpenAI) or an explicit cache"
    ),
    "prefix_breaker": (
        "Something in the first ~{prefix:,} tokens of step '{step}' changes on every call (a timestamp or ID?): "
        "move it after the stable prefix so {misses} calls can read it from the cache"
    ),
    "ttl_expired": (
        "Calls of step '{step}' came back after the cache TTL had expired ({misses} calls, ~{prefix:,} shared "
        "tokens): use a 1-hour cache TTL (Anthropic ttl='1h') or extended retention"
    ),
}
_CONFIDENCE: dict[str, Confidence] = {"no_breakpoint": "high"}


class PromptCacheRule:
    """Flag shared prompt prefixes above the provider's minimum that were re-sent without cache reads."""

    kind = "prompt_cache"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, step, model, diagnosis) with a positive saving."""
        settings = context.config.prompt_cache
        scanner = _Scanner(settings.read_fraction_below)
        for call in context.workload.calls:
            if call.status == "error" or not call.usage_known or not call.prefix_fingerprints_json:
                continue
            scanner.scan(call)  # embeddings and other calls without messages have no prefixes ("[]")
        book = PriceBook()
        findings = []
        for key in sorted(scanner.groups):
            group = scanner.groups[key]
            for diagnosis in sorted(group.misses):
                misses = group.misses[diagnosis]
                if len(misses) + 1 < settings.min_group_calls:
                    continue
                if diagnosis == "prefix_breaker" and len(misses) < max(settings.min_group_calls, len(group.calls) // 2):
                    continue  # a few new system prompts of equal length are variants, not a breaker
                finding = self._finding(key, diagnosis, misses, group, scanner, book, context)
                if finding is not None and finding.estimated_savings_usd >= Decimal(str(settings.min_savings_usd)):
                    findings.append(finding)
        return findings

    def _finding(
        self,
        key: tuple[str, str, str],
        diagnosis: str,
        misses: list[_Miss],
        group: _Group,
        scanner: _Scanner,
        book: PriceBook,
        context: RuleContext,
    ) -> Finding | None:
        task, step, model = key
        facts = cache_facts(misses[0].call.provider, misses[0].call.model)
        # Token counts per price entry first, money once per entry: Decimal arithmetic per call is
        # what would make this rule slow on 100,000 calls.
        served_by_prices: dict[UnitPrices, list[tuple[str, int]]] = defaultdict(list)
        written_by_prices: dict[UnitPrices, list[int]] = defaultdict(lambda: [0, 0])  # [default TTL, 1 hour]
        for miss in misses:
            prices = book.get(miss.call)
            if prices is None:
                continue
            served = facts.cacheable(miss.prefix_tokens) - miss.call.cache_read_tokens
            if served > 0:
                served_by_prices[prices].append((miss.call.span_id, served))
            if miss.write_tokens:
                written_by_prices[prices][1 if miss.one_hour else 0] += miss.write_tokens
        gross_total = sum((p.read_discount * sum(n for _, n in calls) for p, calls in served_by_prices.items()), ZERO)
        premium = sum(
            (p.write_premium * w5 + p.write_premium_1h * w1 for p, (w5, w1) in written_by_prices.items()), ZERO
        )
        net = max(gross_total - premium, ZERO)
        if not gross_total or net <= 0:
            return None
        keep = net / gross_total
        saved = ZERO
        claimed: list[str] = []
        claim = context.ledger.claim
        for prices, calls_served in served_by_prices.items():
            per_token = prices.read_discount * keep
            for span_id, tokens in calls_served:
                granted = claim(span_id, tokens * per_token)
                if granted:
                    saved += granted
                    claimed.append(span_id)
        if saved <= 0:
            return None
        prices_used = next(iter(served_by_prices)).per_mtok()
        confidence = _CONFIDENCE.get(diagnosis, "medium")
        prefix = round(median(miss.prefix_tokens for miss in misses))
        current = sum((call.cost or ZERO for call in group.calls), ZERO)
        first = misses[0].call
        unit = book.get(first)
        evidence = {
            "diagnosis": diagnosis,
            "calls": len(group.calls),
            "missed_calls": len(misses),
            "cache_hits": group.hits,
            "below_minimum": group.below_minimum,
            "ttl_expired": group.ttl_expired,
            "shared_prefix_tokens_median": prefix,
            "min_cacheable_tokens": facts.minimum_tokens,
            "ttl_seconds": facts.ttl_ns // 1_000_000_000,
            "facts_source": facts.source,
            "cache_breakpoints": first.cache_breakpoints or 0,
            "gross_read_savings_usd": str(gross_total),
            "write_premium_usd": str(premium),
            "break_even_reads": (
                round(float(unit.write_premium / unit.read_discount), 2) if unit and unit.read_discount else None
            ),
            "prices": prices_used,
            "formula": "sum (cacheable(P) - cache_read) x (p_in - p_read) - written tokens x (p_write - p_in)",
        }
        low = saved * Decimal("0.5") if confidence == "medium" else saved * Decimal("0.8")
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=model or None,
            current_cost_usd=current,
            estimated_savings_usd=saved,
            savings_range_usd=(low, saved),
            confidence=confidence,
            suggestion=_SUGGESTIONS[diagnosis].format(step=step, misses=len(misses), prefix=prefix),
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = PromptCacheRule()
