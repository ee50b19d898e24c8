"""``agentprof demo``: the example agent against the local server, then the report with recommendations."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from agentprof.cli import main


def test_demo_runs_the_example_and_reports_its_waste(tmp_path: Path) -> None:
    store = tmp_path / "demo-store"
    result = CliRunner(env={"COLUMNS": "120"}).invoke(main, ["demo", "--db", str(store)])
    assert result.exit_code == 0, result.output
    output = result.output
    assert output.startswith("Ran the support-triage agent over 6 tickets x 4 round(s)")
    assert "Cost per successful task" in output
    kinds = {line.split()[1] for line in output.splitlines() if line[:4].strip().rstrip(".").isdigit()}
    # The example's deliberate waste: repeated tickets, an uncached policy, one-word labels on gpt-4o.
    assert {"exact_cache", "prompt_cache", "cheaper_model"} <= kinds
    assert f"agentprof tasks --db {store}" in output
    again = CliRunner().invoke(main, ["report", "--db", str(store), "--format", "json"])
    assert again.exit_code == 0, again.output
    assert '"recommendations": [' in again.output
