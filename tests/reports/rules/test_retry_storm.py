from __future__ import annotations

import json
from decimal import Decimal

import pytest

from agentprof.reports.rules._config import RetryStormConfig, RulesConfig
from agentprof.reports.rules.retry_storm import _tail
from tests.reports.rules._call_factory import call, run

SYSTEM = ("sys", 500, -1, "system")


def reask_chain(task: str = "t1", start: float = 0.0, step: str = "extract") -> list:
    """Three answers rejected one after another: each request is the previous one + answer + feedback."""
    return [
        call(f"{task}-a", at=start, task=task, step=step, fingerprint=f"{task}-fa",
             prefixes=[SYSTEM, ("p1", 600, 0, "user")]),
        call(f"{task}-b", at=start + 5, task=task, step=step, fingerprint=f"{task}-fb",
             prefixes=[SYSTEM, ("p1", 600, 0, "user"), ("p2", 620, 1, "assistant"), ("p3", 640, 2, "user")]),
        call(f"{task}-c", at=start + 10, task=task, step=step, fingerprint=f"{task}-fc",
             prefixes=[SYSTEM, ("p1", 600, 0, "user"), ("p2", 620, 1, "assistant"), ("p3", 640, 2, "user"),
                       ("p4", 660, 3, "assistant"), ("p5", 680, 4, "user")]),
    ]  # fmt: skip


def test_reasks_after_rejected_outputs_waste_the_billed_attempts() -> None:
    [finding] = run("retry_storm", reask_chain())
    assert (finding.kind, finding.task, finding.step, finding.model) == ("retry_storm", "support", "extract", "gpt-4o")
    assert finding.estimated_savings_usd == Decimal("0.02")  # two rejected answers; the last one is kept
    assert finding.savings_range_usd == (Decimal("0.01"), Decimal("0.02"))
    assert finding.confidence == "high"
    assert finding.span_ids == ("t1-a", "t1-b")
    assert finding.current_cost_usd == Decimal("0.03")
    assert (finding.evidence["storms"], finding.evidence["attempts"], finding.evidence["reasks"]) == (1, 3, 2)
    assert finding.suggestion.startswith("Step 'extract' made 3 attempts in 1 retry storm (re-asks after rejected")


def test_retries_after_errors_are_latency_not_dollars() -> None:
    calls = [call("c1", at=0, status="error"), call("c2", at=2, status="error"), call("c3", at=6)]
    [finding] = run("retry_storm", calls)
    assert finding.estimated_savings_usd == 0
    assert finding.confidence == "low"
    evidence = finding.evidence
    assert (evidence["retries_after_error"], evidence["unbilled_failed_attempts"]) == (2, 2)
    assert evidence["unbilled_failed_latency_ms"] == 1000.0
    assert evidence["error_types"] == {"RateLimitError": 2}


def test_sdk_retries_count_as_attempts() -> None:
    [finding] = run("retry_storm", [call("c1", at=0, attempts=3)])
    assert (finding.evidence["attempts"], finding.evidence["sdk_retries"]) == (3, 2)
    assert finding.estimated_savings_usd == 0


def test_agent_loops_and_repeats_after_success_are_not_storms() -> None:
    loop = [call(f"c{i}", at=i, fingerprint=f"f{i}", finish='["tool_use"]', prefixes=[
        SYSTEM, *[(f"p{j}", 600 + j, j, "user" if j % 2 == 0 else "assistant") for j in range(2 * i + 1)]])
        for i in range(5)]  # fmt: skip
    assert run("retry_storm", loop) == []
    same_request_after_success = [call(f"c{i}", at=i) for i in range(4)]  # exact_cache's business
    assert run("retry_storm", same_request_after_success) == []


def test_window_attempts_and_steps_bound_a_storm() -> None:
    spread = [call("c1", at=0, status="error"), call("c2", at=40, status="error"), call("c3", at=70)]
    assert run("retry_storm", spread) == []
    assert len(run("retry_storm", spread, config=RulesConfig(retry_storm=RetryStormConfig(window_seconds=120)))) == 1
    assert run("retry_storm", reask_chain(), config=RulesConfig(retry_storm=RetryStormConfig(min_attempts=4))) == []
    other_steps = [call("c1", at=0, status="error", step="a"), call("c2", at=1, status="error", step="b"),
                   call("c3", at=2, step="c")]  # fmt: skip
    assert run("retry_storm", other_steps) == []


def test_storms_aggregate_per_task_name_and_step() -> None:
    [finding] = run("retry_storm", reask_chain("t1") + reask_chain("t2", start=100))
    assert (finding.evidence["storms"], finding.estimated_savings_usd) == (2, Decimal("0.04"))


def test_reasks_link_the_same_in_any_prefix_layout() -> None:
    """The recorder's compact JSON is read from its end; other layouts go through ``prefixes``, with the same result."""
    compact = run("retry_storm", reask_chain())
    spaced = [call._replace(prefix_fingerprints_json=json.dumps(json.loads(call.prefix_fingerprints_json)))
              for call in reask_chain()]  # fmt: skip
    assert run("retry_storm", spaced) == compact


@pytest.mark.parametrize(
    "text",
    [
        '[{"hash":"a","tokens":1,"index":-1,"role":"system"}]',
        '[{"hash":"a","tokens":1,"index":-1,"role":"system"},{"hash":"b","tokens":2,"index":0,"role":"user"}]',
        '[{"hash":"a","tokens":1,"index":0,"role":"user"},{"hash":"b","tokens":2,"index":1,"role":"assistant"},'
        '{"hash":"c","tokens":3,"index":2,"role":"user"},{"hash":"d","tokens":4,"index":3,"role":"user"}]',
        '[{"hash":"a","tokens":1,"index":0,"role":"hash"},{"hash":"b","tokens":2,"index":1,"role":"user"}]',
        '[{"hash":"hash","tokens":1,"index":0,"role":"user"},{"hash":"b","tokens":2,"index":1,"role":"user"}]',
        '[{"hash": "a", "tokens": 1, "index": 0, "role": "user"}, '
        '{"hash": "b", "tokens": 2, "index": 1, "role": "user"}]',
        '[{"role":"user","index":0,"tokens":1,"hash":"a"},{"role":"user","index":1,"tokens":2,"hash":"b"}]',
        '[{"hash":"a\\\\","tokens":1,"index":0,"role":"user"},{"hash":"b","tokens":2,"index":1,"role":"user"}]',
        "[]",
    ],
)
def test_tail_reads_what_prefixes_says(text: str) -> None:
    record = call("c", prefix_fingerprints_json=text)
    prefixes = record.prefixes
    for earlier in (False, True):
        expected = None
        if prefixes:
            role = prefixes[-1][3]
            back = 3 if earlier and role == "user" else 1
            expected = (tuple(prefix[0] for prefix in reversed(prefixes[-back:])), role)
        assert _tail(record, earlier) == expected
