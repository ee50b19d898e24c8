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
from collections.abc import Sequence
from decimal import Decimal
from operator import attrgetter
from statistics import median

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext
from ._cache_facts import cache_facts
from ._prefix_scan import Group, Miss, Scanner
from ._prices import PriceBook, UnitPrices

_COST = attrgetter("cost")


def _total_cost(calls: Sequence[CallRecord]) -> Decimal:
    """Recorded cost of ``calls`` (unpriced ones count 0), summed in order.

    Skipping a zero cost is the same as adding ``ZERO`` to a running sum whose exponent is at most 0.
    """
    return sum(filter(None, map(_COST, calls)), ZERO)


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
        scanner = Scanner(settings.read_fraction_below)
        scanner.scan(context.workload.calls)
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
        misses: list[Miss],
        group: Group,
        scanner: Scanner,
        book: PriceBook,
        context: RuleContext,
    ) -> Finding | None:
        task, step, model = key
        first = misses[0][0]
        facts = cache_facts(first.provider, first.model)
        minimum, increment = facts.minimum_tokens, facts.increment_tokens
        # Token counts per price entry first, money once per entry: Decimal arithmetic per call is
        # what would make this rule slow on 100,000 calls.
        served_by_prices: dict[UnitPrices, list[tuple[str, int]]] = defaultdict(list)
        written_by_prices: dict[UnitPrices, list[int]] = defaultdict(lambda: [0, 0])  # [default TTL, 1 hour]
        for call, prefix_tokens, write_tokens, one_hour in misses:
            prices = book.get(call)
            if prices is None:
                continue
            cacheable = prefix_tokens - prefix_tokens % increment if prefix_tokens >= minimum else 0
            served = cacheable - call.cache_read_tokens
            if served > 0:
                served_by_prices[prices].append((call.span_id, served))
            if write_tokens:
                written_by_prices[prices][1 if one_hour else 0] += write_tokens
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
            amounts: dict[int, Decimal] = {}  # tokens -> tokens x per_token: calls of a step serve alike
            for span_id, tokens in calls_served:
                amount = amounts.get(tokens)
                if amount is None:
                    amount = amounts[tokens] = tokens * per_token
                granted = claim(span_id, amount)
                if granted:
                    saved += granted
                    claimed.append(span_id)
        if saved <= 0:
            return None
        prices_used = next(iter(served_by_prices)).per_mtok()
        confidence = _CONFIDENCE.get(diagnosis, "medium")
        prefix = round(median([miss[1] for miss in misses]))
        current = _total_cost(group.calls)
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
