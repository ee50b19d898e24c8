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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext, ToolRecord
from ._prices import PriceBook

_HALF = Decimal("0.5")


@dataclass(slots=True)
class _ToolGroup:
    tool_steps: int = 0
    duplicates: list[ToolRecord] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)
    issuers: dict[str, list[ToolRecord]] = field(default_factory=dict)  # issuing call -> its duplicates


class _TaskCalls:
    """The model calls of each task by start time, to find the call that issued a tool step."""

    def __init__(self, calls: Sequence[CallRecord]) -> None:
        by_task: dict[str, list[CallRecord]] = defaultdict(list)
        for call in calls:
            if call.task_id is not None:
                by_task[call.task_id].append(call)
        self._calls = dict(by_task)
        self._starts = {task: [call.start_ns for call in items] for task, items in by_task.items()}

    def issuer(self, tool: ToolRecord) -> CallRecord | None:
        """The last call of the tool's task that started before it, if any."""
        if tool.task_id is None or tool.task_id not in self._calls:
            return None
        index = bisect.bisect_left(self._starts[tool.task_id], tool.start_ns) - 1
        return self._calls[tool.task_id][index] if index >= 0 else None


class RedundantToolRule:
    """Flag tools re-run with the same arguments and result in one task."""

    kind = "redundant_tool"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, tool) with at least ``min_repeats`` duplicates."""
        task_calls = _TaskCalls(context.workload.calls)
        issued: dict[str, int] = defaultdict(int)  # issuing call -> tool steps it issued
        seen: dict[tuple[str, str, str], str | None] = {}  # (task, tool, args) -> last successful result
        groups: dict[tuple[str, str], _ToolGroup] = defaultdict(_ToolGroup)
        for tool in context.workload.tools:
            if tool.task_id is None:
                continue
            group = groups[(tool.task_name, tool.step_name)]
            group.tool_steps += 1
            issuer = task_calls.issuer(tool)
            if issuer is not None:
                issued[issuer.span_id] += 1
            if tool.args_hash is None or tool.result_hash is None or tool.status == "error":
                continue
            key = (tool.task_id, tool.step_name, tool.args_hash)
            if seen.get(key) == tool.result_hash:
                group.duplicates.append(tool)
                group.tasks.add(tool.task_id)
                if issuer is not None:
                    group.issuers.setdefault(issuer.span_id, []).append(tool)
            seen[key] = tool.result_hash
        calls = {call.span_id: call for call in context.workload.calls}
        prices = PriceBook()
        findings = []
        for where in sorted(groups):
            group = groups[where]
            if group.duplicates and len(group.duplicates) >= context.config.redundant_tool.min_repeats:
                findings.append(self._finding(where, group, calls, issued, prices, context))
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
        for span_id in sorted(group.issuers):
            call = calls[span_id]
            current += call.cost or ZERO
            duplicates = len(group.issuers[span_id])
            share = Decimal(duplicates) / Decimal(max(issued[span_id], duplicates))
            unit = prices.get(call) if call.cost is not None else None
            if unit is None:
                unpriced += 1
                continue
            output_tokens += call.output_tokens
            granted = context.ledger.claim(span_id, call.output_tokens * unit.output * share)
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
