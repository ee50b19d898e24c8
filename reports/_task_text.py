"""Terminal views of single tasks: the recent-tasks table and one task's tree."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import _format as fmt
from ._task_model import CallView, StepView, TaskDetail, TaskList

SHORT_ID_LENGTH = 12


#: The task list's layouts, widest first: what goes between a cost and the calls it leaves out, and
#: how the start time is written (the last one puts both on a second line).
_TASK_LAYOUTS = ((" ", "%Y-%m-%d %H:%M:%S"), ("\n", "%Y-%m-%d %H:%M:%S"), ("\n", "%Y-%m-%d\n%H:%M:%S"))


def render_task_list(tasks: TaskList, console: Console) -> None:
    """Print recent tasks as a table (id shortened to 12 characters, enough for ``show``).

    Fitted to the console like the report's tables: the first of :data:`_TASK_LAYOUTS` whose
    widest rendering fits is used, one line per task when it can be. At 80 columns the one-line
    table was wider than the terminal and rich cut every row ($0.0335 read ``$0.03``, the
    duration was gone); now names fold, and values fold rather than being cut down to about 60
    columns (below that the fixed columns alone are wider than the console).
    """
    if not tasks.tasks:
        console.print(f"No tasks in this selection ({fmt.selection(tasks.filters)}): only untracked model calls.")
        return
    unbounded = console.options.update_width(fmt.UNBOUNDED_WIDTH)
    for before_unpriced, started in _TASK_LAYOUTS:
        table = _task_table(tasks, before_unpriced, started)
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            break
    console.print(table)
    unpriced = sum(task.unpriced_calls for task in tasks.tasks)
    if unpriced:
        console.print(Text(fmt.unpriced_note(unpriced), style="yellow"))


def _task_table(tasks: TaskList, before_unpriced: str, started: str) -> Table:
    """The task list: ``before_unpriced`` between a cost and its unpriced calls, ``started`` formats the start."""
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"Tasks  ({fmt.selection(tasks.filters)})",
        title_justify="left",
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
    )
    table.add_column("ID", no_wrap=True)
    table.add_column("Task", overflow="fold")
    table.add_column("Started (UTC)", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for header in ("Calls", "Cost", "Duration"):
        table.add_column(header, justify="right", overflow="fold")
    for task in tasks.tasks:
        table.add_row(
            task.task_id[:SHORT_ID_LENGTH],
            Text(task.name),
            task.started_at.strftime(started),
            Text(task.status, style="green" if task.status == "ok" else "red"),
            f"{task.model_calls:,}",
            fmt.money_with_unpriced(task.cost_usd, task.unpriced_calls).replace(" +", before_unpriced + "+", 1),
            fmt.duration(task.duration_ms),
        )
    return table


def render_task_detail(detail: TaskDetail, console: Console) -> None:
    """Print one task as a tree; each node shows its cost (nested steps included) and latency."""
    task = detail.task
    label = Text.assemble(
        (task.name, "bold"),
        f"  {task.task_id}  ",
        (task.status, "green" if task.status == "ok" else "red"),
        f"  {fmt.money_with_unpriced(task.cost_usd, task.unpriced_calls)}  {fmt.duration(task.duration_ms)}"
        f"  {fmt.count(task.model_calls, 'call')}",
    )
    tree = Tree(label)
    _add_children(tree, detail.children)
    console.print(tree)
    if task.unpriced_calls:
        console.print(Text(fmt.unpriced_note(task.unpriced_calls), style="yellow"))


def _add_children(parent: Tree, children: list[StepView | CallView]) -> None:
    for child in children:
        if isinstance(child, StepView):
            branch = parent.add(_step_label(child))
            _add_children(branch, child.children)
        else:
            parent.add(_call_label(child))


def _step_label(step: StepView) -> Text:
    kind = f" [{step.step_kind}]" if step.step_kind and step.step_kind != "step" else ""
    return Text.assemble(
        (step.name, "bold"),
        kind,
        f"  {fmt.money_with_unpriced(step.cost_usd, step.unpriced_calls)}  {fmt.duration(step.duration_ms)}"
        f"  {fmt.count(step.model_calls, 'call')}",
        _failure(step.status, step.error_type),
    )


def _call_label(call: CallView) -> Text:
    tokens = ""
    if call.input_tokens is not None or call.output_tokens is not None:
        tokens = f"  {fmt.tokens(call.input_tokens or 0)} in / {fmt.tokens(call.output_tokens or 0)} out"
        if call.cache_read_tokens:
            tokens += f" ({fmt.tokens(call.cache_read_tokens)} cached)"
    return Text.assemble(
        f"{call.provider or '?'} {call.model or '?'}",
        (f"  {fmt.money(call.cost_usd)}", "" if call.priced else "yellow"),
        f"  {fmt.duration(call.duration_ms)}",
        tokens,
        _failure(call.status, call.error_type),
    )


def _failure(status: str, error_type: str | None) -> tuple[str, str] | str:
    if status == "ok":
        return ""
    return (f"  {error_type or status}", "red")
