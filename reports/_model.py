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

    Recommendations are listed most valuable first: estimated savings x confidence weight (high 1.0,
    medium 0.6, low 0.25). Savings of overlapping rules are never counted twice (each rule saves
    only what the rules before it left of each call's cost), so they can be added up.

    Attributes:
        kind: The rule that found it (``"exact_cache"``, ``"prompt_cache"``, ``"cheaper_model"`` ...).
        task: Task it applies to (``"*"`` when it spans tasks), ``None`` for all.
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


class RecommendationBasis(_Frozen):
    """What the rules analysed when the selection was larger than ``[tool.agentprof.rules] max_calls``.

    Attributes:
        calls_analysed: Model calls the rules read: the selection's latest, from :attr:`since`.
        calls_in_selection: Model calls in the whole selection.
        since: Start of the analysed period (UTC).
        max_calls: The bound (0 would analyse everything).
    """

    calls_analysed: int
    calls_in_selection: int
    since: datetime
    max_calls: int


class Projection(_Frozen):
    """Monthly cost at a given volume, now and after the high- and medium-confidence recommendations.

    Attributes:
        tasks_per_day: The volume asked for (``agentprof report --tasks-per-day N``).
        monthly_cost_usd: Mean cost per task x tasks per day x 30; ``None`` without a known task cost.
        monthly_cost_after_usd: The same, less :attr:`monthly_savings_usd`.
        monthly_savings_usd: The high- and medium-confidence savings per task (their sum over the
            selection's tracked tasks divided by its number of tasks) x tasks per day x 30.
    """

    tasks_per_day: int
    monthly_cost_usd: Money | None
    monthly_cost_after_usd: Money | None
    monthly_savings_usd: Money | None


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
    #: ``None`` when the rules read every call of the selection; else what they sampled.
    recommendations_basis: RecommendationBasis | None = None
    projection: Projection | None = None
