"""The computation and rendering behind ``agentprof whatif`` (see :mod:`agentprof.cli._whatif`).

Kept apart from the command so that ``agentprof --help`` does not import pydantic and the
report models.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from agentprof._usage import CanonicalUsage
from agentprof.cli._errors import CliError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Connection

    from agentprof.analytics import Filters
    from agentprof.analytics._step_usage import UsageGroup
    from agentprof.pricing._reprice import Repricer

Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
_ZERO = Decimal(0)
_SHOWN_STEPS = 15


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PerTask(_Model):
    """Mean cost of the step per task, now and on the target model."""

    current_usd: Money
    whatif_usd: Money
    whatif_range_usd: tuple[Money, Money]


class TaskNameRow(_Model):
    """The step's cost within one task name."""

    task: str
    tasks: int
    calls: int
    unpriced_calls: int
    current_cost_usd: Money
    whatif_cost_usd: Money
    whatif_range_usd: tuple[Money, Money]
    mean_current_usd: Money
    mean_whatif_usd: Money


class WhatIf(_Model):
    """The whole answer (see the module docstring for the meaning of each key)."""

    step: str
    task: str | None
    since: datetime | None
    target_provider: str | None
    target_model: str
    priced_as: str | None
    current_models: list[str]
    token_spread: float
    calls: int
    unpriced_calls: int
    tasks: int
    current_cost_usd: Money
    whatif_cost_usd: Money
    whatif_range_usd: tuple[Money, Money]
    difference_usd: Money
    difference_share: float | None
    mean_per_task: PerTask
    by_task_name: list[TaskNameRow]


class _Totals:
    """Running sums of one task name (or of everything)."""

    def __init__(self) -> None:
        self.calls = 0
        self.unpriced = 0
        self.current = _ZERO
        self.whatif = _ZERO


def _range(value: Decimal, spread: Decimal) -> tuple[Decimal, Decimal]:
    return value * (1 - spread), value * (1 + spread)


def _mean(total: Decimal, count: int) -> Decimal:
    return total / count if count else _ZERO


def compute_whatif(
    conn: Connection,
    filters: Filters,
    step: str,
    target_model: str,
    provider: str | None,
    spread: float,
) -> WhatIf:
    """Re-price the selected calls of ``step`` on ``target_model``.

    The calls are read summed by task name, price period and usage (:mod:`agentprof.analytics._step_usage`),
    so memory and time follow the step's distinct usages, not its calls; every group is priced
    exactly as each of its calls would be, with the sums kept exact.

    Raises:
        CliError: No call of ``step`` in the selection (naming the known steps), or a target model
            genai-prices cannot price.
    """
    from agentprof.analytics._groups import EXACT_DIGITS
    from agentprof.analytics._step_usage import distinct_tasks, step_models, step_names, usage_groups
    from agentprof.pricing import resolve_model

    models = step_models(conn, filters, step)
    if not models:
        known = step_names(conn, filters)
        shown = ", ".join(known[:_SHOWN_STEPS]) + (", ..." if len(known) > _SHOWN_STEPS else "")
        raise CliError(f"no model calls in a step named {step!r} (known steps: {shown or 'none'})")
    if provider is None:
        providers = {resolve_model(call_provider, model).provider for call_provider, model in models if model}
        provider = providers.pop() if len(providers) == 1 else None
    repricer = _repricer(provider, target_model)
    periods = repricer.price_periods()
    spread_decimal = Decimal(str(spread))
    by_name: dict[str, _Totals] = defaultdict(_Totals)
    overall = _Totals()
    left_out: list[UsageGroup] = []
    with localcontext() as exact:
        exact.prec = EXACT_DIGITS
        for group in usage_groups(conn, filters, step, periods):
            whatif_cost = repricer.cost_at_ns(_usage(group), group.first_start_ns) if group.repriceable else None
            if group.repriceable and whatif_cost is None:
                left_out.append(group)
            for totals in (by_name[group.task], overall):
                if whatif_cost is None or group.cost_usd is None:
                    totals.unpriced += group.calls
                    continue
                totals.calls += group.calls
                totals.current += group.cost_usd
                totals.whatif += whatif_cost * group.calls
    tasks_by_name, tasks = distinct_tasks(conn, filters, step, periods, left_out)
    rows = [
        TaskNameRow(
            task=name,
            tasks=tasks_by_name.get(name, 0),
            calls=totals.calls,
            unpriced_calls=totals.unpriced,
            current_cost_usd=totals.current,
            whatif_cost_usd=totals.whatif,
            whatif_range_usd=_range(totals.whatif, spread_decimal),
            mean_current_usd=_mean(totals.current, tasks_by_name.get(name, 0)),
            mean_whatif_usd=_mean(totals.whatif, tasks_by_name.get(name, 0)),
        )
        for name, totals in sorted(by_name.items())
    ]
    difference = overall.whatif - overall.current
    return WhatIf(
        step=step,
        task=filters.task,
        since=filters.since,
        target_provider=repricer.priced_provider,
        target_model=target_model,
        priced_as=repricer.priced_model,
        current_models=sorted({model or "(unknown)" for _, model in models}),
        token_spread=spread,
        calls=overall.calls,
        unpriced_calls=overall.unpriced,
        tasks=tasks,
        current_cost_usd=overall.current,
        whatif_cost_usd=overall.whatif,
        whatif_range_usd=_range(overall.whatif, spread_decimal),
        difference_usd=difference,
        difference_share=float(difference / overall.current) if overall.current else None,
        mean_per_task=PerTask(
            current_usd=_mean(overall.current, tasks),
            whatif_usd=_mean(overall.whatif, tasks),
            whatif_range_usd=_range(_mean(overall.whatif, tasks), spread_decimal),
        ),
        by_task_name=rows,
    )


