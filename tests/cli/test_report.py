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
        "recommendations_basis",
        "projection",
    }
    assert data["store"] == {"location": str(store_dir), "dialect": "duckdb"}
    assert data["summary"]["total_cost_usd"] == 0.0445
    assert data["summary"]["cost_per_task_usd"] == {"mean": 0.0115, "p50": 0.001, "p95": 0.03025}
    assert [(step["task"], step["step"]) for step in data["steps"]][:2] == [
        ("triage", "draft"),
        ("(untracked)", "(task)"),
    ]
    assert data["recommendations"] == []
    assert data["projection"] is None


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


def _repeat_a_request(store_dir: Path) -> None:
    """Make c2 (triage/classify, $0.002) an exact repeat of c1 in the same task: one exact_cache finding."""
    import sqlalchemy as sa

    from agentprof._config import resolve_store_location
    from agentprof.store import open_store
    from agentprof.store.schema import model_calls

    with open_store(resolve_store_location(store_dir)) as store, store.engine.begin() as conn:
        conn.execute(
            model_calls.update()
            .where(model_calls.c.span_id.in_(["c1", "c2"]))
            .values(request_fingerprint="same", output_hash="answer", temperature=sa.literal(0.7))
        )


def test_report_recommendations_and_projection(runner: CliRunner, store_dir: Path) -> None:
    _repeat_a_request(store_dir)
    code, output = report(runner, store_dir, "--format", "json", "--tasks-per-day", "100")
    assert code == 0, output
    data = json.loads(output)
    [recommendation] = data["recommendations"]
    assert {key: recommendation[key] for key in ("kind", "task", "step", "model", "confidence")} == {
        "kind": "exact_cache",
        "task": "triage",
        "step": "classify",
        "model": "gpt-4o-mini",
        "confidence": "medium",
    }
    assert recommendation["estimated_savings_usd"] == 0.002
    assert recommendation["savings_range_usd"] == {"low": 0.001, "high": 0.002}
    assert recommendation["current_cost_usd"] == 0.003
    assert recommendation["evidence"]["repeats"] == 1
    # Mean $0.0115 per task x 100 x 30; savings $0.002 over 4 tasks x 100 x 30.
    assert data["projection"] == {
        "tasks_per_day": 100,
        "monthly_cost_usd": 34.5,
        "monthly_cost_after_usd": 33.0,
        "monthly_savings_usd": 1.5,
    }


def test_report_text_and_markdown_recommendations(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir)
    assert code == 0, output
    assert "No recommendations: no rule found waste in this selection." in output
    _repeat_a_request(store_dir)
    code, output = report(runner, store_dir, "--tasks-per-day", "100")
    assert code == 0, output
    assert "Recommendations" in output
    lines = output.splitlines()
    header = next(number for number, line in enumerate(lines) if "exact_cache" in line)
    assert lines[header].split()[:3] == ["1.", "exact_cache", "triage"]
    assert "saves $0.0020 ($0.0010-$0.0020) · medium confidence" in lines[header + 1]
    assert (
        "At 100 tasks/day: $34.5000/month now, $33.0000/month after the high- and medium-confidence "
        "recommendations (saves $1.5000/month)." in " ".join(output.split())
    )
    code, output = report(runner, store_dir, "--format", "markdown")
    assert code == 0, output
    assert "## Recommendations" in output
    assert "| 1 | exact_cache | triage / classify (gpt-4o-mini) | $0.0020 ($0.0010-$0.0020) | medium |" in output


def test_narrow_terminals_get_one_readable_block_per_recommendation(store_dir: Path) -> None:
    _repeat_a_request(store_dir)
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["report", "--db", str(store_dir)])
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    header = lines.index(" 1. exact_cache  triage / classify (gpt-4o-mini)")
    assert lines[header + 1] == "    saves $0.0020 ($0.0010-$0.0020) · medium confidence"
    assert lines[header + 2].startswith("    Cache responses of step 'classify': 1 of 2 requests repeated")
    assert max(len(line) for line in lines) <= 80


def test_bad_rules_config_is_one_error_line(
    runner: CliRunner, store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.agentprof.rules.exact_cache]\nwindow_hours = -1\n")
    monkeypatch.chdir(project)
    code, output = report(runner, store_dir)
    assert code == 1
    assert output == (
        f"Error: {project / 'pyproject.toml'}: [tool.agentprof.rules] exact_cache.window_hours: "
        "Input should be greater than 0\n"
    )


def test_tasks_per_day_must_be_positive(runner: CliRunner, store_dir: Path) -> None:
    code, output = report(runner, store_dir, "--tasks-per-day", "0")
    assert code == 2
    assert "--tasks-per-day" in output
