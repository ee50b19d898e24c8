"""R1 ``exact_cache``: identical requests sent again, which a response cache would have answered.

Calls are walked in time order. A call is a *repeat* when an earlier call sent the identical
request (same ``request_fingerprint``: model, messages, tools and sampling parameters) and the
cached answer would still be valid: the earlier occurrence is in the same task, or the *original*
(the first occurrence, which filled the cache) started at most ``window_hours`` earlier. A repeat
of an expired original becomes the new original.

Not repeats: the first occurrence; a call that errored (nothing to serve, nothing billed); a call
whose previous same-fingerprint call errored (a retry after an error belongs to ``retry_storm``).

Savings = the full recorded cost of every repeat, claimed from the ledger (``retry_storm`` runs
first), per (task name, step, model) of the repeat. Confidence ``high`` when every repeat asked
at temperature 0 and got the original's output again (a cache changes nothing), else ``medium``
(temperature > 0 or unknown, or outputs differed: caching would change behaviour). The low end
of the range is the estimate for ``high``, half of it for ``medium``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import compress
from operator import attrgetter

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext

_NS_PER_HOUR = 3600 * 1_000_000_000
_HALF = Decimal("0.5")

_Key = tuple[str, str, str]  # (task name, step, model)
_STEP_NAME = attrgetter("step_name")


@dataclass(slots=True)
class _Group:
    calls: int = 0
    fingerprints: set[str] = field(default_factory=set)
    cost: Decimal = ZERO
    repeats: list[tuple[CallRecord, CallRecord]] = field(default_factory=list)  # (repeat, original)


def _repeats(calls: Sequence[CallRecord], window_ns: int) -> dict[_Key, list[tuple[CallRecord, CallRecord]]]:
    """The repeats (with their originals) of each (task name, step, model), walking the calls in time order.

    Only calls whose fingerprint occurs more than once can be or have a repeat; the others (most
    calls: every agent-loop request is new) are skipped without a look at them in Python.
    """
    fingerprint_of = attrgetter("request_fingerprint")
    seen: set[str | None] = set()
    mark_seen = seen.add  # returns None: the condition below keeps the second and later occurrences
    repeated = {
        fingerprint for fingerprint in map(fingerprint_of, calls) if fingerprint in seen or mark_seen(fingerprint)
    }
    repeated.discard(None)
    originals: dict[str | None, CallRecord] = {}  # keys are the repeated fingerprints, never None
    previous: dict[str | None, CallRecord] = {}
    found: dict[_Key, list[tuple[CallRecord, CallRecord]]] = defaultdict(list)
    for call in compress(calls, map(repeated.__contains__, map(fingerprint_of, calls))):
        fingerprint = call.request_fingerprint
        last = previous.get(fingerprint)
        previous[fingerprint] = call
        if call.status == "error" or (last is not None and last.status == "error"):
            continue
        original = originals.get(fingerprint)
        fresh = original is not None and (
            call.start_ns - original.start_ns <= window_ns
            or (call.task_id is not None and last is not None and last.task_id == call.task_id)
        )
        if original is not None and fresh:
            found[(call.task_name, call.step_name, call.model or "")].append((call, original))
        else:
            originals[fingerprint] = call
    return found


def _count_calls(calls: Sequence[CallRecord], groups: dict[_Key, _Group]) -> None:
    """Fill in the calls, distinct requests and cost of ``groups`` (calls without a fingerprint do not count).

    One C-level pass picks the calls of these groups' steps; only those are looked at in Python.
    """
    if not groups:
        return
    steps = {step for _, step, _ in groups}
    for call in compress(calls, map(steps.__contains__, map(_STEP_NAME, calls))):
        fingerprint = call.request_fingerprint
        if fingerprint is None:
            continue
        group = groups.get((call.task_name, call.step_name, call.model or ""))
        if group is not None:
            group.calls += 1
            group.fingerprints.add(fingerprint)
            group.cost += call.cost or ZERO


class ExactCacheRule:
    """Flag steps whose identical requests a response cache would have served."""

    kind = "exact_cache"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, step, model) with enough repeated requests."""
        settings = context.config.exact_cache
        calls = context.workload.calls
        repeats = _repeats(calls, int(settings.window_hours * _NS_PER_HOUR))
        groups: dict[_Key, _Group] = {}
        for key in sorted(repeats):
            found = repeats[key]
            if len(found) < settings.min_repeats:
                continue
            potential = sum((repeat.cost or ZERO for repeat, _ in found), ZERO)
            if potential < Decimal(str(settings.min_savings_usd)):
                continue
            groups[key] = _Group(repeats=found)
        _count_calls(calls, groups)
        return [self._finding(key, group, context) for key, group in groups.items()]

    def _finding(self, key: tuple[str, str, str], group: _Group, context: RuleContext) -> Finding:
        task, step, model = key
        saved = ZERO
        claimed: list[str] = []
        for repeat, _ in group.repeats:
            if repeat.cost is None:
                continue
            granted = context.ledger.claim(repeat.span_id, repeat.cost)
            saved += granted
            if granted:
                claimed.append(repeat.span_id)
        temperatures = sorted({repeat.temperature for repeat, _ in group.repeats}, key=lambda t: (t is None, t or 0.0))
        identical = all(
            repeat.output_hash is not None and repeat.output_hash == original.output_hash
            for repeat, original in group.repeats
        )
        greedy = temperatures == [0.0]
        confidence: Confidence = "high" if greedy and identical else "medium"
        repeats = len(group.repeats)
        evidence = {
            "calls": group.calls,
            "repeats": repeats,
            "duplicate_rate": round(repeats / group.calls, 4),
            "distinct_requests": len(group.fingerprints),
            "temperature": temperatures[0] if len(temperatures) == 1 else "mixed",
            "outputs_identical": identical,
            "unpriced_repeats": sum(1 for repeat, _ in group.repeats if repeat.cost is None),
            "window_hours": context.config.exact_cache.window_hours,
            "formula": "sum of the recorded cost of every repeat (the first occurrence is not one)",
        }
        suggestion = (
            f"Cache responses of step '{step}': {repeats} of {group.calls} requests repeated an identical earlier one"
        )
        if not identical:
            suggestion += " (the answers differed: check that a cached answer is acceptable)"
        elif not greedy:
            suggestion += " (sampled at temperature > 0 or unknown: check that one answer per request is acceptable)"
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=model or None,
            current_cost_usd=group.cost,
            estimated_savings_usd=saved,
            savings_range_usd=(saved if confidence == "high" else saved * _HALF, saved),
            confidence=confidence,
            suggestion=suggestion,
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = ExactCacheRule()
