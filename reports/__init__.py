"""Reports over the store: the report model, its builder and renderers (text, Markdown, JSON).

``build_report(conn, filters)`` runs the analytics queries; the renderers only present the
result. Recommendation rules live in ``agentprof.reports.rules`` and fill
``Report.recommendations``.

The names below are imported from their modules when first used (PEP 562), not all at once:
every ``agentprof.reports.<module>`` import runs this file first, and importing everything here
made ``agentprof doctor`` (which needs one helper of ``_cut``) import the report builder, the rules
engine and every renderer too: 155 instead of 111 ms of imports in a new interpreter, and 12-29 ms
more for ``tasks``, ``whatif`` and ``report`` (2026-12-03).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: The module each name of ``__all__`` comes from.
_HOMES = {
    "build_report": "_build",
    "store_info": "_build",
    "render_json": "_json",
    "render_markdown": "_markdown",
    "CostPerTask": "_model",
    "Latency": "_model",
    "ModelEntry": "_model",
    "Projection": "_model",
    "Recommendation": "_model",
    "RecommendationBasis": "_model",
    "Report": "_model",
    "ReportFilters": "_model",
    "SavingsRange": "_model",
    "StepEntry": "_model",
    "StoreInfo": "_model",
    "SummarySection": "_model",
    "CallView": "_task_model",
    "StepView": "_task_model",
    "TaskDetail": "_task_model",
    "TaskEntry": "_task_model",
    "TaskList": "_task_model",
    "task_detail": "_task_model",
    "task_entry": "_task_model",
    "render_task_detail": "_task_text",
    "render_task_list": "_task_text",
    "render_text": "_text",
}


def __getattr__(name: str) -> Any:
    """Import the module ``name`` lives in, the first time ``name`` is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
