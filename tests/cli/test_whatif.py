"""``agentprof whatif`` on the hand-computed store of ``tests/analytics/_data.py``.

The ``classify`` step there is three gpt-4o-mini calls (1,000 input and 100 output tokens each,
recorded at $0.001, $0.002 and $0.001) in two triage tasks. On gpt-4o at its 2025-01-01 price
($2.50 / $10 per million) each costs $0.0025 + $0.001 = $0.0035.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from agentprof._config import resolve_store_location
from agentprof._usage import CanonicalUsage
from agentprof.cli import main
from agentprof.pricing import ModelRef, price_call, resolve_model
from agentprof.store import open_store
from agentprof.store.schema import model_calls
from tests.analytics._data import random_calls


def whatif(runner: CliRunner, store_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(main, ["whatif", "--db", str(store_dir), *args])
    return result.exit_code, result.output


def test_json_reprices_the_step_with_the_same_tokens(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "classify", "--model", "gpt-4o", "--format", "json")
    assert code == 0, output
    data = json.loads(output)
    assert data == {
        "step": "classify",
        "task": None,
        "since": None,
        "target_provider": "openai",
        "target_model": "gpt-4o",
        "priced_as": "gpt-4o",
        "current_models": ["gpt-4o-mini"],
        "token_spread": 0.15,
        "calls": 3,
        "unpriced_calls": 0,
        "tasks": 2,
        "current_cost_usd": 0.004,
        "whatif_cost_usd": 0.0105,
        "whatif_range_usd": [0.008925, 0.012075],
        "difference_usd": 0.0065,
        "difference_share": 1.625,
        "mean_per_task": {"current_usd": 0.002, "whatif_usd": 0.00525, "whatif_range_usd": [0.0044625, 0.0060375]},
        "by_task_name": [
            {
                "task": "triage",
                "tasks": 2,
                "calls": 3,
                "unpriced_calls": 0,
                "current_cost_usd": 0.004,
                "whatif_cost_usd": 0.0105,
                "whatif_range_usd": [0.008925, 0.012075],
                "mean_current_usd": 0.002,
                "mean_whatif_usd": 0.00525,
            }
        ],
    }


def test_text_shows_old_and_new_cost_per_task(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "classify", "--model", "gpt-4o")
    assert code == 0, output
    lines = [line.rstrip() for line in output.splitlines()]
    assert lines[0] == "What if step 'classify' ran on gpt-4o (openai) instead of gpt-4o-mini?"
    assert (
        lines[1]
        == "3 priced calls in 2 tasks re-priced with the same token counts; range +/-15% for tokenizer differences."
    )
    row = next(line for line in lines if line.lstrip().startswith("triage"))
    assert row.split() == ["triage", "2", "3", "$0.0020", "$0.0053", "$0.0040", "$0.0105"]
    assert (
        " ".join(lines[-3:]).split()
        == (
            "Difference: +$0.0065 (+162.5%) in total, +$0.0033 per task; what-if total $0.0089-$0.0121 with "
            "tokenizer differences. Same answers assumed: validate on a sample of recorded inputs before switching."
        ).split()
    )
    assert "Traceback" not in output


def test_a_cheaper_model_is_a_negative_difference_and_spread_is_configurable(
    runner: CliRunner, store_dir: Path
) -> None:
    args = ("--step", "classify", "--model", "gpt-4.1-nano", "--token-spread", "0.5", "--format", "json")
    code, output = whatif(runner, store_dir, *args)
    assert code == 0, output
    data = json.loads(output)
    assert data["whatif_cost_usd"] == 3 * (1000 * 0.1 + 100 * 0.4) / 1e6
    assert data["whatif_range_usd"] == [0.00021, 0.00063]
    assert data["difference_usd"] < 0


def test_unpriced_calls_are_counted_not_zero(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "answer", "--model", "gpt-4o", "--format", "json")
    assert code == 0, output
    data = json.loads(output)
    assert (data["calls"], data["unpriced_calls"], data["target_provider"]) == (0, 1, "openai")
    code, output = whatif(runner, store_dir, "--step", "answer", "--model", "gpt-4o")
    assert "Not included: 1 unpriced call" in output


def test_several_task_names_get_a_total_row(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "(task)", "--model", "gpt-4.1")
    assert code == 0, output
    names = [
        line.split()[0] for line in output.splitlines() if line.lstrip().startswith(("(untracked)", "triage", "all"))
    ]
    assert names == ["(untracked)", "triage", "all"]


def test_task_filter_applies(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "classify", "--model", "gpt-4o", "--task", "research")
    assert code == 1
    assert output == "Error: no model calls in a step named 'classify' (known steps: search)\n"


def test_unknown_step_lists_the_known_ones(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "nope", "--model", "gpt-4o")
    assert code == 1
    assert (
        output
        == "Error: no model calls in a step named 'nope' (known steps: (task), answer, classify, draft, search)\n"
    )


def test_unknown_model_is_one_line_saying_what_to_do(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--step", "classify", "--model", "gpt-9-ultra")
    assert code == 1
    assert output.startswith("Error: genai-prices has no price for model 'gpt-9-ultra' for provider openai: ")
    assert "--provider" in output and len(output.strip().splitlines()) == 1


def test_step_and_model_are_required(runner: CliRunner, store_dir: Path) -> None:
    code, output = whatif(runner, store_dir, "--model", "gpt-4o")
    assert code == 2
    assert "Missing option '--step'" in output


def test_missing_store_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    code, output = whatif(runner, tmp_path / "missing", "--step", "classify", "--model", "gpt-4o")
    assert code == 1
    assert output.startswith("Error: no agentprof data at ")


# --- many calls: the grouped re-pricing against pricing each call on its own -------------------


def _priced_one_by_one(conn: sa.Connection, target: ModelRef, since: datetime | None) -> dict[str, Any]:
    """What ``whatif --step plan`` must say, each call priced by ``price_call`` at its own start time."""
    cost_text = sa.cast(model_calls.c.cost_usd, sa.String).label("cost_text")  # exact: not through a float
    rows = conn.execute(sa.select(model_calls, cost_text).where(model_calls.c.step_name == "plan")).mappings().all()
    names: dict[str, dict[str, Any]] = {}
    for row in rows:
        if since is not None and row["start_time"] < since:
            continue
        empty = {"calls": 0, "unpriced": 0, "now": Decimal(0), "new": Decimal(0), "tasks": set()}
        totals = names.setdefault(row["task_name"], empty)
        if not row["priced"] or not row["usage_known"]:
            totals["unpriced"] += 1
            continue
        usage = CanonicalUsage(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_read_tokens=row["cache_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            cache_write_5m_tokens=row["cache_write_5m_tokens"],
            cache_write_1h_tokens=row["cache_write_1h_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
        )
        when = datetime.fromtimestamp(row["start_time_ns"] / 1e9, UTC)
        price = price_call(usage, target, timestamp=when)
        assert price.cost_usd is not None
        totals["calls"] += 1
        totals["now"] += Decimal(row["cost_text"])
        totals["new"] += price.cost_usd
        totals["tasks"].add(row["task_id"] or row["span_id"])
    return names


@pytest.mark.parametrize(
    ("target", "since"),
    [
        (("anthropic", "claude-sonnet-4-6"), None),
        (("deepseek", "deepseek-chat"), None),
        (("openai", "gpt-4.1-nano"), datetime(2026, 3, 13, 12, 0)),
    ],
)
def test_grouped_repricing_equals_pricing_every_call(
    runner: CliRunner, tmp_path: Path, target: tuple[str, str], since: datetime | None
) -> None:
    directory = tmp_path / "store"
    with open_store(resolve_store_location(directory), create=True) as store, store.engine.begin() as conn:
        random_calls(conn, random.Random(6))
        expected = _priced_one_by_one(conn, resolve_model(*target), since)
    provider, model = target
    args = ["--step", "plan", "--model", model, "--provider", provider, "--format", "json"]
    if since is not None:
        args += ["--since", since.isoformat()]
    code, output = whatif(runner, directory, *args)
    assert code == 0, output
    data = json.loads(output)
    by_name = {row["task"]: row for row in data["by_task_name"]}
    assert sorted(by_name) == sorted(expected) == ["(untracked)", "alpha", "beta"]
    for name, totals in expected.items():
        row = by_name[name]
        counts = (totals["calls"], totals["unpriced"], len(totals["tasks"]))
        assert (row["calls"], row["unpriced_calls"], row["tasks"]) == counts
        assert row["current_cost_usd"] == float(totals["now"])
        assert row["whatif_cost_usd"] == float(totals["new"])
    new_total = sum((totals["new"] for totals in expected.values()), Decimal(0))
    assert data["whatif_cost_usd"] == float(new_total)
    assert data["calls"] == sum(totals["calls"] for totals in expected.values())
    assert data["tasks"] == len(set().union(*(totals["tasks"] for totals in expected.values())))
