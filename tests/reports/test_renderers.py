from __future__ import annotations

import io
from decimal import Decimal

import pytest
from rich.console import Console

from agentprof.reports import Recommendation, Report, SavingsRange, render_markdown, render_text
from agentprof.reports import _format as fmt


def render(report: Report, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    render_text(report, console)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def lines_with(output: str, *words: str) -> list[str]:
    return [line for line in output.splitlines() if all(word in line for word in words)]


def test_text_summary_block(report: Report) -> None:
    output = render(report)
    assert output.splitlines()[0] == "agentprof report  .agentprof  (all data)"
    assert lines_with(output, "Tasks", "4 (1 failed)")
    assert lines_with(output, "Model calls", "8 (2 unpriced)")
    assert lines_with(output, "Total cost", "$0.0445")
    assert lines_with(output, "Cost per task", "mean $0.0115 · p50 $0.0010 · p95 $0.0303")
    assert lines_with(output, "Cost per successful task", "$0.0148")
    assert lines_with(output, "Task latency", "p50 1.50 s · p95 2.85 s")
    assert "2 unpriced calls (unknown model or no usage reported: `agentprof doctor` lists why)" in output


def test_text_steps_table_sorted_by_cost(report: Report) -> None:
    output = render(report)
    steps = output[output.index("Steps by cost") : output.index("\nModels")]
    rows = [
        line.split() for line in steps.splitlines() if line.strip().startswith(("triage", "(untracked)", "research"))
    ]
    assert [row[:2] for row in rows] == [
        ["triage", "draft"],
        ["(untracked)", "(task)"],
        ["triage", "classify"],
        ["triage", "(task)"],
        ["research", "search"],
        ["triage", "answer"],
    ]
    assert rows[0][2:4] == ["1", "claude-sonnet-4"]  # folded, never cut
    assert rows[0][4:] == "5,000 4,000 200 500 $0.0300 67.4% 350 ms 350 ms".split()
    assert "-20250514" in steps
    assert lines_with(steps, "triage", "answer", "unpriced")
    assert "Cache read" in steps


def test_narrow_console_keeps_names_and_money_whole(report: Report) -> None:
    output = render(report, width=80)
    steps = output[output.index("Steps by cost") : output.index("\nModels")]
    assert "Models" not in steps and "Cache read" not in steps and "p50" not in steps
    assert lines_with(steps, "(untracked)", "(task)", "1,000", "100", "$0.0100", "22.5%", "800 ms")
    assert lines_with(output, "anthropic", "claude-sonnet-4-20250514", "$0.0300")


def test_unpriced_counts_have_a_column_so_narrow_tables_keep_names_and_money_whole(report: Report) -> None:
    # "$0.0300 +1,154 unpriced" in the cost cell wrapped over two lines on an 80-column terminal.
    step = report.steps[0].model_copy(update={"unpriced_calls": 1154})
    model = report.models[0].model_copy(update={"unpriced_calls": 1154})
    narrow = report.model_copy(update={"steps": [step, *report.steps[1:]], "models": [model, *report.models[1:]]})
    output = render(narrow, width=80)
    steps = output[output.index("Steps by cost") : output.index("\nModels")]
    assert lines_with(steps, "Cost", "Unpriced")
    assert lines_with(steps, step.task, step.step, fmt.money(step.cost_usd), "1,154")
    assert lines_with(steps, "(untracked)", "(task)", "$0.0100")
    assert lines_with(output, model.provider or "?", fmt.money(model.cost_usd), "1,154")
    assert "+1,154 unpriced" not in output and "Unpriced" not in render(report, width=80)  # no mixed row there


def test_a_narrow_console_leaves_out_the_share_before_it_folds_a_name(report: Report) -> None:
    # The demo's report at 80 columns folded "triage_ticket" over two lines once the Unpriced
    # column showed: the table was a few characters too wide.
    steps = [
        step.model_copy(update={"task": "triage_ticket", "unpriced_calls": 1 if number == 0 else 0})
        for number, step in enumerate(report.steps)
    ]
    first = report.models[0].model_copy(update={"unpriced_calls": 12})  # claude-sonnet-4-20250514
    models = [first, *report.models[1:]]
    narrow = report.model_copy(update={"steps": steps, "models": models})
    output = render(narrow, width=80)
    table = output[output.index("Steps by cost") : output.index("\nModels")]
    assert lines_with(table, "Task", "Step", "Cost", "Unpriced", "p95") and "Share" not in table
    for step in steps:
        assert lines_with(table, step.task, step.step, fmt.money(step.cost_usd), fmt.duration(step.latency_ms.p95))
    models_part = output[output.index("\nModels") : output.index("Recommendations")]
    assert "Share" not in models_part
    assert lines_with(models_part, first.provider or "?", first.model or "?", fmt.money(first.cost_usd), "12")
    assert max(len(line.rstrip()) for line in output.splitlines()) <= 80
    wide = render(narrow, width=120)  # the share stays where it fits
    assert "Share" in wide[wide.index("Steps by cost") : wide.index("\nModels")]


def test_text_models_table(report: Report) -> None:
    output = render(report)
    models = output[output.index("\nModels") :]
    assert lines_with(models, "openai", "gpt-4o-mini", "4", "4,000", "400", "$0.0045", "10.1%")
    assert lines_with(models, "vllm", "my-local-llm", "2", "unpriced")


def test_markdown(report: Report) -> None:
    text = render_markdown(report)
    assert text.startswith("# agentprof report\n")
    assert "| Total cost | $0.0445 |" in text
    assert "> 2 unpriced calls (unknown model or no usage reported: `agentprof doctor` lists why)" in text
    assert (
        "| triage | draft | 1 | claude-sonnet-4-20250514 | 5,000 | 4,000 | 200 | 500 | $0.0300 | 67.4% "
        "| 350 ms | 350 ms |" in text
    )
    assert "| vllm | my-local-llm | 2 | 2,000 | 200 | unpriced +2 unpriced | |" not in text
    assert "| vllm | my-local-llm | 2 | 2,000 | 200 | unpriced |  |" in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "unpriced"),
        (Decimal(0), "$0.0000"),
        (Decimal("0.0123"), "$0.0123"),
        (Decimal("0.00005"), "$0.000050"),
        (Decimal("0.0000123"), "$0.000012"),
        (Decimal("1234.56789"), "$1,234.5679"),
    ],
)
def test_money_format(value: Decimal | None, text: str) -> None:
    assert fmt.money(value) == text


