"""R4 ``context_growth``: agent loops whose input grows every iteration (quadratic total input).

A *loop* is the sequence of calls of one step in one task that share their first prefix hash (the
same tools/system prompt), in time order. It is flagged when it has at least ``min_iterations``
calls, its input grows linearly (least squares ``input_k = a + b*k`` with ``b > 0`` and
``R² >= min_r_squared``) and ``resend_ratio = Σ input_k / Σ new_k >= min_resend_ratio``, where
``new_k = input_k - shared_k`` and ``shared_k`` is the prefix call k shares with call k-1: the
approximate tokens of their longest common prefix fingerprint, scaled to call k's real
``input_tokens``.

Money, with the model's own unit prices (:class:`~._prices.PriceBook`, at the loop's first call):

* re-sent cost = Σ ``shared_k x p_in`` less what cache reads already saved; its share of the loop's
  cost is reported;
* when ``cached_fraction = Σ cache_read / Σ input`` is below ``low_cached_fraction``, the saving of
  prompt caching the re-sent part: Σ ``max(0, shared_k - cache_read_k) x (p_in - p_read)`` minus the
  write premium ``Σ new_k x (p_write - p_in)`` (every new part is written once; 0 for providers whose
  writes are free), less whatever earlier rules already claimed on the same call (``prompt_cache``
  runs first and claims the same fix): confidence ``medium`` (assumes the provider serves the hits).
* otherwise the loop is already cached: reported with no saving and ``low`` confidence, suggesting
  to compact or trim the history (a quality risk, so no dollar figure is promised).

Findings aggregate the loops per (task name, step).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import median

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext
from ._prices import PriceBook

_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class _Loop:
    calls: Sequence[CallRecord]
    shared: list[int]  # shared_k: tokens call k shares with call k-1 (0 for the first)
    slope: float
    r_squared: float


def _fit(values: Sequence[int]) -> tuple[float, float]:
    """Least-squares slope and R² of ``values`` against 0..n-1."""
    n = len(values)
    mean_k = (n - 1) / 2
    mean_v = sum(values) / n
    sxx = sum((k - mean_k) ** 2 for k in range(n))
    sxy = sum((k - mean_k) * (v - mean_v) for k, v in enumerate(values))
    syy = sum((v - mean_v) ** 2 for v in values)
    slope = sxy / sxx
    r_squared = (sxy * sxy) / (sxx * syy) if syy else 0.0
    return slope, r_squared


def _shared_tokens(call: CallRecord, before: CallRecord) -> int:
    """Tokens of ``call``'s input shared with ``before`` (common prefix fingerprints, scaled to real tokens).

    Boundary hashes are chained, so once two boundaries differ every later one does: the common
    prefix is found by bisection, and in the usual loop (``call`` extends ``before``) by one test.
    """
    mine, tokens = call.boundaries
    theirs = before.boundaries[0]
    total = tokens[-1] if tokens else 0
    if not total:
        return 0
    low, high = 0, min(len(mine), len(theirs))  # mine[:low] == theirs[:low]
    if high and mine[high - 1] == theirs[high - 1]:
        low = high
    while low < high:
        middle = (low + high + 1) // 2
        if mine[middle - 1] == theirs[middle - 1]:
            low = middle
        else:
            high = middle - 1
    common = tokens[low - 1] if low else 0
    return min(call.input_tokens, round(common * call.input_tokens / total))


_FIRST_HASH_AT = len('[{"hash":"')


def _first_prefix_hash(call: CallRecord) -> str:
    """The first prefix hash, read straight from the stored JSON when it has the recorder's layout.

    Grouping only needs this hash, and parsing every call's prefixes would cost more than the rest
    of the rule; only the calls of long enough loops are parsed in full.
    """
    text = call.prefix_fingerprints_json or ""
    if text.startswith('[{"hash":"'):
        end = text.find('"', _FIRST_HASH_AT)
        if end > 0:
            return text[_FIRST_HASH_AT:end]
    return call.boundaries[0][0]


def _loops(calls: Sequence[CallRecord]) -> dict[tuple[str, str, str], list[CallRecord]]:
    loops: dict[tuple[str, str, str], list[CallRecord]] = defaultdict(list)
    for call in calls:
        text = call.prefix_fingerprints_json
        if call.task_id is None or call.status == "error" or not call.usage_known or not text or text == "[]":
            continue
        loops[(call.task_id, call.step_name, _first_prefix_hash(call))].append(call)
    return loops


class ContextGrowthRule:
    """Flag agent loops that re-send their whole growing history every iteration."""

    kind = "context_growth"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, step) whose loops grow quadratically."""
        settings = context.config.context_growth
        prices = PriceBook()  # per run: prices are those of this workload's calls
        flagged: dict[tuple[str, str], list[_Loop]] = defaultdict(list)
        loops = _loops(context.workload.calls)
        for key in sorted(loops):
            calls = loops[key]
            if len(calls) < settings.min_iterations:
                continue
            inputs = [call.input_tokens for call in calls]
            slope, r_squared = _fit(inputs)
            if slope <= 0 or r_squared < settings.min_r_squared:
                continue
            shared = [0] + [_shared_tokens(calls[k], calls[k - 1]) for k in range(1, len(calls))]
            new_total = sum(inputs) - sum(shared)
            if new_total <= 0 or sum(inputs) / new_total < settings.min_resend_ratio:
                continue
            flagged[(calls[0].task_name, calls[0].step_name)].append(_Loop(calls, shared, slope, r_squared))
        return [self._finding(key, flagged[key], context, prices) for key in sorted(flagged)]

    def _finding(self, key: tuple[str, str], loops: list[_Loop], context: RuleContext, book: PriceBook) -> Finding:
        task, step = key
        settings = context.config.context_growth
        calls = [call for loop in loops for call in loop.calls]
        total_input = sum(call.input_tokens for call in calls)
        total_shared = sum(sum(loop.shared) for loop in loops)
        total_new = total_input - total_shared
        cache_read = sum(call.cache_read_tokens for call in calls)
        cached_fraction = cache_read / total_input if total_input else 0.0
        current = sum((call.cost or ZERO for call in calls), ZERO)
        models = sorted({call.model or "" for call in calls})
        resent_cost = write_premium = ZERO
        gross: list[tuple[str, Decimal]] = []  # (span id, what caching its re-sent part saves)
        priced_with: dict[str, dict[str, str]] = {}
        for loop in loops:
            prices = book.get(loop.calls[0])
            if prices is None:
                continue
            priced_with[loop.calls[0].model or "?"] = {
                "input_per_mtok": str(prices.input * _MTOK),
                "cache_read_per_mtok": str(prices.cache_read * _MTOK),
                "cache_write_per_mtok": str(prices.cache_write * _MTOK),
            }
            read_discount = prices.input - prices.cache_read
            uncached_total = cached_total = new_total = 0
            for call, shared in zip(loop.calls, loop.shared, strict=True):
                uncached = max(shared - call.cache_read_tokens, 0)
                uncached_total += uncached
                cached_total += min(shared, call.cache_read_tokens)
                new_total += call.input_tokens - shared
                if uncached:
                    gross.append((call.span_id, uncached * read_discount))
            resent_cost += uncached_total * prices.input + cached_total * prices.cache_read
            write_premium += new_total * max(prices.cache_write - prices.input, ZERO)
        saved = ZERO
        claimed: list[str] = []
        if cached_fraction < settings.low_cached_fraction and gross:
            gross_total = sum((amount for _, amount in gross), ZERO)
            keep = max(gross_total - write_premium, ZERO) / gross_total if gross_total else ZERO
            for span_id, amount in gross:
                # Caching the re-sent history is the fix ``prompt_cache`` may already have claimed on
                # these calls: only what goes beyond the earlier claims is this rule's saving.
                granted = context.ledger.claim(span_id, amount * keep - context.ledger.claimed(span_id))
                if granted:
                    saved += granted
                    claimed.append(span_id)
        confidence: Confidence = "medium" if saved > 0 else "low"
        resend_ratio = total_input / total_new if total_new > 0 else 0.0
        evidence = {
            "loops": len(loops),
            "iterations_median": median(len(loop.calls) for loop in loops),
            "growth_tokens_per_iteration_median": round(median(loop.slope for loop in loops), 1),
            "r_squared_min": round(min(loop.r_squared for loop in loops), 4),
            "input_tokens": total_input,
            "resent_tokens": round(total_shared),
            "new_tokens": round(total_new),
            "resend_ratio": round(resend_ratio, 2),
            "cached_fraction": round(cached_fraction, 4),
            "resent_cost_usd": str(resent_cost),
            "resent_cost_share": round(float(resent_cost / current), 4) if current else None,
            "cache_write_premium_usd": str(write_premium),
            "prices": priced_with,
            "formula": "sum max(0, shared_k - cache_read_k) x (p_in - p_read) - sum new_k x (p_write - p_in)",
        }
        if saved > 0:
            suggestion = (
                f"Loop in step '{step}' re-sends {resend_ratio:.1f}x its new input: enable prompt caching of the "
                "growing history (append-only context, cache breakpoint on the last message)"
            )
        else:
            suggestion = (
                f"Loop in step '{step}' re-sends {resend_ratio:.1f}x its new input: compact or trim old turns "
                "(validate quality first)"
            )
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=models[0] or None if len(models) == 1 else None,
            current_cost_usd=current,
            estimated_savings_usd=saved,
            savings_range_usd=(saved * Decimal("0.5"), saved),
            confidence=confidence,
            suggestion=suggestion,
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = ContextGrowthRule()
