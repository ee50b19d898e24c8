from __future__ import annotations

from decimal import Decimal

from agentprof.reports.rules._base import ResidualLedger
from agentprof.reports.rules._config import ExactCacheConfig, RulesConfig
from tests.reports.rules._call_factory import call, run


def test_repeats_are_flagged_and_their_cost_saved() -> None:
    calls = [call(f"c{i}", at=i, task=f"t{i}", fingerprint=f"f{i % 8}", output_hash=f"o{i % 8}") for i in range(12)]
    [finding] = run("exact_cache", calls)
    assert (finding.kind, finding.task, finding.step, finding.model) == ("exact_cache", "support", "classify", "gpt-4o")
    assert finding.estimated_savings_usd == Decimal("0.04")
    assert finding.savings_range_usd == (Decimal("0.04"), Decimal("0.04"))
    assert finding.current_cost_usd == Decimal("0.12")
    assert finding.confidence == "high"
    assert finding.span_ids == ("c8", "c9", "c10", "c11")
    assert (
        finding.suggestion == "Cache responses of step 'classify': 4 of 12 requests repeated an identical earlier one"
    )
    evidence = finding.evidence
    assert (evidence["calls"], evidence["repeats"], evidence["distinct_requests"]) == (12, 4, 8)
    assert evidence["duplicate_rate"] == round(4 / 12, 4)
    assert (evidence["temperature"], evidence["outputs_identical"]) == (0.0, True)


def test_unique_requests_are_not_flagged() -> None:
    assert run("exact_cache", [call(f"c{i}", at=i, fingerprint=f"f{i}") for i in range(10)]) == []


def test_a_retry_after_an_error_is_not_a_repeat() -> None:
    calls = [call("c1", at=0), call("c2", at=1, status="error"), call("c3", at=2)]
    assert run("exact_cache", calls) == []


def test_differing_outputs_or_sampling_lower_confidence() -> None:
    differing = run("exact_cache", [call("c1", at=0, output_hash="a"), call("c2", at=1, output_hash="b")])
    assert differing[0].confidence == "medium"
    assert differing[0].evidence["outputs_identical"] is False
    assert "the answers differed" in differing[0].suggestion
    assert differing[0].savings_range_usd == (Decimal("0.005"), Decimal("0.01"))
    sampled = run("exact_cache", [call("c1", at=0, temperature=0.7), call("c2", at=1, temperature=0.7)])
    assert (sampled[0].confidence, sampled[0].evidence["temperature"]) == ("medium", 0.7)
    unknown = run("exact_cache", [call("c1", at=0, temperature=None), call("c2", at=1, temperature=None)])
    assert unknown[0].confidence == "medium"


def test_window_across_tasks_and_within_a_task() -> None:
    day = 24 * 3600
    across = [call("c1", at=0, task="t1"), call("c2", at=day + 1, task="t2")]
    assert run("exact_cache", across) == []
    within = [call("c1", at=0, task="t1"), call("c2", at=day + 1, task="t1")]
    assert len(run("exact_cache", within)) == 1
    config = RulesConfig(exact_cache=ExactCacheConfig(window_hours=48))
    assert len(run("exact_cache", across, config=config)) == 1


def test_thresholds() -> None:
    calls = [call("c1", at=0), call("c2", at=1)]
    assert run("exact_cache", calls, config=RulesConfig(exact_cache=ExactCacheConfig(min_repeats=2))) == []
    assert run("exact_cache", calls, config=RulesConfig(exact_cache=ExactCacheConfig(min_savings_usd=0.02))) == []


def test_a_repeat_claimed_by_an_earlier_rule_is_not_saved_twice() -> None:
    calls = [call("c1", at=0), call("c2", at=1), call("c3", at=2)]
    ledger = ResidualLedger(calls)
    ledger.claim("c2", Decimal("0.01"))  # e.g. retry_storm already counted it
    ledger.claim("c3", Decimal("0.004"))
    [finding] = run("exact_cache", calls, ledger=ledger)
    assert finding.estimated_savings_usd == Decimal("0.006")
    assert finding.span_ids == ("c3",)
    assert ledger.left("c3") == 0


def test_unpriced_repeats_count_but_save_nothing() -> None:
    [finding] = run("exact_cache", [call("c1", at=0), call("c2", at=1, cost=None)])
    assert (finding.evidence["repeats"], finding.evidence["unpriced_repeats"]) == (1, 1)
    assert finding.estimated_savings_usd == 0


def test_a_steps_calls_count_whether_or_not_their_request_repeats() -> None:
    """Only repeated fingerprints are walked; the step's totals still count every call with a fingerprint."""
    calls = [
        call("c1", at=0, model=None, fingerprint="same", cost="0.5"),
        call("c2", at=1, model="", fingerprint="same", cost="0.25"),  # no model is one model, recorded as None or ""
        call("c3", at=2, model=None, fingerprint="unique", cost="0.125"),
        call("c4", at=3, model="", fingerprint=None, cost="1"),  # no fingerprint: not a request the rule counts
        call("c5", at=4, model="gpt-4o", fingerprint="same", cost="2"),  # another model: another finding
    ]
    [unnamed, gpt] = run("exact_cache", calls)
    assert (unnamed.model, unnamed.span_ids, unnamed.estimated_savings_usd) == (None, ("c2",), Decimal("0.25"))
    assert unnamed.current_cost_usd == Decimal("0.875")
    assert (unnamed.evidence["calls"], unnamed.evidence["distinct_requests"]) == (3, 2)
    assert (gpt.model, gpt.span_ids, gpt.evidence["calls"]) == ("gpt-4o", ("c5",), 1)
