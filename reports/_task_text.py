"""Terminal views of single tasks: the recent-tasks table and one task's tree."""

from __future__ import annotations

from decimal import Decimal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import _format as fmt
from ._task_model import CallView, StepView, TaskDetail, TaskEntry, TaskList

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
        rows = [_task_row(task, before_unpriced, started) for task in tasks.tasks]
        # The widest rendering is the sum of each column's widest cell: measuring only the rows that
        # hold one gives the same width without rendering every row (5,000 tasks: ~3 s each time).
        if Measurement.get(console, unbounded, _task_table(tasks, _widest_rows(rows))).maximum <= console.width:
            break
    console.print(_task_table(tasks, rows))
    unpriced = sum(task.unpriced_calls for task in tasks.tasks)
    if unpriced:
        console.print(Text(fmt.unpriced_note(unpriced), style="yellow"))


_Row = tuple[str | Text, ...]


def _task_row(task: TaskEntry, before_unpriced: str, started: str) -> _Row:
    """One task's cells: ``before_unpriced`` between a cost and its unpriced calls, ``started`` formats the start."""
    return (
        task.task_id[:SHORT_ID_LENGTH],
        Text(task.name),
        task.started_at.strftime(started),
        Text(task.status, style="green" if task.status == "ok" else "red"),
        f"{task.model_calls:,}",
        fmt.money_with_unpriced(task.cost_usd, task.unpriced_calls).replace(" +", before_unpriced + "+", 1),
        fmt.duration(task.duration_ms),
    )


def _widest_rows(rows: list[_Row]) -> list[_Row]:
    """The rows holding each column's widest cell (its longest line), in their order."""

    def width(cell: str | Text) -> int:
        return max(map(cell_len, (cell.plain if isinstance(cell, Text) else cell).split("\n")))

    widest = {max(range(len(rows)), key=lambda at: width(rows[at][column])) for column in range(len(rows[0]))}
    return [rows[at] for at in sorted(widest)]


def _task_table(tasks: TaskList, rows: list[_Row]) -> Table:
    """The task list holding ``rows`` (see :func:`_task_row`)."""
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
    for cells in rows:
        table.add_row(*cells)
    return table


def tree_depth(width: int) -> int:
    """Levels of a task tree a console of ``width`` columns shows (four columns of guides each)."""
    return max(2, (width - 40) // 4)


#: A node with more children than ``HEAD + TAIL + 1`` shows its first ``HEAD`` and last ``TAIL``,
#: and one line summing the ones between (``agentprof show --all`` shows every one).
SHOWN_HEAD = 20
SHOWN_TAIL = 5


def render_task_detail(detail: TaskDetail, console: Console, *, everything: bool = False) -> None:
    """Print one task as a tree; each node shows its cost (nested steps included) and latency.

    Why long runs are cut unless ``everything``: a long agent run (thousands of loop iterations)
    printed every call, 27,638 lines for a task of 20,000 calls, in 4.7 s of rendering, which
    no one reads in a terminal. The first and last children of a long run stay (how it started
    and ended), and the line between them keeps the totals whole: how many steps and calls it
    hides and what they cost. The JSON form always has every node.
    """
    task = detail.task
    label = Text.assemble(
        (task.name, "bold"),
        f"  {task.task_id}  ",
        (task.status, "green" if task.status == "ok" else "red"),
        f"  {fmt.money_with_unpriced(task.cost_usd, task.unpriced_calls)}  {fmt.duration(task.duration_ms)}"
        f"  {fmt.count(task.model_calls, 'call')}",
    )
    tree = Tree(label)
    _add_children(tree, detail.children, everything)
    console.print(tree)
    if detail.flat_below_depth is not None:
        console.print(
            Text(
                f"Steps nested deeper than {detail.flat_below_depth} levels are listed flat under level "
                f"{detail.flat_below_depth} (a wider terminal shows more levels).",
                style="dim",
            )
        )
    if task.unpriced_calls:
        console.print(Text(fmt.unpriced_note(task.unpriced_calls), style="yellow"))


def _add_children(parent: Tree, children: list[StepView | CallView], everything: bool) -> None:
    hidden: list[StepView | CallView] = []
    if not everything and len(children) > SHOWN_HEAD + SHOWN_TAIL + 1:
        hidden = children[SHOWN_HEAD:-SHOWN_TAIL]
        children = [*children[:SHOWN_HEAD], *children[-SHOWN_TAIL:]]
    for position, child in enumerate(children):
        if hidden and position == SHOWN_HEAD:
            parent.add(_hidden_label(hidden))
        if isinstance(child, StepView):
            branch = parent.add(_step_label(child))
            _add_children(branch, child.children, everything)
        else:
            parent.add(_call_label(child))


def _hidden_label(hidden: list[StepView | CallView]) -> Text:
    """``… 19,975 more  $335.1200 +3 unpriced  19,980 calls  (--all shows them)``, as a step's line reads.

    A step without children holds no call of its own: in a list made flat (a deep recursion) its
    totals are those of the steps and calls listed after it, so only what the list itself holds
    is summed, never twice.
    """
    unpriced = model_calls = 0
    cost: Decimal | None = None
    for node in hidden:
        if isinstance(node, StepView):
            if not node.children:
                continue
            model_calls += node.model_calls
            unpriced += node.unpriced_calls
        else:
            model_calls += 1
            unpriced += not node.priced
        if node.cost_usd is not None and (isinstance(node, StepView) or node.priced):
            cost = node.cost_usd if cost is None else cost + node.cost_usd
    if model_calls == 0:
        cost = Decimal(0)
    return Text.assemble(
        (f"… {len(hidden):,} more", "bold"),
        f"  {fmt.money_with_unpriced(cost, unpriced)}  {fmt.count(model_calls, 'call')}",
        ("  (--all shows them)", "dim"),
    )


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
