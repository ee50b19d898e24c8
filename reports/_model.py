"""The report as data: the pydantic models behind ``agentprof report --format json``.

Money is held as ``Decimal`` and written to JSON as a number (the only place it becomes a
float). ``schema_version`` changes only when a key is removed or changes meaning; adding keys
keeps it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""US dollars: exact in Python, a JSON number on the wire."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CostPerTask(_Frozen):
    """Distribution of per-task cost; ``None`` where no task has a known cost."""

    mean: Money | None
    p50: Money | None
    p95: Money | None


class Latency(_Frozen):
    """Percentiles of a duration, in milliseconds."""

    p50: float | None
    p95: float | None


class SummarySection(_Frozen):
    """Headline numbers; see :func:`agentprof.analytics.summary` for the definitions."""

    tasks: int
    failed_tasks: int
    model_calls: int
    unpriced_calls: int
    total_cost_usd: Money | None
    cost_per_task_usd: CostPerTask
    cost_per_successful_task_usd: Money | None
    task_latency_ms: Latency


class StepEntry(_Frozen):
    """Cost and tokens of one (task, step)."""

    task: str
    step: str
    model_calls: int
    models: list[str]
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: Money | None
    unpriced_calls: int
    share: float | None
    latency_ms: Latency


class ModelEntry(_Frozen):
    """Cost and tokens of one provider's model."""

    provider: str | None
    model: str | None
    model_calls: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    cost_usd: Money | None
    unpriced_calls: int
    share: float | None


class SavingsRange(_Frozen):
    """Low and high estimate of a saving, in dollars over the selection."""

    low: Money
    high: Money


class Recommendation(_Frozen):
    """One finding of a rule in ``agentprof.reports.rules``: what to change and what it would save.

    Attributes:
        kind: The rule that found it (e.g. ``"prompt_caching"``, ``"model_routing"``).
        task: Task it applies to, ``None`` for all.
        step: Step it applies to, ``None`` for the whole task.
        model: Model it applies to, ``None`` for any.
        current_cost_usd: What the affected calls cost now.
        estimated_savings_usd: Central estimate of the saving.
        savings_range_usd: Low and high estimate of the saving.
        confidence: How sure the rule is.
        suggestion: One sentence saying what to change.
        evidence: The measurements the finding rests on (JSON values).
    """

    kind: str
    task: str | None = None
    step: str | None = None
    model: str | None = None
    current_cost_usd: Money | None = None
    estimated_savings_usd: Money | None = None
    savings_range_usd: SavingsRange | None = None
    confidence: Literal["low", "medium", "high"]
    suggestion: str
    evidence: dict[str, Any] = {}


class StoreInfo(_Frozen):
    """Which store the report read (never a password: ``location`` is the display form)."""

    location: str
    dialect: str


class ReportFilters(_Frozen):
    """The selection the report covers (``None``: no restriction)."""

    since: datetime | None = None
    task: str | None = None


class Report(_Frozen):
    """Everything ``agentprof report`` shows, in every format."""

    schema_version: Literal[1] = 1
    generated_at: datetime
    store: StoreInfo
    filters: ReportFilters
    summary: SummarySection
    steps: list[StepEntry]
    models: list[ModelEntry]
    recommendations: list[Recommendation] = []
