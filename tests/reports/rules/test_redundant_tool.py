from __future__ import annotations

from decimal import Decimal

from agentprof.reports.rules._base import ResidualLedger
from agentprof.reports.rules._config import RedundantToolConfig, RulesConfig
from tests.reports.rules._call_factory import call, run, tool

# gpt-4o output: $10 per million tokens, so 1,000 output tokens cost $0.01.


def agent(task: str = "t1", start: float = 0.0) -> tuple[list, list]:
    calls = [
        call(f"{task}-c1", at=start, task=task, step="agent", output_tokens=1000, cost="0.02", fingerprint=f"{task}1"),
        call(f"{task}-c2", at=start + 2, task=task, step="agent", output_tokens=1000, cost="0.02",
             fingerprint=f"{task}2"),
        call(f"{task}-c3", at=start + 4, task=task, step="agent", output_tokens=1000, cost="0.02",
             fingerprint=f"{task}3"),
    ]  # fmt: skip
    tools = [
        tool(f"{task}-s1", at=start + 1, task=task, args="weather-paris", result="sunny"),
        tool(f"{task}-s2", at=start + 3, task=task, args="weather-paris", result="sunny"),  # issued by c2
        tool(f"{task}-s3", at=start + 3.5, task=task, args="weather-rome", result="rain"),  # also issued by c2
    ]
    return calls, tools


def test_a_duplicate_tool_call_saves_the_issuing_calls_output_share() -> None:
    calls, tools = agent()
    [finding] = run("redundant_tool", calls, tools)
    assert (finding.kind, finding.task, finding.step, finding.model) == (
        "redundant_tool",
        "support",
        "search",
        "gpt-4o",
    )
    # c2 issued two tool steps, one a duplicate: half of its $0.01 of output.
    assert finding.estimated_savings_usd == Decimal("0.005")
    assert finding.confidence == "medium"
    assert finding.span_ids == ("t1-c2",)
    assert finding.current_cost_usd == Decimal("0.02")
    evidence = finding.evidence
    assert (evidence["tool_steps"], evidence["duplicates"], evidence["issuing_calls"]) == (3, 1, 1)
    assert finding.suggestion.startswith("Memoise tool 'search' per task")


def test_different_results_arguments_or_tasks_are_not_duplicates() -> None:
    calls, _ = agent()
    changed_result = [tool("s1", at=1, result="sunny"), tool("s2", at=3, result="cloudy")]
    other_args = [tool("s1", at=1, args="x"), tool("s2", at=3, args="y")]
    other_task = [tool("s1", at=1, task="t1"), tool("s2", at=3, task="t2")]
    after_error = [tool("s1", at=1, status="error"), tool("s2", at=3)]
    for tools in (changed_result, other_args, other_task, after_error):
        assert run("redundant_tool", calls, tools) == []


def test_unpriced_issuer_still_reported_with_low_confidence() -> None:
    calls = [call("c1", at=0, cost=None), call("c2", at=2, cost=None, fingerprint="f2")]
    [finding] = run("redundant_tool", calls, [tool("s1", at=1), tool("s2", at=3)])
    assert (finding.estimated_savings_usd, finding.confidence) == (0, "low")
    assert finding.evidence["unpriced_issuing_calls"] == 1
    assert finding.evidence["duplicates"] == 1


def test_min_repeats_and_ledger() -> None:
    calls, tools = agent()
    config = RulesConfig(redundant_tool=RedundantToolConfig(min_repeats=2))
    assert run("redundant_tool", calls, tools, config=config) == []
    ledger = ResidualLedger(calls)
    ledger.claim("t1-c2", Decimal("0.018"))  # an earlier rule left $0.002 of the call
    [finding] = run("redundant_tool", calls, tools, ledger=ledger)
    assert finding.estimated_savings_usd == Decimal("0.002")


def test_the_issuer_is_the_last_call_of_the_task_that_started_before_the_tool() -> None:
    calls = [
        call("c1", at=0, task="t1", output_tokens=1000, fingerprint="f1"),
        call("c2", at=2, task="t1", output_tokens=2000, fingerprint="f2"),  # starts with s2: not its issuer
        call("other", at=1.5, task="t2", output_tokens=1000, fingerprint="f3"),  # another task's call
    ]
    tools = [
        tool("s0", at=-1, task="t1"),  # before any call of its task: no issuer
        tool("s1", at=1, task="t1"),
        tool("s2", at=2, task="t1"),  # a duplicate issued by c1 (c2 started at the same moment, not before)
        tool("s3", at=3, task="t3"),  # a task without calls
        tool("s4", at=4, task="t3"),
    ]
    [finding] = run("redundant_tool", calls, tools)
    assert finding.span_ids == ("c1",)
    assert finding.estimated_savings_usd == Decimal("0.01")  # c1 issued s1 and s2, both duplicates: its 1,000 tokens
    assert (finding.evidence["duplicates"], finding.evidence["tasks_with_duplicates"]) == (3, 2)
    assert (finding.evidence["issuing_calls"], finding.evidence["tool_steps"]) == (1, 5)
