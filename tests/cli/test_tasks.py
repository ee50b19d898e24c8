from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from agentprof._config import resolve_store_location
from agentprof.cli import main
from agentprof.store import open_store
from tests.analytics._data import T1, T2, T3, T4, add_call, add_span, add_task

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
    assert set(data) == {"schema_version", "store", "task", "children", "flat_below_depth"}
    assert data["flat_below_depth"] is None
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


def _long_run_store(directory: Path) -> list[str]:
    """A task whose ``loop`` step holds 60 children: 59 calls (every 7th unpriced) and, 31st, a nested
    ``retry`` step with two calls. Returns the children's costs as recorded ("" for unpriced)."""
    start = datetime(2025, 3, 1, 9, 0)
    costs: list[str] = []
    with open_store(resolve_store_location(directory), create=True) as store, store.engine.begin() as conn:
        task = "long0000long0000"
        add_task(conn, task, "research", start, 60_000.0, True)
        add_span(conn, "loop", task, "step", "loop", task, "research", "loop", start, 59_000)
        for n in range(60):
            at = start + timedelta(seconds=n)
            if n == 30:
                add_span(conn, "retry", "loop", "step", "retry", task, "research", "retry", at, 900.0)
                for k, cost in enumerate(("0.25", None)):
                    add_call(conn, f"retry{k}", parent="retry", task_id=task, task_name="research",
                             step_name="retry", start=at, duration_ms=400.0, provider="openai", model="gpt-4o",
                             cost=cost)  # fmt: skip
                costs.append("0.25+unpriced")
                continue
            cost = None if n % 7 == 0 else f"0.{n:02d}"
            add_call(conn, f"call{n:02d}", parent="loop", task_id=task, task_name="research",
                     step_name="loop", start=at, duration_ms=500.0, provider="openai", model="gpt-4o",
                     cost=cost)  # fmt: skip
            costs.append(cost or "")
    return costs


def test_show_sums_the_middle_of_a_long_run_and_all_shows_it(runner: CliRunner, tmp_path: Path) -> None:
    costs = _long_run_store(tmp_path / "store")
    hidden = costs[20:-5]
    hidden_cost = sum(Decimal(cost.split("+")[0]) for cost in hidden if cost)
    hidden_unpriced = sum(1 for cost in hidden if not cost or "unpriced" in cost)
    hidden_calls = len(hidden) + 1  # the nested step holds two calls

    result = runner.invoke(main, ["show", "long0000", "--db", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    under_loop = [line for line in result.output.splitlines() if line.startswith("    ")]
    assert len(under_loop) == 20 + 1 + 5
    assert "openai gpt-4o  $0.0100" in under_loop[1] and "openai gpt-4o  $0.5900" in under_loop[-1]
    summary = f"… {len(hidden)} more  ${hidden_cost:.4f} +{hidden_unpriced} unpriced  {hidden_calls} calls"
    assert under_loop[20].split("── ", 1)[1] == summary + "  (--all shows them)"
    assert "retry" not in result.output

    result = runner.invoke(main, ["show", "long0000", "--db", str(tmp_path / "store"), "--all"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "more" not in result.output and any("retry  $0.2500 +1 unpriced" in line for line in lines)
    assert sum(1 for line in lines if line.startswith("    ") and "openai gpt-4o" in line) == 59 + 2  # retry's two

    result = runner.invoke(main, ["show", "long0000", "--db", str(tmp_path / "store"), "--format", "json"])
    assert len(json.loads(result.output)["children"][0]["children"]) == 60


def _nested_store(directory: Path, depth: int) -> None:
    """A recursive task: ``depth`` steps each inside the one before, one priced call in the deepest."""
    start = datetime(2025, 3, 1, 9, 0)
    task = "deep0000deep0000"
    with open_store(resolve_store_location(directory), create=True) as store, store.engine.begin() as conn:
        add_task(conn, task, "recurse", start, 1_000.0, True)
        parent = task
        for n in range(depth):
            add_span(conn, f"level{n}", parent, "step", f"level{n}", task, "recurse", f"level{n}", start, 10.0)
            parent = f"level{n}"
        add_call(conn, "deepest", parent=parent, task_id=task, task_name="recurse", step_name=f"level{depth - 1}",
                 start=start, duration_ms=5.0, provider="openai", model="gpt-4o", cost="0.01")  # fmt: skip


def test_a_recursion_deeper_than_python_allows_is_listed_flat_below_a_depth(tmp_path: Path) -> None:
    _nested_store(tmp_path / "store", 1200)  # the tree used to be built recursively: RecursionError
    runner = CliRunner(env={"COLUMNS": "80"})

    result = runner.invoke(main, ["show", "deep0000", "--db", str(tmp_path / "store"), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["flat_below_depth"] == 64
    node, depth = data["children"][0], 1
    while node["children"] and node["children"][0]["kind"] == "step" and len(node["children"]) == 1:
        node, depth = node["children"][0], depth + 1
    assert (depth, node["name"]) == (64, "level63")
    flat = node["children"]
    assert [child["name"] for child in flat[:-1]] == [f"level{n}" for n in range(64, 1200)]
    assert all(child["children"] == [] for child in flat[:-1])
    assert (flat[-1]["kind"], flat[-1]["span_id"], flat[-1]["cost_usd"]) == ("model_call", "deepest", 0.01)
    assert node["model_calls"] == 1 and data["task"]["cost_usd"] == 0.01

    result = runner.invoke(main, ["show", "deep0000", "--db", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.lstrip("│ └├─").startswith("level9  $0.0100") for line in lines)
    assert "level10" in result.output and "more  $0.0000  0 calls" in result.output  # flat: cut and summed
    assert "Steps nested deeper than 10 levels are listed flat under level 10" in " ".join(result.output.split())
    assert "openai gpt-4o  $0.0100" in result.output
