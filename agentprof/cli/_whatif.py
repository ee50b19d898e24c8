"""``agentprof whatif``: what one step's recorded calls would have cost on another model.

Each priced call's recorded canonical usage (input, cache reads and writes, output, reasoning) is
re-priced on the target model with genai-prices at the call's own timestamp, with the same token
counts. Another model's tokenizer and verbosity change those counts, so the new cost comes with a
range of ``+/- token_spread`` (default: ``[tool.agentprof.rules.cheaper_model] token_spread``,
0.15): ``low = new x (1 - spread)``, ``high = new x (1 + spread)``. Calls without a price (no
usage, unknown model) are counted and shown, never taken as $0.

JSON output (``--format json``), money as numbers in USD:

- ``step``, ``task`` (the ``--task`` filter or null), ``since``, ``target_provider``,
  ``target_model``, ``priced_as`` (genai-prices' model id), ``current_models``, ``token_spread``;
- ``calls`` (re-priced), ``unpriced_calls`` (left out), ``tasks`` (distinct tasks of those calls);
- ``current_cost_usd``, ``whatif_cost_usd``, ``whatif_range_usd`` ``[low, high]``,
  ``difference_usd`` (what-if minus current: negative is a saving), ``difference_share``;
- ``mean_per_task``: ``current_usd``, ``whatif_usd``, ``whatif_range_usd``;
- ``by_task_name``: one row per task name with ``task``, ``tasks``, ``calls``, ``unpriced_calls``,
  ``current_cost_usd``, ``whatif_cost_usd``, ``whatif_range_usd``, ``mean_current_usd``,
  ``mean_whatif_usd``.
"""

from __future__ import annotations

from datetime import datetime

import click

from agentprof.cli._options import db_option, format_option, since_option, task_option


@click.command()
@click.option("--step", required=True, metavar="STEP", help="The step whose recorded calls to re-price.")
@click.option("--model", "target_model", required=True, metavar="MODEL", help="The model to re-price them on.")
@click.option("--provider", metavar="P", help="Provider of MODEL (default: the step's provider).")
@click.option(
    "--token-spread",
    type=click.FloatRange(0, 1),
    metavar="FRACTION",
    help="Token-count uncertainty between models (default: [tool.agentprof.rules.cheaper_model] token_spread, 0.15).",
)
@db_option
@since_option
@task_option
@format_option("text", "json")
def whatif(
    step: str,
    target_model: str,
    provider: str | None,
    token_spread: float | None,
    db: str | None,
    since: datetime | None,
    task_name: str | None,
    output_format: str,
) -> None:
    """Re-price one step's recorded calls on another model: old vs new cost per task."""
    from agentprof.analytics import Filters
    from agentprof.cli._store import ensure_selection, make_console, store_connection
    from agentprof.cli._whatif_compute import compute_whatif, render_whatif
    from agentprof.reports.rules._config import RulesConfig  # type: ignore[import-not-found]

    spread = token_spread if token_spread is not None else RulesConfig.load().cheaper_model.token_spread
    filters = Filters(since=since, task=task_name)
    with store_connection(db) as (location, conn):
        ensure_selection(conn, filters, location.display)
        answer = compute_whatif(conn, filters, step, target_model, provider, spread)
    if output_format == "json":
        click.echo(answer.model_dump_json(indent=2))
    else:
        render_whatif(answer, make_console())
