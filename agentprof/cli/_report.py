"""``agentprof report``: where the money went, by step and by model, and what to change."""

from __future__ import annotations

from datetime import datetime

import click

from agentprof.cli._options import db_option, format_option, since_option, task_option
from agentprof.cli._store import ensure_selection, make_console, store_connection


@click.command()
@db_option
@since_option
@task_option
@click.option(
    "--tasks-per-day",
    type=click.IntRange(min=1),
    metavar="N",
    help="Project the monthly cost at N tasks a day, now and after the recommendations.",
)
@format_option("text", "json", "markdown")
def report(
    db: str | None, since: datetime | None, task_name: str | None, tasks_per_day: int | None, output_format: str
) -> None:
    """Show what tasks cost, where the money went, and what to change to save."""
    from agentprof.analytics import Filters
    from agentprof.reports import build_report, render_json, render_markdown, render_text, store_info  # type: ignore[import-not-found]
    from agentprof.reports.rules._config import RulesConfig  # type: ignore[import-not-found]
    from agentprof.store import second_reader

    rules_config = RulesConfig.load()  # a bad [tool.agentprof.rules] fails before the store is opened
    filters = Filters(since=since, task=task_name)
    with store_connection(db) as (location, conn), second_reader(conn) as beside:
        ensure_selection(conn, filters, location.display)
        result = build_report(
            conn,
            filters,
            store=store_info(conn, location.display),
            rules_config=rules_config,
            tasks_per_day=tasks_per_day,
            beside=beside,
        )
    if output_format == "json":
        click.echo(render_json(result))
    elif output_format == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        render_text(result, make_console())
