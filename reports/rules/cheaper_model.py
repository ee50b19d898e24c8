"""R6 ``cheaper_model``: an expensive model on easy steps, and the cheapest same-provider model to try.

Calls are clustered by (task name, step, provider, model); only successful chat calls with known
usage count. A cluster is *eligible* with at least ``min_calls`` calls and ``min_cost_usd`` spend,
on a model priced above its provider's small models (genai-prices, on the step's mean usage: the
``tier`` labels of :mod:`._candidates` only say which models form the small band).

A step is *easy* when at least two of these signals hold (pricing_routing.md §B.5 R6):

- short: median output tokens <= ``max_median_output_tokens`` and p90 <= ``max_p90_output_tokens``;
- structured: every call asked for JSON (``json_schema`` / ``json_object``) or forced a tool;
- classification-like: distinct outputs / calls <= ``max_distinct_output_ratio``;
- low reasoning: reasoning tokens <= ``max_reasoning_share`` of output tokens.

Steps with long *and* varied outputs (median above the limit and distinct ratio above the limit,
or unknown) are never flagged, whatever the other signals say.

The candidate is the model of the same provider that supports what the step used (tools, JSON
schema, the largest call's context, reasoning when the step relied on it; never a model that
always reasons when the recorded usage has no reasoning tokens, since its hidden reasoning would
not be in the estimate) and costs least on the step's mean usage, provided it is cheaper than the
current model on the step's actual calls.

Savings, per call, re-pricing the recorded canonical usage on the candidate at the call's own
timestamp (``ratio = candidate_cost / current_cost``; ``left`` = what earlier rules left of the
call in the ledger; ``s`` = ``token_spread``; ``a`` = ``acceptance_low``)::

    estimate = left x (1 - ratio)                  # claimed from the ledger
    high     = left x (1 - ratio x (1 - s))        # the candidate needs s fewer tokens
    low      = a x left x (1 - ratio x (1 + s))    # s more tokens, and only a share a of calls move

each clamped to [0, left]. Confidence is always ``low``: the estimate assumes the cheaper model
gives answers as good, which only a replay of recorded inputs can show.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields
from decimal import Decimal
from operator import attrgetter

from agentprof._usage import CanonicalUsage
from agentprof.pricing import resolve_model
from agentprof.pricing._reprice import Repricer

from ._base import ZERO, CallRecord, Finding, RuleContext
from ._candidates import CandidateModel, StepNeeds, candidates_for, supports
from ._easy_steps import INPUT, OUTPUT, REASONING, Signals, describe, is_set, step_needs, step_signals

_NON_CHAT_OPERATIONS = frozenset({"embeddings", "invoke_agent", "execute_tool"})
_ONE = Decimal(1)

# Field getters and tests for C-level passes over a cluster's calls (``map``/``filter``, no Python per call).
_COST = attrgetter("cost")
_TOKENS = attrgetter(*(usage.name for usage in fields(CanonicalUsage)))  # what usage_of reads, as a memo key
_CACHE_READ = attrgetter("cache_read_tokens")
_CACHE_WRITE = attrgetter("cache_write_tokens")
_CACHE_WRITE_5M = attrgetter("cache_write_5m_tokens")
_CACHE_WRITE_1H = attrgetter("cache_write_1h_tokens")

_ClusterKey = tuple[str, str, str, str]  # (task name, step, provider, model)


class _Prices:
    """One :class:`Repricer` per (provider, model) for a run: price lookups are cached per model."""

    def __init__(self) -> None:
        self._repricers: dict[tuple[str, str], Repricer] = {}

    def of(self, provider: str, model: str) -> Repricer:
        key = (provider, model)
        repricer = self._repricers.get(key)
        if repricer is None:
            repricer = self._repricers[key] = Repricer(provider, model)
        return repricer


def usage_of(call: CallRecord) -> CanonicalUsage:
    """The recorded canonical usage of ``call``."""
    return CanonicalUsage(
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cache_read_tokens=call.cache_read_tokens,
        cache_write_tokens=call.cache_write_tokens,
        cache_write_5m_tokens=call.cache_write_5m_tokens,
        cache_write_1h_tokens=call.cache_write_1h_tokens,
        reasoning_tokens=call.reasoning_tokens,
    )


def _mean_usage(calls: list[CallRecord]) -> CanonicalUsage:
    n = len(calls)
    write_5m = list(filter(is_set, map(_CACHE_WRITE_5M, calls)))
    write_1h = list(filter(is_set, map(_CACHE_WRITE_1H, calls)))
    return CanonicalUsage(
        input_tokens=sum(map(INPUT, calls)) // n,
        output_tokens=sum(map(OUTPUT, calls)) // n,
        cache_read_tokens=sum(map(_CACHE_READ, calls)) // n,
        cache_write_tokens=sum(map(_CACHE_WRITE, calls)) // n,
        cache_write_5m_tokens=sum(write_5m) // n if write_5m else None,
        cache_write_1h_tokens=sum(write_1h) // n if write_1h else None,
        reasoning_tokens=sum(map(REASONING, calls)) // n,
    )


def _clusters(calls: Sequence[CallRecord]) -> dict[_ClusterKey, list[CallRecord]]:
    """The successful chat calls with known usage of each (task name, step, provider, model), in time order.

    Calls are grouped by the recorded provider (one tuple per call, no other look-up), then by the
    provider genai-prices resolves it to: recorded providers that resolve alike (rare) are merged
    back in time order.
    """
    by_recorded: dict[tuple[str, str, str | None, str], list[CallRecord]] = defaultdict(list)
    for call in calls:
        if call.status != "ok" or not call.usage_known or not call.model or call.operation in _NON_CHAT_OPERATIONS:
            continue
        by_recorded[(call.task_name, call.step_name, call.provider, call.model)].append(call)
    providers: dict[tuple[str | None, str], str] = {}
    recorded_as: dict[_ClusterKey, list[tuple[str, str, str | None, str]]] = defaultdict(list)
    for recorded in by_recorded:
        task, step, provider, model = recorded
        resolved = providers.get((provider, model))
        if resolved is None:
            resolved = providers[(provider, model)] = resolve_model(provider, model).provider or ""
        recorded_as[(task, step, resolved, model)].append(recorded)
    clusters: dict[_ClusterKey, list[CallRecord]] = {}
    for key, keys in recorded_as.items():
        if len(keys) == 1:
            clusters[key] = by_recorded[keys[0]]
        else:
            members = {id(call) for recorded in keys for call in by_recorded[recorded]}
            clusters[key] = [call for call in calls if id(call) in members]
    return clusters


class CheaperModelRule:
    """Flag expensive models on easy steps, with the cheapest same-provider model worth validating."""

    kind = "cheaper_model"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per eligible easy (task name, step, provider, model) cluster."""
        settings = context.config.cheaper_model
        clusters = _clusters(context.workload.calls)
        prices = _Prices()
        findings = []
        for key in sorted(clusters):
            calls = clusters[key]
            if len(calls) < settings.min_calls:
                continue
            finding = self._evaluate(key, calls, context, prices)
            if finding is not None:
                findings.append(finding)
        return findings

    def _evaluate(
        self, key: _ClusterKey, calls: list[CallRecord], context: RuleContext, prices: _Prices
    ) -> Finding | None:
        settings = context.config.cheaper_model
        task, step, provider, model = key
        table = candidates_for(provider)
        if not table:
            return None
        signals = step_signals(calls, settings)
        if signals is None or signals.long_and_varied or len(signals.met) < 2:
            return None
        # The spend threshold is checked after the signals (both only read the calls, so the order
        # does not change which clusters go on) and before any price is looked up: summing the
        # Decimal costs of the agent loops and drafts that are not easy would cost more than the rule.
        spend = sum(filter(is_set, map(_COST, calls)), ZERO)
        if spend < Decimal(str(settings.min_cost_usd)):
            return None
        mean = _mean_usage(calls)
        when = calls[-1].start_ns
        current = prices.of(provider, model).cost_at_ns(mean, when)
        if current is None or not _above_small_band(current, table, mean, when, prices):
            return None
        needs = step_needs(calls, signals, settings.max_reasoning_share)
        for candidate_cost, candidate in _ranked_candidates(table, needs, mean, when, prices):
            if candidate.model == model or candidate_cost >= current:
                continue
            finding = self._claim(key, calls, spend, candidate, signals, needs, context, prices)
            if finding is not None:
                return finding
        return None

    def _claim(
        self,
        key: _ClusterKey,
        calls: list[CallRecord],
        spend: Decimal,
        candidate: CandidateModel,
        signals: Signals,
        needs: StepNeeds,
        context: RuleContext,
        prices: _Prices,
    ) -> Finding | None:
        """Re-price every priced call on ``candidate``; claim the savings if it is cheaper overall."""
        settings = context.config.cheaper_model
        spread = Decimal(str(settings.token_spread))
        acceptance = Decimal(str(settings.acceptance_low))
        repricer = prices.of(candidate.provider, candidate.model)
        reprice = repricer.cost_at_ns
        usages: dict[tuple[int | None, ...], CanonicalUsage] = {}  # calls of a step often have the same usage
        rows: list[tuple[CallRecord, Decimal, Decimal]] = []  # (call, current, candidate)
        for call in calls:
            current = call.cost
            if current is None or current <= 0:
                continue
            tokens = _TOKENS(call)
            usage = usages.get(tokens)
            if usage is None:
                usage = usages[tokens] = usage_of(call)
            cost = reprice(usage, call.start_ns)
            if cost is not None:
                rows.append((call, current, cost))
        current_total = sum((current for _, current, _ in rows), ZERO)
        candidate_total = sum((cost for _, _, cost in rows), ZERO)
        if not rows or candidate_total >= current_total:
            return None
        estimate = low = high = residual = ZERO
        fewer, more = _ONE - spread, _ONE + spread
        claimed: list[str] = []
        ledger = context.ledger
        for call, current, cost in rows:
            left = ledger.left(call.span_id)
            if not left:
                continue
            residual += left
            # left x (1 - cost / current), without the division when nothing was claimed before.
            scaled = cost if left == current else left * cost / current
            # Both ends are at most ``left`` already (costs are not negative); only clamp at zero.
            if (at_best := left - scaled * fewer) > 0:
                high += at_best
            if (at_worst := acceptance * (left - scaled * more)) > 0:
                low += at_worst
            granted = ledger.claim(call.span_id, left - scaled)
            estimate += granted
            if granted:
                claimed.append(call.span_id)
        if not estimate:
            return None
        task, step, provider, model = key
        evidence = {
            "calls": len(calls),
            "priced_calls": len(rows),
            "median_output_tokens": signals.median_output,
            "p90_output_tokens": signals.p90_output,
            "distinct_outputs": signals.distinct_outputs,
            "distinct_output_ratio": signals.distinct_ratio,
            "structured_output": signals.structured,
            "reasoning_share": signals.reasoning_share,
            "signals_met": list(signals.met),
            "uses_tools": needs.tools,
            "uses_json_schema": needs.json_schema,
            "max_context_tokens": needs.context_tokens,
            "provider": provider,
            "candidate_model": candidate.model,
            "candidate_provider": candidate.provider,
            "candidate_priced_as": repricer.priced_model,
            "current_cost_usd": str(current_total),
            "candidate_cost_usd": str(candidate_total),
            "residual_cost_usd": str(residual),
            "token_spread": settings.token_spread,
            "acceptance_low": settings.acceptance_low,
            "formula": "per call: left x (1 - candidate_cost / current_cost), same token counts, "
            "priced at the call's timestamp; range: candidate tokens -/+ token_spread, low end x acceptance_low",
        }
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=model,
            current_cost_usd=spend,
            estimated_savings_usd=estimate,
            savings_range_usd=(min(low, estimate), max(high, estimate)),
            confidence="low",
            suggestion=(
                f"Try {candidate.model} for step '{step}' ({len(calls)} calls, {describe(signals)}): "
                "validate on a sample of recorded inputs before switching (savings assume equal answers)"
            ),
            evidence=evidence,
            span_ids=tuple(claimed),
        )


def _above_small_band(
    current: Decimal, table: tuple[CandidateModel, ...], mean: CanonicalUsage, when: int, prices: _Prices
) -> bool:
    """Whether the current model costs more on this usage than every small model of its provider."""
    small = [prices.of(c.provider, c.model).cost_at_ns(mean, when) for c in table if c.tier == "small"]
    known = [cost for cost in small if cost is not None]
    return bool(known) and current > max(known)


def _ranked_candidates(
    table: tuple[CandidateModel, ...], needs: StepNeeds, mean: CanonicalUsage, when: int, prices: _Prices
) -> list[tuple[Decimal, CandidateModel]]:
    """Suitable candidates, cheapest first on the step's mean usage (ties by name, for determinism)."""
    ranked = []
    for candidate in table:
        if not supports(candidate, needs):
            continue
        cost = prices.of(candidate.provider, candidate.model).cost_at_ns(mean, when)
        if cost is not None:
            ranked.append((cost, candidate))
    return sorted(ranked, key=lambda pair: (pair[0], pair[1].model))


RULE = CheaperModelRule()