def test_other_formats() -> None:
    assert fmt.tokens(1234567) == "1,234,567"
    assert fmt.money_with_unpriced(Decimal("0.012"), 2) == "$0.0120 +2 unpriced"
    assert fmt.money_with_unpriced(None, 2) == "unpriced"
    assert [fmt.duration(ms) for ms in (None, 850.0, 1500.0, 12345.0, 245000.0)] == [
        "-",
        "850 ms",
        "1.50 s",
        "12.3 s",
        "4m 05s",
    ]


def test_a_recommendation_promising_no_money_says_so_instead_of_zero_dollars(report: Report) -> None:
    trim = Recommendation(
        kind="context_growth",
        task="support",
        step="agent_loop",
        estimated_savings_usd=Decimal(0),
        savings_range_usd=SavingsRange(low=Decimal(0), high=Decimal(0)),
        confidence="low",
        suggestion="Loop in step 'agent_loop' re-sends 6.9x its new input: compact or trim old turns",
    )
    cache = trim.model_copy(
        update={
            "kind": "prompt_cache",
            "estimated_savings_usd": Decimal("0.0000004"),
            "savings_range_usd": SavingsRange(low=Decimal(0), high=Decimal("0.0000004")),
        }
    )
    unpriced = trim.model_copy(update={"kind": "exact_cache", "estimated_savings_usd": None, "savings_range_usd": None})
    shown = report.model_copy(update={"recommendations": [trim, cache, unpriced]})
    text = render(shown)
    assert lines_with(text, "no $ estimate · low confidence")
    assert "$0.0000 ·" not in text
    assert lines_with(text, "saves $0.00000040 ($0.0000-$0.00000040)")  # tiny, not zero
    assert lines_with(text, "saves unpriced")
    markdown = render_markdown(shown)
    assert "| 1 | context_growth | support / agent_loop | no $ estimate | low |" in markdown
    assert "| 2 | prompt_cache | support / agent_loop | $0.00000040 ($0.0000-$0.00000040) | low |" in markdown


