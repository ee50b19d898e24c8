"""Reports over the store: the report model, its builder and renderers (text, Markdown, JSON).

``build_report(conn, filters)`` runs the analytics queries; the renderers only present the
result. Recommendation rules live in ``agentprof.reports.rules`` and fill
``Report.recommendations``.
"""

from __future__ import annotations

from ._build import build_report, store_info
from ._json import render_json
from ._markdown import render_markdown
from ._model import (
    CostPerTask,
    Latency,
    ModelEntry,
    Projection,
    Recommendation,
    RecommendationBasis,
    Report,
    ReportFilters,
    SavingsRange,
    StepEntry,
    StoreInfo,
    SummarySection,
)
from ._task_model import CallView, StepView, TaskDetail, TaskEntry, TaskList, task_detail, task_entry
from ._task_text import render_task_detail, render_task_list
from ._text import render_text

__all__ = [
    "CallView",
    "CostPerTask",
    "Latency",
    "ModelEntry",
    "Projection",
    "Recommendation",
    "RecommendationBasis",
    "Report",
    "ReportFilters",
    "SavingsRange",
    "StepEntry",
    "StepView",
    "StoreInfo",
    "SummarySection",
    "TaskDetail",
    "TaskEntry",
    "TaskList",
    "build_report",
    "render_json",
    "render_markdown",
    "render_task_detail",
    "render_task_list",
    "render_text",
    "store_info",
    "task_detail",
    "task_entry",
]
