"""Store resolution and configuration precedence, shared by the library and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import agentprof
from agentprof import _runtime
from agentprof._config import load_project_config, resolve_store_location
from agentprof.cli import main


def test_agentprof_db_env_is_honoured_by_library_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "env-store"
    monkeypatch.setenv("AGENTPROF_DB", str(store))
    runtime = _runtime.configure()
    try:
        assert runtime.location.spool_dir == store / "spool"
        with agentprof.task("from-env"):
            pass
    finally:
        _runtime.shutdown()
    result = CliRunner().invoke(main, ["tasks", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"from-env"' in result.output


def test_explicit_argument_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPROF_DB", str(tmp_path / "env"))
    assert resolve_store_location(str(tmp_path / "arg")).spool_dir == tmp_path / "arg" / "spool"
    assert resolve_store_location("duckdb:///" + str(tmp_path / "x.duckdb")).db_path == tmp_path / "x.duckdb"
    assert resolve_store_location(str(tmp_path / "y.duckdb")).spool_dir == tmp_path / "y.duckdb.spool"


def test_pyproject_table_and_bad_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.agentprof]\ncapture_content = true\ndb = "elsewhere"\n')
    table, path = load_project_config(tmp_path)
    assert table == {"capture_content": True, "db": "elsewhere"} and path == tmp_path / "pyproject.toml"
    (tmp_path / "agentprof.toml").write_text("db = [unclosed")
    with pytest.raises(agentprof.ConfigError, match="agentprof.toml is not valid TOML"):
        load_project_config(tmp_path)


def test_empty_agentprof_db_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(agentprof.ConfigError, match="AGENTPROF_DB is empty"):
        resolve_store_location("  ")


def test_an_existing_file_without_a_suffix_is_the_database_not_a_directory(tmp_path: Path) -> None:
    store = tmp_path / "mystore"
    agentprof.configure(db=str(store))  # a real store, whose database file is then renamed
    with agentprof.task("kept"):
        pass
    _runtime.shutdown()
    assert CliRunner().invoke(main, ["tasks", "--db", str(store)]).exit_code == 0  # ingests the spool
    (store / "agentprof.duckdb").rename(tmp_path / "renamed")
    assert resolve_store_location(str(tmp_path / "renamed")).db_path == tmp_path / "renamed"
    result = CliRunner().invoke(main, ["tasks", "--db", str(tmp_path / "renamed"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"kept"' in result.output
    foreign = tmp_path / "notes"
    foreign.write_text("not a database\n")
    result = CliRunner().invoke(main, ["report", "--db", str(foreign)])
    assert result.exit_code == 1
    assert f"{foreign} is not a DuckDB database" in result.output
    assert foreign.read_text() == "not a database\n"  # left as it was
