"""Bounded analysis of large selections: the rules read the latest calls, money is scaled exactly.

Why: the rules follow calls one by one in Python (prefix sessions, attempt chains, duplicates
within a time window), which takes about a second per 100,000 calls and holds every record in
memory. A store of 10,000,000 calls would take minutes and gigabytes. Above
``[tool.agentprof.rules] max_calls`` the engine therefore analyses the **latest** ``max_calls``
calls of the selection (and the tool steps of the same period), and scales the money:

* one contiguous period, not scattered windows: every loop, retry, duplicate and prompt-cache
  session inside it is complete, and the period ends where the selection ends, so the only cut
  is at its start, where the first calls cannot see what came before (their repeats look like
  first sends: estimates err low, never high). Scattered windows were tried: each of their edges
  turned shared prefixes into false TTL expiries and end-of-window cache writes into false waste;
* the latest calls are also the ones that describe the agent as it is now;
* each finding's money is scaled to the whole selection by its own group's exact totals:
  ``current_cost_usd`` becomes the group's real cost (one SQL aggregate over every call), and the
  savings and their range are multiplied by ``full cost / analysed cost`` of that group (task
  name, step, model), capped at the group's cost. The evidence says what was analysed and by how
  much it was scaled. A step that only existed before the period gets no finding.

The period is found with one top-N query, so the same store always gives the same findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agentprof.analytics import CallGroup, Filters
from agentprof.analytics._groups import EXACT_DIGITS
from agentprof.analytics._sql import call_conditions
from agentprof.store.schema import model_calls

from ._base import ZERO, CallRecord, Finding

_GroupKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    """The part of a large selection the rules analyse: what started at or after ``start_ns``.

    Attributes:
        start_ns: Start time of the ``max_calls``-th latest call of the selection.
        selection_calls: Model calls in the whole selection.
        max_calls: The bound that made sampling necessary.
    """

    start_ns: int
    selection_calls: int
    max_calls: int


def plan_sample(conn: Connection, filters: Filters, max_calls: int) -> Sample | None:
    """The period holding the latest ``max_calls`` calls; ``None`` when all of them fit (or ``max_calls`` is 0)."""
    conditions = call_conditions(filters)
    count = conn.execute(sa.select(sa.func.count()).select_from(model_calls).where(*conditions)).scalar_one()
    if not max_calls or count <= max_calls:
        return None
    start_ns = conn.execute(
        sa.select(model_calls.c.start_time_ns)
        .where(*conditions)
        .order_by(model_calls.c.start_time_ns.desc())
        .limit(1)
        .offset(max_calls - 1)
    ).scalar_one()
    return Sample(start_ns=int(start_ns), selection_calls=count, max_calls=max_calls)


def window_condition(column: ColumnElement[int] | sa.Column[int], sample: Sample) -> ColumnElement[bool]:
    """``column`` (a start time) falls inside the sampled period."""
    return column >= sample.start_ns


@dataclass(frozen=True, slots=True)
class _Totals:
    cost: Decimal
    calls: int


def group_totals(groups: Iterable[CallGroup]) -> dict[_GroupKey, _Totals]:
    """Exact cost (priced calls) and call count per (task name, step, model) over the whole selection.

    From :func:`~agentprof.analytics.call_groups` of the selection, which the report reads once
    for its tables too (a group's providers are added together: findings name a model only).
    """
    costs: dict[_GroupKey, Decimal] = {}
    counts: dict[_GroupKey, int] = {}
    with localcontext(prec=EXACT_DIGITS):
        for row in groups:
            key = (row.task, row.step, row.model or "")
            costs[key] = costs.get(key, ZERO) + (row.totals.cost_usd or ZERO)
            counts[key] = counts.get(key, 0) + row.totals.model_calls
    return {key: _Totals(costs[key], counts[key]) for key in costs}


def _sample_totals(calls: Iterable[CallRecord]) -> dict[_GroupKey, _Totals]:
    costs: dict[_GroupKey, Decimal] = {}
    counts: dict[_GroupKey, int] = {}
    for call in calls:
        key = (call.task_name, call.step_name, call.model or "")
        costs[key] = costs.get(key, ZERO) + (call.cost or ZERO)
        counts[key] = counts.get(key, 0) + 1
    return {key: _Totals(costs[key], counts[key]) for key in costs}


def _matching(totals: dict[_GroupKey, _Totals], finding: Finding) -> _Totals | None:
    """The totals of the calls a finding is about (``task`` ``"*"`` and no model match any)."""
    cost, calls, found = ZERO, 0, False
    for (task, step, model), value in totals.items():
        if step != finding.step or (finding.task != "*" and task != finding.task):
            continue
        if finding.model is not None and model != finding.model:
            continue
        cost, calls, found = cost + value.cost, calls + value.calls, True
    return _Totals(cost, calls) if found else None


def scale_findings(
    findings: Sequence[Finding],
    sample: Sample,
    sampled_calls: Sequence[CallRecord],
    full: dict[_GroupKey, _Totals],
) -> list[Finding]:
    """Scale each finding's money from the sample to the whole selection (see the module docstring)."""
    sampled = _sample_totals(sampled_calls)
    overall = Decimal(sample.selection_calls) / Decimal(max(len(sampled_calls), 1))
    scaled = []
    for finding in findings:
        whole, part = _matching(full, finding), _matching(sampled, finding)
        if whole is not None and part is not None and part.cost > 0:
            factor = whole.cost / part.cost
        elif whole is not None and part is not None and part.calls:
            factor = Decimal(whole.calls) / Decimal(part.calls)
        else:
            factor = overall
        current = whole.cost if whole is not None and whole.cost > 0 else finding.current_cost_usd * factor
        cap = max(current, ZERO)
        low, high = finding.savings_range_usd
        evidence = dict(finding.evidence)
        evidence["sample"] = {
            "calls_analysed": len(sampled_calls),
            "calls_in_selection": sample.selection_calls,
            "since_ns": sample.start_ns,
            "scale": float(round(factor, 4)),
            "group_calls_analysed": part.calls if part else 0,
            "group_calls": whole.calls if whole else None,
            "note": "money scaled from the latest calls to the selection; counts are the analysed calls'",
        }
        scaled.append(
            replace(
                finding,
                current_cost_usd=current,
                estimated_savings_usd=min(finding.estimated_savings_usd * factor, cap),
                savings_range_usd=(min(low * factor, cap), min(high * factor, cap)),
                evidence=evidence,
            )
        )
    return sorted(scaled, key=lambda finding: finding.rank_key)
