"""Analytics over the store: SQLAlchemy Core queries that both DuckDB and PostgreSQL run.

Every function takes an open SQLAlchemy ``Connection`` and a :class:`Filters` selection and
returns frozen dataclasses with money as exact ``Decimal`` (``None`` where a cost is unknown
because calls are unpriced: unpriced never means $0).
"""

from __future__ import annotations

from agentprof.analytics._breakdowns import ModelRow, StepRow, models, steps
from agentprof.analytics._groups import CallGroup, CallTotals, call_groups
from agentprof.analytics._sql import Filters
from agentprof.analytics._summary import (
    CostStats,
    LatencyStats,
    SelectionSize,
    Summary,
    selection_size,
    summary,
    task_names,
)
from agentprof.analytics._tasks import TaskRow, tasks_list
from agentprof.analytics._tree import CallNode, StepNode, TaskLookupError, TaskTree, resolve_task_id, task_tree

__all__ = [
    "CallGroup",
    "CallNode",
    "CallTotals",
    "CostStats",
    "Filters",
    "LatencyStats",
    "ModelRow",
    "SelectionSize",
    "StepNode",
    "StepRow",
    "Summary",
    "TaskLookupError",
    "TaskRow",
    "TaskTree",
    "call_groups",
    "models",
    "resolve_task_id",
    "selection_size",
    "steps",
    "summary",
    "task_names",
    "task_tree",
    "tasks_list",
]
