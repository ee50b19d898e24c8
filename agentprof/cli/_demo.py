"""``agentprof demo``: see a real report in one command, with no API key and no network.

Runs the example support-triage agent (real ``openai`` and ``anthropic`` SDKs) against the
local model server that ships with agentprof, records it into a fresh store, and prints the
report. The store is kept so the user can go on exploring it with ``tasks`` and ``show``.
"""

from __future__ import annotations

import importlib.util
import tempfile

import click


@click.command()
@click.option("--db", default=None, help="Store for the demo data (default: a new temporary directory).")
@click.option("--rounds", default=4, show_default=True, type=click.IntRange(1, 1000), help="Passes over the tickets.")
@click.pass_context
def demo(ctx: click.Context, db: str | None, rounds: int) -> None:
    """Run the example agent against a local model server and report its cost."""
    missing = [sdk for sdk in ("openai", "anthropic") if importlib.util.find_spec(sdk) is None]
    if missing:
        raise click.ClickException(f"the demo needs the {' and '.join(missing)} SDK: pip install 'agentprof[demo]'")
    import agentprof
    from agentprof.cli._report import report
    from agentprof.examples import support_triage
    from agentprof.testserver import TestServer

    store = db or tempfile.mkdtemp(prefix="agentprof-demo-")
    agentprof.configure(db=store, service_name="support-triage-demo")
    agentprof.instrument()
    try:
        with TestServer() as server:
            outcome = support_triage.run(server.openai_base_url, server.anthropic_base_url, rounds)
    finally:
        agentprof.uninstrument()
        agentprof.shutdown()
    click.echo(
        f"Ran the support-triage agent over {len(support_triage.TICKETS)} tickets x {rounds} round(s) "
        f"against a local model server: {outcome['ok']} returned, {outcome['failed']} raised.\n"
    )
    ctx.invoke(report, db=store, since=None, task_name=None, output_format="text")
    click.echo(f"\nExplore it: agentprof tasks --db {store}   then   agentprof show TASK_ID --db {store}")
