"""One task as a tree: its steps, nested steps and model calls, with cost and latency per node."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agentprof._semconv import KIND_STEP, KIND_TASK
from agentprof.analytics._sql import ExactDecimal, model_name, to_decimal
from agentprof.analytics._tasks import TaskRow, select_tasks
from agentprof.exceptions import AgentprofError
from agentprof.store.schema import model_calls, spans, tasks

_SHOWN_MATCHES = 5


class TaskLookupError(AgentprofError, LookupError):
    """No task, or more than one, matches the id (or id prefix) asked for."""


@dataclass(frozen=True, slots=True)
class CallNode:
    """One model call; ``cost_usd`` is ``None`` when it is unpriced."""

    span_id: str
    provider: str | None
    model: str | None
    start_time_ns: int
    duration_ms: float
    status: str
    error_type: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    priced: bool
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class StepNode:
    """One step (or tool) span and everything under it.

    ``model_calls``, ``unpriced_calls`` and ``cost_usd`` include nested steps; the cost is the sum
    of the priced calls below, 0 without calls, ``None`` when every call below is unpriced.
    """

    span_id: str
    name: str
    step_kind: str | None
    start_time_ns: int
    duration_ms: float
    status: str
    error_type: str | None
    children: tuple[StepNode | CallNode, ...]
    model_calls: int
    unpriced_calls: int
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class TaskTree:
    """A task with its steps and calls in start order (children of the task span)."""

    task: TaskRow
    children: tuple[StepNode | CallNode, ...]


def resolve_task_id(conn: Connection, id_or_prefix: str) -> str:
    """Return the full id of the one task whose id is, or starts with, ``id_or_prefix``.

    Raises:
        TaskLookupError: No task matches, or the prefix is shared by several tasks.
    """
    wanted = id_or_prefix.strip().lower()
    if not wanted:
        raise TaskLookupError("a task id is needed: see `agentprof tasks` for recent ones")
    if conn.execute(sa.select(tasks.c.task_id).where(tasks.c.task_id == wanted)).first() is not None:
        return wanted
    matches = list(
        conn.execute(
            sa.select(tasks.c.task_id)
            .where(tasks.c.task_id.startswith(wanted, autoescape=True))
            .order_by(tasks.c.task_id)
            .limit(_SHOWN_MATCHES + 1)
        ).scalars()
    )
    if not matches:
        raise TaskLookupError(f"no task with id {id_or_prefix!r}: see `agentprof tasks` for recent ones")
    if len(matches) > 1:
        shown = ", ".join(matches[:_SHOWN_MATCHES]) + (", ..." if len(matches) > _SHOWN_MATCHES else "")
        raise TaskLookupError(f"task id {id_or_prefix!r} is ambiguous: it starts {shown}; give more characters")
    return str(matches[0])


def task_tree(conn: Connection, task_id: str) -> TaskTree:
    """Load one task (by id or unique id prefix) as a tree of steps and model calls.

    A node's parent is its nearest ancestor span that is a step; spans of other kinds (or
    ancestors the store does not have) are skipped, so a call whose parents are unknown hangs
    directly under the task.

    Raises:
        TaskLookupError: No task matches, or the prefix is ambiguous.
    """
    full_id = resolve_task_id(conn, task_id)
    (task,) = select_tasks(conn, [tasks.c.task_id == full_id], limit=1)

    parent_of: dict[str, str | None] = {}
    step_rows: dict[str, Any] = {}
    for row in conn.execute(
        sa.select(
            spans.c.span_id,
            spans.c.parent_span_id,
            spans.c.kind,
            spans.c.name,
            spans.c.step_name,
            spans.c.step_kind,
            spans.c.start_time_ns,
            spans.c.duration_ms,
            spans.c.status,
            spans.c.error_type,
        ).where(spans.c.task_id == full_id)
    ):
        if row.kind == KIND_TASK:
            continue
        parent_of[row.span_id] = row.parent_span_id
        if row.kind == KIND_STEP:
            step_rows[row.span_id] = row

    def step_parent(parent_span_id: str | None) -> str | None:
        seen: set[str] = set()
        while parent_span_id is not None and parent_span_id not in step_rows and parent_span_id not in seen:
            seen.add(parent_span_id)
            parent_span_id = parent_of.get(parent_span_id)
        return parent_span_id if parent_span_id in step_rows else None

    children: dict[str | None, list[CallNode | str]] = defaultdict(list)
    for span_id, row in step_rows.items():
        children[step_parent(row.parent_span_id)].append(span_id)
    for call in conn.execute(
        sa.select(
            model_calls.c.span_id,
            model_calls.c.parent_span_id,
            model_calls.c.provider,
            model_name().label("model"),
            model_calls.c.start_time_ns,
            model_calls.c.duration_ms,
            model_calls.c.status,
            model_calls.c.error_type,
            model_calls.c.input_tokens,
            model_calls.c.output_tokens,
            model_calls.c.cache_read_tokens,
            model_calls.c.cache_write_tokens,
            model_calls.c.priced,
            sa.type_coerce(model_calls.c.cost_usd, ExactDecimal()).label("cost_usd"),
        ).where(model_calls.c.task_id == full_id)
    ):
        children[step_parent(call.parent_span_id)].append(
            CallNode(
                span_id=call.span_id,
                provider=call.provider,
                model=call.model,
                start_time_ns=call.start_time_ns,
                duration_ms=float(call.duration_ms),
                status=call.status,
                error_type=call.error_type,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cache_read_tokens=call.cache_read_tokens,
                cache_write_tokens=call.cache_write_tokens,
                priced=bool(call.priced),
                cost_usd=to_decimal(call.cost_usd) if call.priced else None,
            )
        )

    # Steps reachable from the task, parents before children (each step has one parent, so this
    # is a tree); built in the reverse order, children first. A loop instead of recursion: a
    # recursive agent can nest steps deeper than Python's recursion limit.
    reachable: list[str] = []
    seen: set[str] = set()
    stack = [child for child in children.get(None, []) if isinstance(child, str)]
    while stack:
        span_id = stack.pop()
        if span_id not in seen:
            seen.add(span_id)
            reachable.append(span_id)
            stack.extend(child for child in children.get(span_id, []) if isinstance(child, str))
    built: dict[str, StepNode] = {}

    def nodes_under(parent: str | None) -> tuple[StepNode | CallNode, ...]:
        nodes = [
            child if isinstance(child, CallNode) else built[child]
            for child in children.get(parent, [])
            if isinstance(child, CallNode) or child in built  # a step that is its own ancestor is left out
        ]
        return tuple(sorted(nodes, key=lambda node: (node.start_time_ns, node.span_id)))

    for span_id in reversed(reachable):
        row = step_rows[span_id]
        below = nodes_under(span_id)
        calls, unpriced, cost = _totals(below)
        built[span_id] = StepNode(
            span_id=span_id,
            name=str(row.step_name or row.name),
            step_kind=row.step_kind,
            start_time_ns=int(row.start_time_ns),
            duration_ms=float(row.duration_ms),
            status=str(row.status),
            error_type=row.error_type,
            children=below,
            model_calls=calls,
            unpriced_calls=unpriced,
            cost_usd=cost,
        )

    return TaskTree(task=task, children=nodes_under(None))


def _totals(nodes: tuple[StepNode | CallNode, ...]) -> tuple[int, int, Decimal | None]:
    """Calls, unpriced calls and cost of a list of sibling nodes (cost ``None`` if all unpriced)."""
    calls = unpriced = 0
    cost = Decimal(0)
    for node in nodes:
        if isinstance(node, CallNode):
            calls += 1
            unpriced += not node.priced
            cost += node.cost_usd or 0
        else:
            calls += node.model_calls
            unpriced += node.unpriced_calls
            cost += node.cost_usd or 0
    return calls, unpriced, None if calls and unpriced == calls else cost
