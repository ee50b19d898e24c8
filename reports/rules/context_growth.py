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
from functools import lru_cache
from itertools import repeat
from operator import attrgetter
from statistics import median
from typing import cast

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext
from ._prefixes import Boundaries, known_boundaries, parse_unseen
from ._prices import PriceBook, UnitPrices

_MTOK = Decimal(1_000_000)
_INPUT_TOKENS = attrgetter("input_tokens")
_CACHE_READ_TOKENS = attrgetter("cache_read_tokens")
_COST = attrgetter("cost")
_MODEL = attrgetter("model")


@dataclass(frozen=True, slots=True)
class _Loop:
    calls: Sequence[CallRecord]
    shared: list[int]  # shared_k: tokens call k shares with call k-1 (0 for the first)
    slope: float
    r_squared: float


def _fit(values: Sequence[int]) -> tuple[float, float]:
    """Least-squares slope and R² of ``values`` against 0..n-1."""
    n = len(values)
    offsets, sxx = _positions(n)
    mean_v = sum(values) / n
    deviations = [v - mean_v for v in values]
    sxy = sum([offset * deviation for offset, deviation in zip(offsets, deviations, strict=True)])
    syy = sum([deviation**2 for deviation in deviations])
    slope = sxy / sxx
    r_squared = (sxy * sxy) / (sxx * syy) if syy else 0.0
    return slope, r_squared


@lru_cache(maxsize=256)
def _positions(n: int) -> tuple[list[float], float]:
    """``k - mean_k`` for k in 0..n-1, and their sum of squares: the same for every loop of ``n`` calls."""
    mean_k = (n - 1) / 2
    offsets = [k - mean_k for k in range(n)]
    return offsets, sum([offset**2 for offset in offsets])


def _shared(calls: Sequence[CallRecord]) -> list[int]:
    """``shared_k`` of every call of a loop: tokens of its input shared with the call before (0 for the first).

    The common prefix fingerprints, scaled to the call's real ``input_tokens``. Boundary hashes are
    chained, so once two boundaries differ every later one does: the common prefix is found by
    bisection, and in the usual loop (call k extends call k-1) by one test.
    """
    shared = [0]
    theirs = _boundaries(calls[0])[0]
    for call in calls[1:]:
        mine, tokens = _boundaries(call)
        total = tokens[-1] if tokens else 0
        if not total:
            shared.append(0)
            theirs = mine
            continue
        low, high = 0, len(mine) if len(mine) < len(theirs) else len(theirs)  # mine[:low] == theirs[:low]
        if high and mine[high - 1] == theirs[high - 1]:
            low = high
        while low < high:
            middle = (low + high + 1) // 2
            if mine[middle - 1] == theirs[middle - 1]:
                low = middle
            else:
                high = middle - 1
        common = tokens[low - 1] if low else 0
        input_tokens = call.input_tokens
        scaled = round(common * input_tokens / total)
        shared.append(scaled if scaled < input_tokens else input_tokens)
        theirs = mine
    return shared


def _boundaries(call: CallRecord) -> Boundaries:
    text = call.prefix_fingerprints_json
    if not text:
        return (), ()
    return known_boundaries(text) or parse_unseen(text)


_FIRST_HASH_AT = len('[{"hash":"')
_TEXT = attrgetter("prefix_fingerprints_json")


def _loops(calls: Sequence[CallRecord], min_iterations: int) -> dict[tuple[str, str, str], list[CallRecord]]:
    """The loops of at least ``min_iterations`` calls, by (task id, step, first prefix hash).

    Calls are grouped by (task id, step) first, and only the groups long enough are filtered (no
    errors, usage and prefixes recorded) and then split by their first prefix hash, and only when
    they have more than one (a step's calls usually share their tools and system prompt): most
    calls of a store are in short steps, and looking at each of them would cost more than the
    rest of the rule.
    """
    steps: dict[tuple[str, str], list[CallRecord]] = defaultdict(list)
    for call in calls:
        task_id = call.task_id
        if task_id is not None:
            steps[(task_id, call.step_name)].append(call)
    loops: dict[tuple[str, str, str], list[CallRecord]] = {}
    for (task_id, step), step_calls in steps.items():
        if len(step_calls) < min_iterations:
            continue
        step_calls = [call for call in step_calls if _looks_at(call)]
        if len(step_calls) < min_iterations:
            continue
        first = _first_prefix_hash(step_calls[0])
        if all(map(str.startswith, map(_TEXT, step_calls), repeat(f'[{{"hash":"{first}"'))):
            loops[(task_id, step, first)] = step_calls
            continue
        by_first: dict[str, list[CallRecord]] = defaultdict(list)
        for call in step_calls:
            by_first[_first_prefix_hash(call)].append(call)
        for first, loop in by_first.items():
            if len(loop) >= min_iterations:
                loops[(task_id, step, first)] = loop
    return loops


def _looks_at(call: CallRecord) -> bool:
    """Whether the rule counts ``call``: no error, usage and prefixes recorded."""
    text = call.prefix_fingerprints_json
    return bool(text) and text != "[]" and call.status != "error" and call.usage_known


