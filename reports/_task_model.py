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
    """One task as a tree of steps and model calls (``agentprof show``)."""

    schema_version: Literal[1] = 1
    store: StoreInfo
    task: TaskEntry
    children: list[Annotated[StepView | CallView, Field(discriminator="kind")]]


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


def task_detail(tree: TaskTree, store: StoreInfo) -> TaskDetail:
    """The report form of an analytics :class:`TaskTree`."""
    return TaskDetail(store=store, task=task_entry(tree.task), children=[_node_view(node) for node in tree.children])


def _node_view(node: StepNode | CallNode) -> StepView | CallView:
    if isinstance(node, CallNode):
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
        children=[_node_view(child) for child in node.children],
    )
