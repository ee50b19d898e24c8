"""Build a :class:`Report` from the store through the analytics layer and the recommendation rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.engine import Connection

from agentprof.analytics import Filters

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
from ._tables import tables_beside
from .rules._base import Finding
from .rules._config import RulesConfig
from .rules._engine import Analysis, analyse

DAYS_PER_MONTH = 30
UNTRACKED = "(untracked)"


def build_report(
    conn: Connection,
    filters: Filters | None = None,
    *,
    store: StoreInfo | None = None,
    generated_at: datetime | None = None,
    rules_config: RulesConfig | None = None,
    tasks_per_day: int | None = None,
    beside: Connection | None = None,
) -> Report:
    """Run the report's queries and recommendation rules on ``conn`` and assemble the result.

    Args:
        conn: An open connection to the store.
        filters: The selection; default everything.
        store: How to name the store in the report; default the connection's URL without password.
        generated_at: The report's timestamp; default now (fix it in tests).
        rules_config: Rule thresholds; default ``[tool.agentprof.rules]`` of the project
            (:meth:`RulesConfig.load`).
        tasks_per_day: Adds a monthly cost projection at this volume (see :class:`Projection`).
        beside: A second connection that sees the same data as ``conn``
            (:func:`agentprof.store.second_reader`): the tables are read on it while the rules run
            on ``conn`` (:mod:`._tables` says why). Default: everything is read on ``conn``.

    Raises:
        ConfigError: ``[tool.agentprof.rules]`` is invalid.
    """
    filters = filters or Filters()
    config = rules_config if rules_config is not None else RulesConfig.load()
    with tables_beside(conn, filters, beside) as wait_for_tables:
        analysis = analyse(conn, filters, config, groups=lambda: wait_for_tables().groups)
        tables = wait_for_tables()
    numbers = tables.summary
    findings = analysis.findings
    projection = None
    if tasks_per_day is not None:
        projection = project(findings, numbers.tasks, numbers.cost_per_task_usd.mean, tasks_per_day)
    return Report(
        generated_at=generated_at or datetime.now(UTC),
        store=store or store_info(conn),
        filters=ReportFilters(since=_aware_utc(filters.since), task=filters.task),
        summary=SummarySection(
            tasks=numbers.tasks,
            failed_tasks=numbers.failed_tasks,
            model_calls=numbers.model_calls,
            unpriced_calls=numbers.unpriced_calls,
            total_cost_usd=numbers.total_cost_usd,
            cost_per_task_usd=CostPerTask(
                mean=numbers.cost_per_task_usd.mean,
                p50=numbers.cost_per_task_usd.p50,
                p95=numbers.cost_per_task_usd.p95,
            ),
            cost_per_successful_task_usd=numbers.cost_per_successful_task_usd,
            task_latency_ms=Latency(p50=numbers.task_latency_ms.p50, p95=numbers.task_latency_ms.p95),
        ),
        steps=[
            StepEntry(
                task=row.task,
                step=row.step,
                model_calls=row.model_calls,
                models=list(row.models),
                input_tokens=row.input_tokens,
                cache_read_tokens=row.cache_read_tokens,
                cache_write_tokens=row.cache_write_tokens,
                output_tokens=row.output_tokens,
                cost_usd=row.cost_usd,
                unpriced_calls=row.unpriced_calls,
                share=row.share,
                latency_ms=Latency(p50=row.latency_ms.p50, p95=row.latency_ms.p95),
            )
            for row in tables.steps
        ],
        models=[
            ModelEntry(
                provider=row.provider,
                model=row.model,
                model_calls=row.model_calls,
                input_tokens=row.input_tokens,
                cache_read_tokens=row.cache_read_tokens,
                cache_write_tokens=row.cache_write_tokens,
                output_tokens=row.output_tokens,
                cost_usd=row.cost_usd,
                unpriced_calls=row.unpriced_calls,
                share=row.share,
            )
            for row in tables.models
        ],
        recommendations=[recommendation(finding) for finding in findings],
        recommendations_basis=basis(analysis),
        projection=projection,
    )


def basis(analysis: Analysis) -> RecommendationBasis | None:
    """What the rules read, when it was a sample of the selection (``None``: every call)."""
    sample = analysis.sample
    if sample is None:
        return None
    return RecommendationBasis(
        calls_analysed=analysis.calls_analysed,
        calls_in_selection=sample.selection_calls,
        since=datetime.fromtimestamp(sample.start_ns / 1e9, UTC),
        max_calls=sample.max_calls,
    )


def recommendation(finding: Finding) -> Recommendation:
    """A rule's finding as the report shows it."""
    low, high = finding.savings_range_usd
    return Recommendation(
        kind=finding.kind,
        task=finding.task,
        step=finding.step,
        model=finding.model,
        current_cost_usd=finding.current_cost_usd,
        estimated_savings_usd=finding.estimated_savings_usd,
        savings_range_usd=SavingsRange(low=low, high=high),
        confidence=finding.confidence,
        suggestion=finding.suggestion,
        evidence=dict(finding.evidence),
    )


def project(
    findings: Sequence[Finding], tasks: int, mean_cost_per_task: Decimal | None, tasks_per_day: int
) -> Projection:
    """Monthly cost at ``tasks_per_day``, now and after the high- and medium-confidence findings.

    Low-confidence findings (a cheaper model before validation, compaction) are left out: the
    projection is what can be counted on. Savings on untracked calls are left out too, because the
    mean cost per task does not include those calls.
    """
    volume = Decimal(tasks_per_day * DAYS_PER_MONTH)
    if mean_cost_per_task is None or tasks == 0:
        return Projection(
            tasks_per_day=tasks_per_day, monthly_cost_usd=None, monthly_cost_after_usd=None, monthly_savings_usd=None
        )
    savings = sum(
        (f.estimated_savings_usd for f in findings if f.confidence in ("high", "medium") and f.task != UNTRACKED),
        Decimal(0),
    )
    monthly = mean_cost_per_task * volume
    monthly_savings = min(savings / tasks * volume, monthly)
    return Projection(
        tasks_per_day=tasks_per_day,
        monthly_cost_usd=monthly,
        monthly_cost_after_usd=monthly - monthly_savings,
        monthly_savings_usd=monthly_savings,
    )


def store_info(conn: Connection, location: str | None = None) -> StoreInfo:
    """Describe the store behind ``conn``; the URL is shown without its password."""
    shown = location or conn.engine.url.render_as_string(hide_password=True)
    return StoreInfo(location=shown, dialect=conn.dialect.name)


def _aware_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
