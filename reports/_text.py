"""The terminal report: a summary block, steps by cost, models, then recommendations (rich)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from . import _format as fmt
from ._model import Projection, Recommendation, Report

WIDE = 110
"""Console width from which the Steps table shows every column."""
_UNBOUNDED = 10_000


def render_text(report: Report, console: Console) -> None:
    """Print ``report`` to ``console``: what it cost, where, and on which models."""
    console.print(
        Text.assemble(("agentprof report", "bold"), f"  {report.store.location}  ({fmt.selection(report.filters)})")
    )
    console.print(summary_table(report))
    if report.summary.unpriced_calls:
        console.print(Text(fmt.unpriced_note(report.summary.unpriced_calls), style="yellow"))
    if report.steps:
        console.print()
        console.print(steps_table(report, console.width))
    if report.models:
        console.print()
        console.print(models_table(report, console.width))
    console.print()
    if report.recommendations:
        console.print(recommendations_blocks(report.recommendations))
    else:
        console.print(Text("Recommendations", style="italic"))
        console.print(NO_RECOMMENDATIONS)
    if report.recommendations_basis is not None:
        console.print(Text(fmt.basis_note(report.recommendations_basis), style="dim"))
    if report.projection is not None:
        console.print(projection_line(report.projection))


NO_RECOMMENDATIONS = "No recommendations: no rule found waste in this selection."


def recommendations_blocks(recommendations: list[Recommendation]) -> Group:
    """One block per recommendation, most valuable first (savings x confidence weight).

    Blocks, not a table: a table squeezed into a terminal wraps every suggestion into a narrow
    column, and the suggestion is the part a user acts on. Markdown output has the table.
    """
    parts: list[RenderableType] = [Text("Recommendations", style="italic")]
    for number, item in enumerate(recommendations, start=1):
        parts.append(Text.assemble((f"{number:>2}. {item.kind}", "bold"), f"  {where(item)}"))
        amount = savings(item)
        lead = amount if amount == NO_ESTIMATE else f"saves {amount}"
        details = Text(f"{lead} · {item.confidence} confidence\n{item.suggestion}")
        parts.append(Padding(details, (0, 0, 0, 4)))
    return Group(*parts)


def where(item: Recommendation) -> str:
    """``task / step (model)``, leaving out what the recommendation does not name."""
    place = " / ".join(part for part in (item.task, item.step) if part)
    return f"{place} ({item.model})" if item.model else place


#: Shown instead of "$0.0000" for a finding that promises no money: a change whose saving depends
#: on quality the rule cannot judge (``context_growth``'s "trim old turns"), or a fix whose money an
#: earlier recommendation already counted on the same calls.
NO_ESTIMATE = "no $ estimate"


def promises_nothing(item: Recommendation) -> bool:
    """Whether the recommendation's saving is exactly zero, range included (unpriced is not zero)."""
    amount, spread = item.estimated_savings_usd, item.savings_range_usd
    return amount is not None and amount == 0 and (spread is None or spread.high == 0)


def savings(item: Recommendation) -> str:
    """``$1.2000 ($0.6000-$1.2000)``: the estimate and its range (:data:`NO_ESTIMATE` when it is zero)."""
    if promises_nothing(item):
        return NO_ESTIMATE
    text = fmt.money(item.estimated_savings_usd)
    if item.savings_range_usd is not None and item.savings_range_usd.low != item.savings_range_usd.high:
        text += f" ({fmt.money(item.savings_range_usd.low)}-{fmt.money(item.savings_range_usd.high)})"
    return text


def projection_line(projection: Projection) -> str:
    """The monthly projection at ``--tasks-per-day`` in one line (Markdown uses it too)."""
    volume = f"At {projection.tasks_per_day:,} tasks/day"
    if projection.monthly_cost_usd is None:
        return f"{volume}: no task has a known cost, so there is no monthly projection."
    return (
        f"{volume}: {fmt.money(projection.monthly_cost_usd)}/month now, "
        f"{fmt.money(projection.monthly_cost_after_usd)}/month after the high- and medium-confidence "
        f"recommendations (saves {fmt.money(projection.monthly_savings_usd)}/month)."
    )


def summary_table(report: Report) -> Table:
    """The headline numbers as a two-column grid."""
    numbers = report.summary
    grid = Table.grid(padding=(0, 3))
    grid.add_column(style="bold")
    grid.add_column()
    failed = f" ({numbers.failed_tasks:,} failed)" if numbers.failed_tasks else ""
    grid.add_row("Tasks", f"{numbers.tasks:,}{failed}")
    unpriced = f" ({numbers.unpriced_calls:,} unpriced)" if numbers.unpriced_calls else ""
    grid.add_row("Model calls", f"{numbers.model_calls:,}{unpriced}")
    grid.add_row("Total cost", Text(fmt.money(numbers.total_cost_usd), style="bold"))
    per_task = numbers.cost_per_task_usd
    if per_task.mean is not None:
        grid.add_row(
            "Cost per task",
            f"mean {fmt.money(per_task.mean)} · p50 {fmt.money(per_task.p50)} · p95 {fmt.money(per_task.p95)}",
        )
    if numbers.cost_per_successful_task_usd is not None:
        grid.add_row("Cost per successful task", fmt.money(numbers.cost_per_successful_task_usd))
    latency = numbers.task_latency_ms
    if latency.p50 is not None:
        grid.add_row("Task latency", f"p50 {fmt.duration(latency.p50)} · p95 {fmt.duration(latency.p95)}")
    return grid


