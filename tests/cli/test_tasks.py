from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agentprof.cli import main
from tests.analytics._data import T1, T2, T3, T4

TASK_KEYS = {
    "task_id",
    "name",
    "started_at",
    "duration_ms",
    "status",
    "error_type",
    "model_calls",
    "unpriced_calls",
    "cost_usd",
    "input_tokens",
    "output_tokens",
}


def test_tasks_text(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["tasks", "--db", str(store_dir)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()[:4] in ("a1a1", "c3c3", "d4d4")]
    assert [row[0] for row in rows] == [T4[:12], T3[:12], T2[:12], T1[:12]]
    assert rows[3] == [T1[:12], "triage", "2025-01-01", "10:00:00", "ok", "4", "$0.0335", "1.00", "s"]
    assert rows[2][4:] == ["failed", "2", "$0.0010", "+1", "unpriced", "3.00", "s"]
    assert rows[0][4:] == ["ok", "1", "unpriced", "500", "ms"]


def test_tasks_text_on_an_80_column_terminal_cuts_no_value(store_dir: Path) -> None:
    # At 80 columns (a terminal's default, and any pipe) the one-line table was wider than the console
    # and rich cut every row: $0.0335 read "$0.03", "unpriced" "unpric", and the duration was gone.
    # The table now takes a layout that fits: here the start time and the unpriced count on a 2nd line.
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["tasks", "--db", str(store_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80
    at = {line.split()[0]: index for index, line in enumerate(lines) if line.strip()[:4] in ("a1a1", "c3c3", "d4d4")}
    assert lines[at[T1[:12]]].split() == [T1[:12], "triage", "2025-01-01", "ok", "4", "$0.0335", "1.00", "s"]
    assert lines[at[T1[:12]] + 1].split() == ["10:00:00"]
    assert lines[at[T4[:12]]].split()[-3:] == ["unpriced", "500", "ms"]
    assert lines[at[T2[:12]]].split()[-3:] == ["$0.0010", "3.00", "s"]
    assert lines[at[T2[:12]] + 1].split() == ["11:00:00", "+1", "unpriced"]


def test_tasks_json_filters_and_limit(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["tasks", "--db", str(store_dir), "--task", "triage", "--limit", "1", "-f", "json"])
    assert result.exit_code == 2  # no -f short option
    result = runner.invoke(
        main, ["tasks", "--db", str(store_dir), "--task", "triage", "--limit", "1", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"schema_version", "store", "filters", "tasks"}
    (task,) = data["tasks"]
    assert set(task) == TASK_KEYS
    assert (task["task_id"], task["status"], task["cost_usd"], task["unpriced_calls"], task["error_type"]) == (
        T2,
        "failed",
        0.001,
        1,
        "ValueError",
    )
    assert task["started_at"] == "2025-01-01T11:00:00Z"


def test_tasks_unknown_name(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["tasks", "--db", str(store_dir), "--task", "nope"])
    assert (result.exit_code, result.output) == (
        1,
        "Error: no tasks named nope (known: (untracked), research, triage)\n",
    )


def test_show_tree(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["show", T1[:9], "--db", str(store_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"triage  {T1}  ok  $0.0335  1.00 s  4 calls"
    assert lines[1].startswith("├── classify  $0.0030  300 ms  2 calls")
    assert "openai gpt-4o-mini  $0.0010  100 ms  1,000 in / 100 out" in lines[2]
    assert any("answer  $0.0300  500 ms  1 call" in line for line in lines)
    assert any("draft  $0.0300  400 ms  1 call" in line for line in lines), "nested step under answer"
    assert any(
        "anthropic claude-sonnet-4-20250514  $0.0300  350 ms  5,000 in / 500 out (4,000 cached)" in line
        for line in lines
    )
    assert lines[-1].startswith("└── openai gpt-4o-mini  $0.0005  50 ms")


def test_show_unpriced_and_json(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["show", T4, "--db", str(store_dir)])
    assert result.exit_code == 0, result.output
    assert "search [tool]  unpriced  400 ms  1 call" in result.output
    assert "vllm my-local-llm  unpriced  250 ms" in result.output
    assert "1 unpriced call (unknown model or no usage reported: `agentprof doctor` lists why)" in result.output

    result = runner.invoke(main, ["show", T1, "--db", str(store_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"schema_version", "store", "task", "children"}
    assert data["task"]["cost_usd"] == 0.0335
    classify, answer, call = data["children"]
    assert (classify["kind"], classify["cost_usd"], [c["span_id"] for c in classify["children"]]) == (
        "step",
        0.003,
        ["c1", "c2"],
    )
    assert answer["children"][0]["name"] == "draft"
    assert answer["children"][0]["children"][0]["cost_usd"] == 0.03
    assert (call["kind"], call["span_id"], call["cost_usd"]) == ("model_call", "c4", 0.0005)


def test_show_unknown_and_ambiguous_ids(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["show", "ffff", "--db", str(store_dir)])
    assert (result.exit_code, result.output) == (
        1,
        "Error: no task with id 'ffff': see `agentprof tasks` for recent ones\n",
    )
    result = runner.invoke(main, ["show", "a1a1", "--db", str(store_dir)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: task id 'a1a1' is ambiguous: it starts a1a1a1a1a1a1a1a1, a1a1a1a1b2b2b2b2")
    assert len(result.output.splitlines()) == 1


def test_tasks_of_untracked_calls_only(runner: CliRunner, store_dir: Path) -> None:
    result = runner.invoke(main, ["tasks", "--db", str(store_dir), "--task", "(untracked)"])
    assert (result.exit_code, result.output) == (
        0,
        "No tasks in this selection (task (untracked)): only untracked model calls.\n",
    )