def _many(report: Report, steps: int, recommendations: int) -> Report:
    """``report`` with ``steps`` step rows (most expensive first) and ``recommendations`` findings."""
    step = report.steps[0]
    rows = [
        step.model_copy(update={"step": f"step-{n:02d}", "model_calls": n + 1, "cost_usd": Decimal(100 - n) / 100})
        for n in range(steps)
    ]
    finding = Recommendation(
        kind="exact_cache", task="triage", estimated_savings_usd=Decimal(1), confidence="high", suggestion="Cache it"
    )
    found = [
        finding.model_copy(update={"step": f"step-{n:02d}", "estimated_savings_usd": Decimal(50 - n) / 1000})
        for n in range(recommendations)
    ]
    model = report.models[0]
    models = [model.model_copy(update={"model": f"model-{n:02d}", "model_calls": n + 1}) for n in range(steps)]
    return report.model_copy(update={"steps": rows, "models": models, "recommendations": found})


def test_thousands_of_steps_show_the_costliest_and_sum_the_rest(report: Report) -> None:
    many = _many(report, steps=40, recommendations=30)
    hidden_steps = many.steps[25:]
    hidden_cost = sum((step.cost_usd or Decimal(0) for step in hidden_steps), Decimal(0))
    hidden_savings = sum((item.estimated_savings_usd or Decimal(0) for item in many.recommendations[20:]), Decimal(0))
    more_recommendations = f"… 10 more recommendations, saving {fmt.money(hidden_savings)} together"

    text = render(many, width=160)
    assert len(lines_with(text, "triage", "step-")) == 25 + 20  # table rows, then recommendations
    [summary] = lines_with(text, "15 more steps")
    cells = summary.split()
    assert cells[:5] == ["…", "15", "more", "steps", f"{sum(step.model_calls for step in hidden_steps):,}"]
    assert fmt.money(hidden_cost) in cells
    assert more_recommendations in " ".join(text.split())

    markdown = render_markdown(many)
    assert markdown.count("| triage | step-") == 25
    assert f"| … | 15 more steps | {sum(step.model_calls for step in hidden_steps):,} |" in markdown
    assert f"| {fmt.money(hidden_cost)} |" in markdown
    assert more_recommendations in markdown
    assert markdown.count("| exact_cache |") == 20
    hidden_model_calls = sum(model.model_calls for model in many.models[25:])
    assert f"| … | 15 more models | {hidden_model_calls:,} |" in markdown
    assert lines_with(text, "…", "15 more models", f"{hidden_model_calls:,}")

    few = _many(report, steps=30, recommendations=25)  # hiding five or fewer would not help: all shown
    assert render_markdown(few).count("| triage | step-") == 30
    assert "more steps" not in render(few) and "more recommendations" not in render(few)


def test_a_steps_table_of_per_call_names_says_so(report: Report) -> None:
    scattered = _many(report, steps=1200, recommendations=0)  # 1 to 1,200 calls: 600 on average
    calls = sum(step.model_calls for step in scattered.steps)
    three_each = [step.model_copy(update={"model_calls": 3}) for step in scattered.steps]
    per_call = scattered.model_copy(update={"steps": three_each})
    note = "1,200 (task, step) pairs for 3,600 model calls: task or step names that carry an id"

    assert note in " ".join(render(per_call).split())
    assert f"> {note}" in render_markdown(per_call)
    assert calls > 10 * 1200 and "(task, step) pairs" not in render_markdown(scattered)
