"""``agentprof report``: where the money went, by step and by model."""

from __future__ import annotations

from datetime import datetime

import click

from agentprof.cli._options import db_option, format_option, since_option, task_option
from agentprof.cli._store import ensure_selection, make_console, store_connection


@click.command()
@db_option
@since_option
@task_option
@format_option("text", "json", "markdown")
def report(db: str | None, since: datetime | None, task_name: str | None, output_format: str) -> None:
    """Show what tasks cost and where the money went, by step and model."""
    from agentprof.analytics import Filters
    from agentprof.reports import build_report, render_json, render_markdown, render_text, store_info  # type: ignore[import-not-found]

    filters = Filters(since=since, task=task_name)
    with store_connection(db) as (location, conn):
        ensure_selection(conn, filters, location.display)
        result = build_report(conn, filters, store=store_info(conn, location.display))
    if output_format == "json":
        click.echo(render_json(result))
    elif output_format == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        render_text(result, make_console())
