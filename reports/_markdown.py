"""The report as GitHub-flavoured Markdown (for PR comments and CI summaries)."""

from __future__ import annotations

from . import _cut
from . import _format as fmt
from ._model import Report
from ._text import NO_RECOMMENDATIONS, projection_line, savings, where


def render_markdown(report: Report) -> str:
    """Return ``report`` as Markdown: a summary table, steps and models tables, then recommendations."""
    numbers = report.summary
    lines = [
        "# agentprof report",
        "",
        f"Store `{report.store.location}` · {fmt.selection(report.filters)} · generated "
        f"{fmt.timestamp(report.generated_at)}",
        "",
        "| | |",
        "|---|---:|",
        f"| Tasks | {numbers.tasks:,} ({numbers.failed_tasks:,} failed) |",
        f"| Model calls | {numbers.model_calls:,} ({numbers.unpriced_calls:,} unpriced) |",
        f"| Total cost | {fmt.money(numbers.total_cost_usd)} |",
    ]
    per_task = numbers.cost_per_task_usd
    if per_task.mean is not None:
        lines.append(
            f"| Cost per task | mean {fmt.money(per_task.mean)} · p50 {fmt.money(per_task.p50)}"
            f" · p95 {fmt.money(per_task.p95)} |"
        )
    if numbers.cost_per_successful_task_usd is not None:
        lines.append(f"| Cost per successful task | {fmt.money(numbers.cost_per_successful_task_usd)} |")
    if numbers.task_latency_ms.p50 is not None:
        lines.append(
            f"| Task latency | p50 {fmt.duration(numbers.task_latency_ms.p50)}"
            f" · p95 {fmt.duration(numbers.task_latency_ms.p95)} |"
        )
    if numbers.unpriced_calls:
        lines += ["", f"> {fmt.unpriced_note(numbers.unpriced_calls)}"]
    if report.steps:
        lines += [
            "",
            "## Steps by cost",
            "",
            "| Task | Step | Calls | Models | Input | Cache read | Cache write | Output | Cost | Share | p50 | p95 |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for step in _cut.steps(report.steps):
            cells = [
                _cell(step.task),
                _cell(step.step),
                f"{step.model_calls:,}",
                _cell(", ".join(step.models)),
                fmt.tokens(step.input_tokens),
                fmt.tokens(step.cache_read_tokens),
                fmt.tokens(step.cache_write_tokens),
                fmt.tokens(step.output_tokens),
                fmt.money_with_unpriced(step.cost_usd, step.unpriced_calls),
                fmt.share(step.share),
                fmt.duration(step.latency_ms.p50),
                fmt.duration(step.latency_ms.p95),
            ]
            lines.append(_row(cells))
        note = _cut.steps_note(report.steps)
        if note is not None:
            lines += ["", f"> {note}"]
    if report.models:
        lines += [
            "",
            "## Models",
            "",
            "| Provider | Model | Calls | Input | Output | Cost | Share |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for model in _cut.models(report.models):
            cells = [
                _cell(model.provider or "?"),
                _cell(model.model or "?"),
                f"{model.model_calls:,}",
                fmt.tokens(model.input_tokens),
                fmt.tokens(model.output_tokens),
                fmt.money_with_unpriced(model.cost_usd, model.unpriced_calls),
                fmt.share(model.share),
            ]
            lines.append(_row(cells))
    lines += ["", "## Recommendations", ""]
    if report.recommendations:
        lines += ["| # | Kind | Where | Saves | Confidence | Suggestion |", "|---:|---|---|---:|---|---|"]
        shown, others = _cut.recommendations(report.recommendations)
        for number, item in enumerate(shown, start=1):
            cells = [str(number), item.kind, _cell(where(item)), savings(item), item.confidence, _cell(item.suggestion)]
            lines.append(_row(cells))
        if others is not None:
            lines += ["", others]
    else:
        lines.append(NO_RECOMMENDATIONS)
    if report.recommendations_basis is not None:
        lines += ["", fmt.basis_note(report.recommendations_basis)]
    if report.projection is not None:
        lines += ["", projection_line(report.projection)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Escape what would break a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
