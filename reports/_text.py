"""The terminal report: a summary block, steps by cost, models, then recommendations (rich)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from . import _cut
from . import _format as fmt
from ._model import ModelEntry, Projection, Recommendation, Report, StepEntry

WIDE = 110
"""Console width from which the Steps table shows every column."""


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
        note = _cut.steps_note(report.steps)
        if note is not None:
            console.print(Text(note, style="yellow"))
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
    shown, others = _cut.recommendations(recommendations)
    for number, item in enumerate(shown, start=1):
        parts.append(Text.assemble((f"{number:>2}. {item.kind}", "bold"), f"  {where(item)}"))
        amount = savings(item)
        lead = amount if amount == NO_ESTIMATE else f"saves {amount}"
        details = Text(f"{lead} · {item.confidence} confidence\n{item.suggestion}")
        parts.append(Padding(details, (0, 0, 0, 4)))
    if others is not None:
        parts.append(Text(others, style="dim"))
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


_Cell = str | Text
_Row = TypeVar("_Row", StepEntry, ModelEntry)


@dataclass(frozen=True, slots=True)
class _Column(Generic[_Row]):
    """A table column: its header, how it is laid out, and its cell for a row."""

    header: str
    cell: Callable[[_Row], _Cell]
    right: bool = True  # numbers: right-aligned and never wrapped
    optional: bool = False  # left out, in order, while the table is wider than the console


def steps_table(report: Report, width: int = 120) -> Table:
    """One row per (task, step), most expensive first.

    Cache columns appear only when some step used the cache. Below :data:`WIDE` columns the
    models, cache and p50 columns are left out (the Models table and ``--format json`` have them),
    and then, while the table is still wider than the console, the share and then the p95
    column (:func:`_fitted`), so that names and money are not folded on an 80-column terminal.
    A wide table keeps them all: only its list of models may fold there.
    """
    wide = width >= WIDE
    rows = _cut.steps(report.steps)
    with_cache = wide and any(step.cache_read_tokens or step.cache_write_tokens for step in rows)
    columns: list[_Column[StepEntry]] = [
        _Column("Task", lambda step: Text(step.task), right=False),
        _Column("Step", lambda step: Text(step.step), right=False),
        _Column("Calls", lambda step: f"{step.model_calls:,}"),
    ]
    if wide:
        columns.append(_Column("Models", lambda step: Text(", ".join(step.models)), right=False))
    columns.append(_Column("Input", lambda step: fmt.tokens(step.input_tokens)))
    if with_cache:
        columns.append(_Column("Cache read", lambda step: fmt.tokens(step.cache_read_tokens)))
        columns.append(_Column("Cache write", lambda step: fmt.tokens(step.cache_write_tokens)))
    columns.append(_Column("Output", lambda step: fmt.tokens(step.output_tokens)))
    columns += _cost_columns(rows)
    columns.append(_Column("Share", lambda step: fmt.share(step.share), optional=not wide))
    if wide:
        columns.append(_Column("p50", lambda step: fmt.duration(step.latency_ms.p50)))
    columns.append(_Column("p95", lambda step: fmt.duration(step.latency_ms.p95), optional=not wide))
    return _fitted("Steps by cost", columns, rows, width)


def models_table(report: Report, width: int = 120) -> Table:
    """One row per provider and model, most expensive first (without the share if names would fold)."""
    rows = _cut.models(report.models)
    columns: list[_Column[ModelEntry]] = [
        _Column("Provider", lambda model: Text(model.provider or "?"), right=False),
        _Column("Model", lambda model: Text(model.model or "?"), right=False),
        _Column("Calls", lambda model: f"{model.model_calls:,}"),
        _Column("Input", lambda model: fmt.tokens(model.input_tokens)),
        _Column("Output", lambda model: fmt.tokens(model.output_tokens)),
        *_cost_columns(rows),
        _Column("Share", lambda model: fmt.share(model.share), optional=True),
    ]
    return _fitted("Models", columns, rows, width)


def _fitted(title: str, columns: Sequence[_Column[_Row]], rows: Sequence[_Row], width: int) -> Table:
    """The table of ``rows`` with the fewest optional ``columns`` left out (in order) to fit ``width``.

    A table wider than the console folds its name columns (``triage_ticket`` over two lines at
    80 columns with an ``Unpriced`` column); leaving out a column that the other table or
    ``--format json`` still has keeps every row on one line. Names too long for any layout still
    fold, never cut.
    """
    measuring = Console(width=fmt.UNBOUNDED_WIDTH)  # a measurement is capped at the console's width
    shown = list(columns)
    table = _table(title, shown, rows)
    for column in [column for column in columns if column.optional]:
        if Measurement.get(measuring, measuring.options, table).maximum <= width:
            break
        shown.remove(column)
        table = _table(title, shown, rows)
    return table


def _table(title: str, columns: Sequence[_Column[_Row]], rows: Sequence[_Row]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for column in columns:
        if column.right:
            table.add_column(column.header, justify="right", no_wrap=True)
        else:
            table.add_column(column.header, overflow="fold")
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


def _cost_columns(rows: Sequence[_Row]) -> list[_Column[_Row]]:
    """The cost column, and an ``Unpriced`` count beside it when a row's cost leaves calls out.

    A column of its own rather than ``$0.0120 +154 unpriced`` in one cell, which wrapped over two
    lines on an 80-column terminal (or, kept whole, squeezed the task and step names). A row whose
    calls all lack a price says ``unpriced`` (in yellow) as its cost, so it alone adds no column.
    """
    columns: list[_Column[_Row]] = [_Column("Cost", _cost_cell)]
    if any(row.cost_usd is not None and row.unpriced_calls > 0 for row in rows):
        columns.append(_Column("Unpriced", _unpriced_cell))
    return columns


def _cost_cell(row: StepEntry | ModelEntry) -> _Cell:
    return Text(fmt.money(row.cost_usd), style="yellow" if row.cost_usd is None else "")


def _unpriced_cell(row: StepEntry | ModelEntry) -> _Cell:
    return Text(f"{row.unpriced_calls:,}", style="yellow") if row.unpriced_calls else ""
