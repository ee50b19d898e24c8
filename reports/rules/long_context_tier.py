"""R5 ``long_context_tier``: calls just over a long-context price tier threshold.

Long-context tiers are cliffs: past the tier start (200k input tokens for Claude and Gemini 2.5
Pro, 272k for GPT-5.4+, as genai-prices records them) *every* token of the request is billed at
the higher rate. A call whose input is at most ``max_over_fraction`` above a tier start could be
trimmed below it, and the whole request would then be billed at the lower rate.

Savings per call = recorded cost - cost of the same call with its input capped at the tier start
(genai-prices applies a tier to requests *above* its start), trimmed from the uncached part first,
then cache reads, then cache writes, output unchanged, re-priced exactly through
:func:`agentprof.pricing.price_call`.
Confidence ``medium``: the arithmetic is exact, but trimming can drop context the step needs.
Findings per (task name, step, model), claimed from the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from statistics import median

from agentprof._usage import CanonicalUsage

from ._base import ZERO, CallRecord, Finding, RuleContext
from ._prices import PriceBook


def _capped_usage(call: CallRecord, limit: int) -> CanonicalUsage:
    """``call``'s canonical usage with input trimmed to ``limit`` tokens."""
    excess = call.input_tokens - limit
    uncached = call.input_tokens - call.cache_read_tokens - call.cache_write_tokens
    from_uncached = min(excess, uncached)
    excess -= from_uncached
    from_read = min(excess, call.cache_read_tokens)
    excess -= from_read
    write = call.cache_write_tokens - excess
    write_5m = call.cache_write_5m_tokens
    write_1h = call.cache_write_1h_tokens
    if excess:  # trimmed writes: keep the TTL split proportional, within the new total
        ratio = write / call.cache_write_tokens if call.cache_write_tokens else 0.0
        write_5m = None if write_5m is None else int(write_5m * ratio)
        write_1h = None if write_1h is None else min(int(write_1h * ratio), write - (write_5m or 0))
    return CanonicalUsage(
        input_tokens=limit,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens - from_read,
        cache_write_tokens=write,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=call.reasoning_tokens,
    )


def _spend(
    calls: Sequence[CallRecord], groups: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[int, Decimal]]:
    """Priced calls (known usage, no error) and their recorded cost in each of ``groups``, summed in time order.

    A second pass, made only when there are findings: most selections have none, and the first
    pass then keeps no per-step totals at all.
    """
    spend: dict[tuple[str, str, str], tuple[int, Decimal]] = defaultdict(lambda: (0, ZERO))
    if not groups:
        return spend
    for call in calls:
        cost = call.cost
        if cost is None or not call.usage_known or call.status == "error":
            continue
        group = (call.task_name, call.step_name, call.model or "")
        if group in groups:
            count, total = spend[group]
            spend[group] = (count + 1, total + cost)
    return spend


class LongContextTierRule:
    """Flag calls whose input just crossed a long-context price tier."""

    kind = "long_context_tier"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, step, model) with calls just over a tier start."""
        settings = context.config.long_context_tier
        book = PriceBook()
        calls = context.workload.calls
        tiers: dict[tuple[str | None, str | None, str | None], tuple[int, ...]] = {}
        over: dict[tuple[str, str, str], list[tuple[CallRecord, int, Decimal]]] = defaultdict(list)
        for call in calls:
            cost = call.cost
            if cost is None or not call.usage_known or call.status == "error":
                continue
            model = (call.provider, call.model, call.server_address)
            starts = tiers.get(model)
            if starts is None:
                starts = tiers[model] = book.tier_starts(call)  # as the book memoises it: for the first call
            if not starts or call.input_tokens <= starts[0]:
                continue
            start = max(s for s in starts if s < call.input_tokens)  # a tier prices requests *above* its start
            if call.input_tokens > start * (1 + settings.max_over_fraction):
                continue
            trimmed = book.cost(call, _capped_usage(call, start))
            if trimmed is None or trimmed >= cost:
                continue
            over[(call.task_name, call.step_name, call.model or "")].append((call, start, cost - trimmed))
        spend = _spend(calls, set(over))
        return [self._finding(key, over[key], spend[key], context) for key in sorted(over)]

    def _finding(
        self,
        key: tuple[str, str, str],
        calls: list[tuple[CallRecord, int, Decimal]],
        spend: tuple[int, Decimal],
        context: RuleContext,
    ) -> Finding:
        task, step, model = key
        saved = ZERO
        claimed: list[str] = []
        for call, _, amount in calls:
            granted = context.ledger.claim(call.span_id, amount)
            if granted:
                saved += granted
                claimed.append(call.span_id)
        step_calls, current = spend
        starts = sorted({start for _, start, _ in calls})
        over_tokens = [call.input_tokens - start for call, start, _ in calls]
        evidence = {
            "calls_over_tier": len(calls),
            "step_calls": step_calls,
            "tier_starts": starts,
            "input_tokens_median": round(median(call.input_tokens for call, _, _ in calls)),
            "tokens_to_trim_median": round(median(over_tokens)),
            "tokens_to_trim_max": max(over_tokens),
            "formula": "sum cost(call) - cost(call with input capped at tier_start)",
        }
        suggestion = (
            f"Trim the context of step '{step}' to {starts[0]:,} input tokens or fewer: {len(calls)} calls crossed the "
            f"long-context price tier by at most {max(over_tokens):,} tokens and paid the higher rate on every token"
        )
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=model or None,
            current_cost_usd=current,
            estimated_savings_usd=saved,
            savings_range_usd=(saved * Decimal("0.5"), saved),
            confidence="medium",
            suggestion=suggestion,
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = LongContextTierRule()
