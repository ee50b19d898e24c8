"""Build a :class:`Report` from the store through the analytics layer."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from agentprof import analytics
from agentprof.analytics import Filters

from ._model import (
    CostPerTask,
    Latency,
    ModelEntry,
    Report,
    ReportFilters,
    StepEntry,
    StoreInfo,
    SummarySection,
)


def build_report(
    conn: Connection,
    filters: Filters | None = None,
    *,
    store: StoreInfo | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """Run the report's queries on ``conn`` and assemble the result.

    Args:
        conn: An open connection to the store.
        filters: The selection; default everything.
        store: How to name the store in the report; default the connection's URL without password.
        generated_at: The report's timestamp; default now (fix it in tests).
    """
    filters = filters or Filters()
    numbers = analytics.summary(conn, filters)
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
            for row in analytics.steps(conn, filters)
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
            for row in analytics.models(conn, filters)
        ],
    )


def store_info(conn: Connection, location: str | None = None) -> StoreInfo:
    """Describe the store behind ``conn``; the URL is shown without its password."""
    shown = location or conn.engine.url.render_as_string(hide_password=True)
    return StoreInfo(location=shown, dialect=conn.dialect.name)


def _aware_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
