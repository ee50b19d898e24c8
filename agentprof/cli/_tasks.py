"""``agentprof tasks`` (recent tasks) and ``agentprof show`` (one task as a tree)."""

from __future__ import annotations

from datetime import datetime

import click

from agentprof.cli._options import db_option, format_option, since_option, task_option
from agentprof.cli._store import ensure_selection, make_console, store_connection


@click.command()
@db_option
@since_option
@task_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many tasks to list.")
@format_option("text", "json")
def tasks(db: str | None, since: datetime | None, task_name: str | None, limit: int, output_format: str) -> None:
    """List recent tasks with their status, calls, cost and duration."""
    from agentprof.analytics import Filters, tasks_list
    from agentprof.reports import ReportFilters, TaskList, render_json, render_task_list, store_info, task_entry  # type: ignore[import-not-found]

    filters = Filters(since=since, task=task_name)
    with store_connection(db) as (location, conn):
        ensure_selection(conn, filters, location.display)
        listing = TaskList(
            store=store_info(conn, location.display),
            filters=ReportFilters(since=since, task=task_name),
            tasks=[task_entry(row) for row in tasks_list(conn, filters, limit)],
        )
    if output_format == "json":
        click.echo(render_json(listing))
    else:
        render_task_list(listing, make_console())


@click.command()
@click.argument("task_id")
@db_option
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Show every step and call (a longer run shows its first 20 and last 5 and sums the rest).",
)
@format_option("text", "json")
def show(task_id: str, db: str | None, everything: bool, output_format: str) -> None:
    """Show one task as a tree of steps and model calls with their cost."""
    from agentprof.analytics import task_tree
    from agentprof.reports import render_json, render_task_detail, store_info, task_detail
    from agentprof.reports._task_model import MAX_DEPTH  # type: ignore[import-not-found]
    from agentprof.reports._task_text import tree_depth  # type: ignore[import-not-found]

    console = make_console()
    depth = MAX_DEPTH if output_format == "json" else tree_depth(console.width)
    with store_connection(db) as (location, conn):
        detail = task_detail(task_tree(conn, task_id), store_info(conn, location.display), depth)
    if output_format == "json":
        click.echo(render_json(detail))
    else:
        render_task_detail(detail, console, everything=everything)