def _usage(group: UsageGroup) -> CanonicalUsage:
    """The canonical usage every call of ``group`` recorded (a repriceable group has every count)."""
    return CanonicalUsage(
        input_tokens=group.input_tokens or 0,
        output_tokens=group.output_tokens or 0,
        cache_read_tokens=group.cache_read_tokens or 0,
        cache_write_tokens=group.cache_write_tokens or 0,
        cache_write_5m_tokens=group.cache_write_5m_tokens,
        cache_write_1h_tokens=group.cache_write_1h_tokens,
        reasoning_tokens=group.reasoning_tokens or 0,
    )


def _repricer(provider: str | None, model: str) -> Repricer:
    from agentprof.pricing._reprice import Repricer

    repricer = Repricer(provider, model)
    if not repricer.known:
        where = f" for provider {repricer.ref.provider}" if repricer.ref.provider else ""
        raise CliError(
            f"genai-prices has no price for model {model!r}{where}: check the spelling (e.g. gpt-4.1-nano, "
            "claude-haiku-4-5) or pass --provider"
        )
    return repricer


def render_whatif(answer: WhatIf, console: Console) -> None:
    """Print the comparison: a headline, one row per task name, and the difference."""
    from rich import box
    from rich.table import Table

    from agentprof.reports._format import count, money, unpriced_note  # type: ignore[import-not-found]

    target = answer.target_model + (f" ({answer.target_provider})" if answer.target_provider else "")
    console.print(f"What if step '{answer.step}' ran on {target} instead of {', '.join(answer.current_models)}?")
    spread = f"{answer.token_spread:.0%}"
    console.print(
        f"{count(answer.calls, 'priced call')} in {count(answer.tasks, 'task')} re-priced with the same token counts; "
        f"range +/-{spread} for tokenizer differences."
    )
    if answer.unpriced_calls:
        console.print(f"Not included: {unpriced_note(answer.unpriced_calls)}.")
    rows: list[tuple[str, ...]] = []
    for row in answer.by_task_name:
        rows.append((
            row.task,
            f"{row.tasks:,}",
            f"{row.calls:,}",
            money(row.mean_current_usd),
            money(row.mean_whatif_usd),
            money(row.current_cost_usd),
            money(row.whatif_cost_usd),
        ))  # fmt: skip
    if len(answer.by_task_name) > 1:
        rows.append((
            "all",
            f"{answer.tasks:,}",
            f"{answer.calls:,}",
            money(answer.mean_per_task.current_usd),
            money(answer.mean_per_task.whatif_usd),
            money(answer.current_cost_usd),
            money(answer.whatif_cost_usd),
        ))  # fmt: skip
    table = Table(box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    table.add_column("Task", overflow="fold", min_width=min(max((len(row[0]) for row in rows), default=4), 16))
    headers = ("Tasks", "Calls", "Now / task", "What-if / task", "Now total", "What-if total")
    for position, header in enumerate(headers, start=1):
        # Numbers are never cut (a truncated amount reads as another amount): the task name folds.
        widest = max((len(row[position]) for row in rows), default=0)
        table.add_column(header, justify="right", min_width=widest)
    for cells in rows:
        table.add_row(*cells)
    console.print(table)
    share = f" ({answer.difference_share:+.1%})" if answer.difference_share is not None else ""
    per_task = answer.mean_per_task.whatif_usd - answer.mean_per_task.current_usd
    low, high = answer.whatif_range_usd
    console.print(
        f"Difference: {_signed(money(answer.difference_usd))}{share} in total, {_signed(money(per_task))} per task; "
        f"what-if total {money(low)}-{money(high)} with tokenizer differences."
    )
    console.print("Same answers assumed: validate on a sample of recorded inputs before switching.")


def _signed(text: str) -> str:
    return text if text.startswith("-") else f"+{text}"