def steps_table(report: Report, width: int = 120) -> Table:
    """One row per (task, step), most expensive first.

    Cache columns appear only when some step used the cache. Below :data:`WIDE` columns the
    models, cache and p50 columns are left out (the Models table and ``--format json`` have them),
    and then, while the table is still wider than the console, the share and then the p95
    column (:func:`_fitting`), so that names and money are not folded on an 80-column terminal.
    A wide table keeps them all: only its list of models may fold there.
    """
    wide = width >= WIDE
    with_cache = wide and any(step.cache_read_tokens or step.cache_write_tokens for step in report.steps)
    with_unpriced = any(_mixed(step.cost_usd, step.unpriced_calls) for step in report.steps)

    def build(left_out: frozenset[str]) -> Table:
        table = _table("Steps by cost")
        table.add_column("Task", overflow="fold")
        table.add_column("Step", overflow="fold")
        table.add_column("Calls", justify="right", no_wrap=True)
        if wide:
            table.add_column("Models", overflow="fold")
        table.add_column("Input", justify="right", no_wrap=True)
        if with_cache:
            table.add_column("Cache read", justify="right")
            table.add_column("Cache write", justify="right")
        table.add_column("Output", justify="right", no_wrap=True)
        _cost_columns(table, with_unpriced)
        if "Share" not in left_out:
            table.add_column("Share", justify="right", no_wrap=True)
        if wide:
            table.add_column("p50", justify="right", no_wrap=True)
        if "p95" not in left_out:
            table.add_column("p95", justify="right", no_wrap=True)
        for step in report.steps:
            cells: list[str | Text] = [Text(step.task), Text(step.step), f"{step.model_calls:,}"]
            if wide:
                cells.append(Text(", ".join(step.models)))
            cells.append(fmt.tokens(step.input_tokens))
            if with_cache:
                cells += [fmt.tokens(step.cache_read_tokens), fmt.tokens(step.cache_write_tokens)]
            cells += [fmt.tokens(step.output_tokens), *_cost_cells(step.cost_usd, step.unpriced_calls, with_unpriced)]
            if "Share" not in left_out:
                cells.append(fmt.share(step.share))
            if wide:
                cells.append(fmt.duration(step.latency_ms.p50))
            if "p95" not in left_out:
                cells.append(fmt.duration(step.latency_ms.p95))
            table.add_row(*cells)
        return table

    return _fitting(build, width, () if wide else ("Share", "p95"))


def models_table(report: Report, width: int = 120) -> Table:
    """One row per provider and model, most expensive first (without the share if names would fold)."""
    with_unpriced = any(_mixed(model.cost_usd, model.unpriced_calls) for model in report.models)

    def build(left_out: frozenset[str]) -> Table:
        table = _table("Models")
        table.add_column("Provider", overflow="fold")
        table.add_column("Model", overflow="fold")
        table.add_column("Calls", justify="right", no_wrap=True)
        table.add_column("Input", justify="right", no_wrap=True)
        table.add_column("Output", justify="right", no_wrap=True)
        _cost_columns(table, with_unpriced)
        if "Share" not in left_out:
            table.add_column("Share", justify="right", no_wrap=True)
        for model in report.models:
            cells: list[str | Text] = [
                Text(model.provider or "?"),
                Text(model.model or "?"),
                f"{model.model_calls:,}",
                fmt.tokens(model.input_tokens),
                fmt.tokens(model.output_tokens),
                *_cost_cells(model.cost_usd, model.unpriced_calls, with_unpriced),
            ]
            if "Share" not in left_out:
                cells.append(fmt.share(model.share))
            table.add_row(*cells)
        return table

    return _fitting(build, width, ("Share",))


def _fitting(build: Callable[[frozenset[str]], Table], width: int, optional: Sequence[str]) -> Table:
    """The table ``build`` makes with the fewest of the ``optional`` columns left out (in order) to fit ``width``.

    A table wider than the console folds its name columns (``triage_ticket`` over two lines at
    80 columns with an ``Unpriced`` column); leaving out a column the other tables or
    ``--format json`` still have keeps every row on one line. Names too long for any layout
    still fold, never cut.
    """
    measuring = Console(width=_UNBOUNDED)  # a measurement is capped at the console's width
    left_out: frozenset[str] = frozenset()
    table = build(left_out)
    for column in optional:
        if Measurement.get(measuring, measuring.options, table).maximum <= width:
            break
        left_out |= {column}
        table = build(left_out)
    return table


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)


def _mixed(cost: Decimal | None, unpriced_calls: int) -> bool:
    """Whether a row's cost leaves some of its calls out (a cost, and calls without a price)."""
    return cost is not None and unpriced_calls > 0


def _cost_columns(table: Table, with_unpriced: bool) -> None:
    """Add the cost column, and an ``Unpriced`` count beside it when a row's cost leaves calls out.

    A column of its own rather than ``$0.0120 +154 unpriced`` in one cell, which wrapped over two
    lines on an 80-column terminal (or, kept whole, squeezed the task and step names). A row whose
    calls all lack a price says ``unpriced`` as its cost, so it alone adds no column.
    """
    table.add_column("Cost", justify="right", no_wrap=True)
    if with_unpriced:
        table.add_column("Unpriced", justify="right", no_wrap=True)


def _cost_cells(cost: Decimal | None, unpriced_calls: int, with_unpriced: bool) -> list[str | Text]:
    """The cost cell (``unpriced`` in yellow when no call has a price) and, if shown, the unpriced count."""
    cells: list[str | Text] = [Text(fmt.money(cost), style="yellow" if cost is None else "")]
    if with_unpriced:
        cells.append(Text(f"{unpriced_calls:,}", style="yellow") if unpriced_calls else "")
    return cells