def _first_prefix_hash(call: CallRecord) -> str:
    """The first prefix hash, read straight from the stored JSON when it has the recorder's layout."""
    text = call.prefix_fingerprints_json or ""
    if text.startswith('[{"hash":"'):
        end = text.find('"', _FIRST_HASH_AT)
        if end > 0:
            return text[_FIRST_HASH_AT:end]
    return call.boundaries[0][0]


class ContextGrowthRule:
    """Flag agent loops that re-send their whole growing history every iteration."""

    kind = "context_growth"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, step) whose loops grow quadratically."""
        settings = context.config.context_growth
        prices = PriceBook()  # per run: prices are those of this workload's calls
        flagged: dict[tuple[str, str], list[_Loop]] = defaultdict(list)
        loops = _loops(context.workload.calls, settings.min_iterations)
        for key in sorted(loops):
            calls = loops[key]
            inputs = [call.input_tokens for call in calls]
            slope, r_squared = _fit(inputs)
            if slope <= 0 or r_squared < settings.min_r_squared:
                continue
            shared = _shared(calls)
            new_total = sum(inputs) - sum(shared)
            if new_total <= 0 or sum(inputs) / new_total < settings.min_resend_ratio:
                continue
            flagged[(calls[0].task_name, calls[0].step_name)].append(_Loop(calls, shared, slope, r_squared))
        return [self._finding(key, flagged[key], context, prices) for key in sorted(flagged)]

    def _finding(self, key: tuple[str, str], loops: list[_Loop], context: RuleContext, book: PriceBook) -> Finding:
        task, step = key
        settings = context.config.context_growth
        calls = [call for loop in loops for call in loop.calls]
        total_input = sum(map(_INPUT_TOKENS, calls))
        total_shared = sum(sum(loop.shared) for loop in loops)
        total_new = total_input - total_shared
        cache_read = sum(map(_CACHE_READ_TOKENS, calls))
        cached_fraction = cache_read / total_input if total_input else 0.0
        current = sum(filter(None, map(_COST, calls)), ZERO)  # as "cost or ZERO": adding ZERO changes nothing
        models = sorted({model or "" for model in map(_MODEL, calls)})
        resent_cost = write_premium = ZERO
        # (span id, [what caching its re-sent part saves, the part of it kept after the write premium]):
        # the pair is shared by the calls that re-send as many tokens at the same prices, so the
        # Decimal arithmetic is done once per distinct size.
        gross: list[tuple[str, list[Decimal | None]]] = []
        priced_with: dict[str, dict[str, str]] = {}
        per_entry: dict[UnitPrices, tuple[dict[str, str], dict[int, list[Decimal | None]]]] = {}
        for loop in loops:
            prices = book.get(loop.calls[0])
            if prices is None:
                continue
            entry = per_entry.get(prices)
            if entry is None:
                entry = per_entry[prices] = (_evidence_prices(prices), {})
            evidence_prices, savings = entry
            priced_with[loop.calls[0].model or "?"] = evidence_prices
            read_discount = prices.input - prices.cache_read
            # shared_k splits into its uncached part, max(0, shared_k - cache_read_k), and the rest.
            uncached_total = 0
            for call, shared in zip(loop.calls, loop.shared, strict=True):
                uncached = shared - call.cache_read_tokens
                if uncached > 0:
                    uncached_total += uncached
                    saving = savings.get(uncached)
                    if saving is None:
                        saving = savings[uncached] = [uncached * read_discount, None]
                    gross.append((call.span_id, saving))
            shared_total = sum(loop.shared)
            cached_total = shared_total - uncached_total
            new_total = sum(map(_INPUT_TOKENS, loop.calls)) - shared_total
            resent_cost += uncached_total * prices.input + cached_total * prices.cache_read
            write_premium += new_total * max(prices.cache_write - prices.input, ZERO)
        saved = ZERO
        claimed: list[str] = []
        if cached_fraction < settings.low_cached_fraction and gross:
            gross_total = sum((cast(Decimal, saving[0]) for _, saving in gross), ZERO)
            keep = max(gross_total - write_premium, ZERO) / gross_total if gross_total else ZERO
            claim, claimed_before = context.ledger.claim, context.ledger.claimed
            for span_id, saving in gross:
                kept = saving[1]
                if kept is None:
                    kept = saving[1] = cast(Decimal, saving[0]) * keep
                # Caching the re-sent history is the fix ``prompt_cache`` may already have claimed on
                # these calls: only what goes beyond the earlier claims is this rule's saving (often
                # nothing, and then there is nothing to claim).
                earlier = claimed_before(span_id)
                if kept <= earlier:
                    continue
                granted = claim(span_id, kept - earlier)
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


def _evidence_prices(prices: UnitPrices) -> dict[str, str]:
    return {
        "input_per_mtok": str(prices.input * _MTOK),
        "cache_read_per_mtok": str(prices.cache_read * _MTOK),
        "cache_write_per_mtok": str(prices.cache_write * _MTOK),
    }


RULE = ContextGrowthRule()
