"""R8 ``redundant_tool``: a tool step called again in the same task with the same arguments and result.

A tool step is a *duplicate* when an earlier successful step of the same task had the same tool
(step name), the same ``args_hash`` and the same ``result_hash``: memoising the tool per task, or
tracking what the agent already knows, would have avoided it.

What it saves, kept deliberately narrow: the *issuing call* of a duplicate is the last model call
of the same task that started before the tool step (the call whose answer asked for the tool).
Its output is what a memoised agent would not have generated, so per issuing call::

    saving = output_tokens x p_out x duplicates_issued / tool_steps_issued

with ``p_out`` the model's own output price (``_prices.PriceBook``), capped by the ledger.
The re-sent tool result on later iterations and any per-use tool fee are not counted (the
trajectory of a fixed agent is unknown), so the estimate is the range's high end only in that
narrow sense. Confidence ``medium`` (removing the duplicate changes the trajectory); when the
issuing calls cannot be priced the finding is still reported, with its counts, $0 and ``low``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext, ToolRecord
from ._prices import PriceBook, UnitPrices

_HALF = Decimal("0.5")
_START_NS = attrgetter("start_ns")
_TASK_ID = attrgetter("task_id")


@dataclass(slots=True)
class _ToolGroup:
    tool_steps: int = 0
    duplicates: list[ToolRecord] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)
    issuers: dict[str, list[ToolRecord]] = field(default_factory=dict)  # issuing call -> its duplicates


class RedundantToolRule:
    """Flag tools re-run with the same arguments and result in one task."""

    kind = "redundant_tool"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, tool) with at least ``min_repeats`` duplicates."""
        tools = context.workload.tools
        if not tools:
            return []
        # The calls of each task in time order, to find the call that issued a tool step: the last one
        # of its task that started before it. Grouped by C-level passes, no Python statement per call.
        calls = context.workload.calls
        by_task: dict[str | None, list[CallRecord]] = defaultdict(list)
        deque(map(list.append, map(by_task.__getitem__, map(_TASK_ID, calls)), calls), maxlen=0)
        issuers: dict[str, CallRecord] = {}
        issued: dict[str, int] = defaultdict(int)  # issuing call -> tool steps it issued
        seen: dict[tuple[str, str, str], str | None] = {}  # (task, tool, args) -> last successful result
        groups: dict[tuple[str, str], _ToolGroup] = defaultdict(_ToolGroup)
        for tool in tools:
            task_id = tool.task_id
            if task_id is None:
                continue
            group = groups[(tool.task_name, tool.step_name)]
            group.tool_steps += 1
            issuer = None
            task_calls = by_task.get(task_id)
            if task_calls:
                index = bisect.bisect_left(task_calls, tool.start_ns, key=_START_NS) - 1
                if index >= 0:
                    issuer = task_calls[index]
                    issuers[issuer.span_id] = issuer
                    issued[issuer.span_id] += 1
            args_hash, result_hash = tool.args_hash, tool.result_hash
            if args_hash is None or result_hash is None or tool.status == "error":
                continue
            key = (task_id, tool.step_name, args_hash)
            if seen.get(key) == result_hash:
                group.duplicates.append(tool)
                group.tasks.add(task_id)
                if issuer is not None:
                    group.issuers.setdefault(issuer.span_id, []).append(tool)
            seen[key] = result_hash
        prices = PriceBook()
        findings = []
        min_repeats = context.config.redundant_tool.min_repeats
        for where in sorted(groups):
            group = groups[where]
            if group.duplicates and len(group.duplicates) >= min_repeats:
                findings.append(self._finding(where, group, issuers, issued, prices, context))
        return findings

    def _finding(
        self,
        key: tuple[str, str],
        group: _ToolGroup,
        calls: dict[str, CallRecord],
        issued: dict[str, int],
        prices: PriceBook,
        context: RuleContext,
    ) -> Finding:
        task, tool = key
        saved = current = ZERO
        output_tokens = 0
        unpriced = 0
        claimed: list[str] = []
        # output_tokens x p_out x share, computed once per distinct (tokens, prices, share): an agent's
        # issuing calls often answer with the same number of tokens.
        amounts: dict[tuple[int, UnitPrices, int, int], Decimal] = {}
        ledger = context.ledger
        for span_id in sorted(group.issuers):
            call = calls[span_id]
            current += call.cost or ZERO
            duplicates = len(group.issuers[span_id])
            issued_here = max(issued[span_id], duplicates)
            unit = prices.get(call) if call.cost is not None else None
            if unit is None:
                unpriced += 1
                continue
            tokens = call.output_tokens
            output_tokens += tokens
            amount = amounts.get((tokens, unit, duplicates, issued_here))
            if amount is None:
                share = Decimal(duplicates) / Decimal(issued_here)
                amount = amounts[(tokens, unit, duplicates, issued_here)] = tokens * unit.output * share
            granted = ledger.claim(span_id, amount)
            saved += granted
            if granted:
                claimed.append(span_id)
        models = sorted({calls[span_id].model or "" for span_id in group.issuers})
        confidence: Confidence = "medium" if saved > 0 else "low"
        duplicates = len(group.duplicates)
        evidence = {
            "tool_steps": group.tool_steps,
            "duplicates": duplicates,
            "duplicate_rate": round(duplicates / group.tool_steps, 4),
            "tasks_with_duplicates": len(group.tasks),
            "issuing_calls": len(group.issuers),
            "unpriced_issuing_calls": unpriced,
            "issuing_output_tokens": output_tokens,
            "formula": "sum over issuing calls of output_tokens x p_out x duplicates issued / tool steps issued",
        }
        suggestion = (
            f"Memoise tool '{tool}' per task (or track what the agent already fetched): {duplicates} of "
            f"{group.tool_steps} calls repeated the same arguments and got the same result"
        )
        return Finding(
            kind=self.kind,
            task=task,
            step=tool,
            model=models[0] or None if len(models) == 1 else None,
            current_cost_usd=current,
            estimated_savings_usd=saved,
            savings_range_usd=(saved * _HALF, saved),
            confidence=confidence,
            suggestion=suggestion,
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = RedundantToolRule()
