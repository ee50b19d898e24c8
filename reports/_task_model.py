"""Report models of single tasks: the ``agentprof tasks`` list and the ``agentprof show`` tree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field

from agentprof.analytics import CallNode, StepNode, TaskRow, TaskTree

from ._model import Money, ReportFilters, StoreInfo, _Frozen


class TaskEntry(_Frozen):
    """One task and the totals of its calls; ``status`` is ``"failed"`` when it did not succeed."""

    task_id: str
    name: str
    started_at: datetime
    duration_ms: float
    status: Literal["ok", "failed"]
    error_type: str | None
    model_calls: int
    unpriced_calls: int
    cost_usd: Money | None
    input_tokens: int
    output_tokens: int


class TaskList(_Frozen):
    """Recent tasks, newest first."""

    schema_version: Literal[1] = 1
    store: StoreInfo
    filters: ReportFilters
    tasks: list[TaskEntry]


class CallView(_Frozen):
    """A model call in the tree; ``cost_usd`` is ``None`` when unpriced."""

    kind: Literal["model_call"] = "model_call"
    span_id: str
    provider: str | None
    model: str | None
    status: str
    error_type: str | None
    duration_ms: float
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    priced: bool
    cost_usd: Money | None


class StepView(_Frozen):
    """A step with everything under it; cost and call counts include nested steps."""

    kind: Literal["step"] = "step"
    span_id: str
    name: str
    step_kind: str | None
    status: str
    error_type: str | None
    duration_ms: float
    model_calls: int
    unpriced_calls: int
    cost_usd: Money | None
    children: list[Annotated[StepView | CallView, Field(discriminator="kind")]]


class TaskDetail(_Frozen):
    """One task as a tree of steps and model calls (``agentprof show``).

    ``flat_below_depth`` is set when steps nest deeper than that (at most :data:`MAX_DEPTH`): the
    steps at that depth then hold everything below them as a flat list (each deeper step followed
    by its calls).
    """

    schema_version: Literal[1] = 1
    store: StoreInfo
    task: TaskEntry
    children: list[Annotated[StepView | CallView, Field(discriminator="kind")]]
    flat_below_depth: int | None = None


#: Nesting kept as a tree. Deeper levels (a recursive agent, a runaway recursion) are listed flat:
#: rendering and JSON serialisation nest once per level, and pydantic stops serialising at a few
#: hundred levels (``show --format json`` failed at 300 nested steps; the text tree at 1,500).
MAX_DEPTH = 64


def task_entry(row: TaskRow) -> TaskEntry:
    """The report form of an analytics :class:`TaskRow`."""
    return TaskEntry(
        task_id=row.task_id,
        name=row.name,
        started_at=row.start_time.replace(tzinfo=UTC) if row.start_time.tzinfo is None else row.start_time,
        duration_ms=row.duration_ms,
        status="ok" if row.success else "failed",
        error_type=row.error_type,
        model_calls=row.model_calls,
        unpriced_calls=row.unpriced_calls,
        cost_usd=row.cost_usd,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
    )


def task_detail(tree: TaskTree, store: StoreInfo, max_depth: int = MAX_DEPTH) -> TaskDetail:
    """The report form of an analytics :class:`TaskTree`, flat below ``max_depth`` (at most :data:`MAX_DEPTH`).

    A terminal passes less: each level indents a tree by four columns.
    """
    max_depth = max(1, min(max_depth, MAX_DEPTH))
    children = [_node_view(node, 1, max_depth) for node in tree.children]
    deep = any(_depth_exceeds(node, max_depth) for node in tree.children)
    return TaskDetail(
        store=store, task=task_entry(tree.task), children=children, flat_below_depth=max_depth if deep else None
    )


def _depth_exceeds(root: StepNode | CallNode, depth: int) -> bool:
    """Whether steps nest more than ``depth`` levels under (and including) ``root``."""
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, StepNode):
            if level > depth:
                return True
            stack.extend((child, level + 1) for child in node.children)
    return False


def _flat(node: StepNode) -> list[StepView | CallView]:
    """Everything below ``node`` in order, each step without children, followed by what it held."""
    flat: list[StepView | CallView] = []
    stack: list[StepNode | CallNode] = list(reversed(node.children))
    while stack:
        child = stack.pop()
        if isinstance(child, CallNode):
            flat.append(_call_view(child))
        else:
            flat.append(_step_view(child, []))
            stack.extend(reversed(child.children))
    return flat


def _node_view(node: StepNode | CallNode, depth: int, max_depth: int) -> StepView | CallView:
    if isinstance(node, CallNode):
        return _call_view(node)
    if depth >= max_depth:
        return _step_view(node, _flat(node))
    return _step_view(node, [_node_view(child, depth + 1, max_depth) for child in node.children])


def _call_view(node: CallNode) -> CallView:
    return CallView(
        span_id=node.span_id,
        provider=node.provider,
        model=node.model,
        status=node.status,
        error_type=node.error_type,
        duration_ms=node.duration_ms,
        input_tokens=node.input_tokens,
        output_tokens=node.output_tokens,
        cache_read_tokens=node.cache_read_tokens,
        cache_write_tokens=node.cache_write_tokens,
        priced=node.priced,
        cost_usd=node.cost_usd,
    )


def _step_view(node: StepNode, children: list[StepView | CallView]) -> StepView:
    return StepView(
        span_id=node.span_id,
        name=node.name,
        step_kind=node.step_kind,
        status=node.status,
        error_type=node.error_type,
        duration_ms=node.duration_ms,
        model_calls=node.model_calls,
        unpriced_calls=node.unpriced_calls,
        cost_usd=node.cost_usd,
        children=children,
    )
