from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
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


def _group_running(body: Callable[[], object]) -> click.Group:
    """An agentprof-style click group with one command, ``run``, that calls ``body``."""
    from agentprof.cli._errors import AgentprofGroup

    @click.group(cls=AgentprofGroup)
    def cli() -> None:
        pass

    @cli.command()
    def run() -> None:
        body()

    return cli


def test_duckdbs_interrupted_query_error_is_clicks_aborted(runner: CliRunner) -> None:
    # What DuckDB's client raises when it notices Ctrl-C during a query (the real signal is below).
    def interrupted() -> None:
        raise RuntimeError("Query interrupted")

    result = runner.invoke(_group_running(interrupted), ["run"])
    assert (result.exit_code, result.output) == (1, "Aborted!\n")
    assert isinstance(result.exception, SystemExit)

    def other_runtime_error() -> None:
        raise RuntimeError("Query interrupted by something else")

    result = runner.invoke(_group_running(other_runtime_error), ["run"])
    assert isinstance(result.exception, RuntimeError)  # a bug keeps its traceback


def test_ctrl_c_during_a_duckdb_query_is_aborted_without_a_traceback(runner: CliRunner) -> None:
    # A real query (~10 s uninterrupted on this machine) and a real SIGINT, as a terminal sends,
    # half a second into it. DuckDB's client usually notices it within the query and raises
    # RuntimeError("Query interrupted") (click's "Aborted!"); on a loaded machine it sometimes
    # notices nothing until the query ends, and Python's KeyboardInterrupt follows (click's
    # "\nAborted!"). DuckDB's own tests accept either; so does this one, with no traceback.
    import os
    import signal
    import threading

    import duckdb

    done = threading.Event()

    def press_ctrl_c() -> None:
        if not done.wait(0.5):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=press_ctrl_c, daemon=True)

    def slow_query() -> None:
        conn = duckdb.connect()
        sender.start()
        try:
            conn.execute("SELECT count(*) FROM range(2000000000) t(x) WHERE x % 7 = 3").fetchall()
        finally:
            done.set()
            sender.join()

    try:
        result = runner.invoke(_group_running(slow_query), ["run"])
    finally:
        done.set()
    assert result.exit_code == 1
    assert result.output in {"Aborted!\n", "\nAborted!\n"}
    assert isinstance(result.exception, SystemExit)
