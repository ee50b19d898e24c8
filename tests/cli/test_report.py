from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentprof.cli import main
from agentprof.cli._options import parse_since


def report(runner: CliRunner, store_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(main, ["report", "--db", str(store_dir), *args])
    return result.exit_code, result.output


def test_report_json(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--format", "json")
    assert code == 0, output
    data = json.loads(output)
    assert set(data) == {
        "schema_version",
        "generated_at",
        "store",
        "filters",
        "summary",
        "steps",
        "models",
        "recommendations",
    }
    assert data["store"] == {"location": str(store_dir), "dialect": "duckdb"}
    assert data["summary"]["total_cost_usd"] == 0.0445
    assert data["summary"]["cost_per_task_usd"] == {"mean": 0.0115, "p50": 0.001, "p95": 0.03025}
    assert [(step["task"], step["step"]) for step in data["steps"]][:2] == [
        ("triage", "draft"),
        ("(untracked)", "(task)"),
    ]
    assert data["recommendations"] == []


def test_report_text(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir)
    assert code == 0, output
    assert output.splitlines()[0] == f"agentprof report  {store_dir}  (all data)"
    assert "Total cost                 $0.0445" in output
    assert "2 unpriced calls (unknown model or no usage reported: `agentprof doctor` lists why)" in output
    assert "Steps by cost" in output and "\nModels" in output
    assert any(line.split()[:2] == ["triage", "draft"] and "$0.0300" in line for line in output.splitlines())


def test_report_markdown(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--format", "markdown", "--task", "triage")
    assert code == 0, output
    assert output.startswith("# agentprof report\n")
    assert "| Total cost | $0.0345 |" in output
    assert "(untracked)" not in output


def test_report_since(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--since", "2025-01-01T11:30", "--format", "json")
    assert code == 0, output
    data = json.loads(output)
    assert data["filters"] == {"since": "2025-01-01T11:30:00Z", "task": None}
    assert (data["summary"]["tasks"], data["summary"]["total_cost_usd"]) == (2, None)


def test_unknown_task_names_the_known_ones(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--task", "nope")
    assert code == 1
    assert output == "Error: no tasks named nope (known: (untracked), research, triage)\n"


def test_nothing_since(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--since", "2030-01-01")
    assert code == 1
    assert output == f"Error: no tasks or model calls since 2030-01-01 00:00 UTC in {store_dir}\n"
    code, output = report(runner, store_dir, "--since", "2030-01-01", "--task", "triage")
    assert (code, output) == (1, "Error: no tasks named triage since 2030-01-01 00:00 UTC\n")


def test_empty_store(runner: CliRunner, empty_store_dir: Path) -> None:
    code, output = report(runner, empty_store_dir)
    assert code == 1
    assert output.startswith("Error: no agentprof data at ") or output.startswith("Error: no tasks or model calls")
    assert len(output.splitlines()) == 1


def test_bad_since_is_a_usage_error(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--since", "yesterday")
    assert code == 2
    assert "'yesterday' is not a duration like 30m, 2h, 7d or 1w, or an ISO date/time" in output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_parse_since_durations(value: str, expected: timedelta) -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_since(value, now=now) == now - expected


def test_parse_since_dates() -> None:
    assert parse_since("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_since("2025-01-31T14:00+02:00") == datetime(2025, 1, 31, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a duration"):
        parse_since("2h ago")
