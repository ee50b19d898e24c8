"""``agentprof whatif`` on the hand-computed store of ``tests/analytics/_data.py``.

The ``classify`` step there is three gpt-4o-mini calls (1,000 input and 100 output tokens each,
recorded at $0.001, $0.002 and $0.001) in two triage tasks. On gpt-4o at its 2025-01-01 price
($2.50 / $10 per million) each costs $0.0025 + $0.001 = $0.0035.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agentprof.cli import main


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
