from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agentprof import __version__
from agentprof.cli import main


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"agentprof, version {__version__}\n"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_one_line_help(runner: CliRunner, name: str) -> None:
    command = main.commands[name]
    assert command.help, f"{name} has no help text"
    assert "\n" not in command.get_short_help_str(limit=200)
    assert not command.get_short_help_str(limit=80).endswith("..."), f"{name}'s first line is too long"
    result = runner.invoke(main, [name, "--help"])
    assert result.exit_code == 0
    assert command.get_short_help_str(limit=200) in " ".join(result.output.split())


def test_commands_registered() -> None:
    assert {"report", "tasks", "show"} <= set(main.commands)
    assert all(isinstance(command, click.Command) for command in main.commands.values())


def test_unknown_flag_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["report", "--no-such-flag"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_missing_store_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    for command in (["report"], ["tasks"], ["show", "abc"]):
        result = runner.invoke(main, [*command, "--db", str(tmp_path / "missing")])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert result.output.startswith("Error: no agentprof data at ")
        assert len(result.output.strip().splitlines()) == 1


def test_default_store_comes_from_agentprof_db(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["report", "--format", "json"], env={"AGENTPROF_DB": str(store_dir)})
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["report", "--db", str(store_dir / "other")], env={"AGENTPROF_DB": str(store_dir)})
    assert result.exit_code == 1  # --db wins over AGENTPROF_DB


def test_help_does_not_import_the_database_stack() -> None:
    code = "import sys, agentprof.cli; print(sorted(m for m in ('duckdb', 'sqlalchemy', 'rich') if m in sys.modules))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"


def test_ctrl_c_during_a_duckdb_query_is_aborted_without_a_traceback(runner: CliRunner) -> None:
    # DuckDB's client turns Ctrl-C during a query into RuntimeError("Query interrupted"): a real
    # query (about a minute uninterrupted) and a real SIGINT, as a terminal sends, half a second
    # into it (a signal already pending when the query starts is only seen after it ends).
    import os
    import signal
    import threading

    import duckdb

    from agentprof.cli._errors import AgentprofGroup

    @click.group(cls=AgentprofGroup)
    def cli() -> None:
        pass

    timers: list[threading.Timer] = []

    @cli.command()
    def slow() -> None:
        conn = duckdb.connect()
        timers.append(threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)))
        timers[0].start()
        conn.execute("SELECT count(*) FROM range(10000000000) t(x) WHERE x % 7 = 3").fetchall()

    try:
        result = runner.invoke(cli, ["slow"])
    finally:
        for timer in timers:
            timer.cancel()
    assert result.exit_code == 1
    assert result.output == "Aborted!\n"
    assert isinstance(result.exception, SystemExit)
