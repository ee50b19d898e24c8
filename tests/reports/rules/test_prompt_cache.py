"""``prompt_cache``: shared prefixes above the minimum re-sent without cache reads, with a diagnosis."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agentprof.reports.rules._base import CallRecord, ResidualLedger
from agentprof.reports.rules._config import PromptCacheConfig, RulesConfig
from tests.reports.rules._call_factory import call, run

SONNET = {"provider": "anthropic", "model": "claude-sonnet-4-6"}  # $3 input, $0.30 read, $3.75 5m write, $6 1h
GPT4O = {"provider": "openai", "model": "gpt-4o"}  # $2.50 input, $1.25 cache read, writes free
M = Decimal(1_000_000)


def plan_calls(n: int = 10, *, system_tokens: int = 5000, every: float = 10.0, system_hash: Any = "policy",
               model: dict[str, str] = SONNET, **overrides: Any) -> list[CallRecord]:  # fmt: skip
    """``n`` calls (one per task) sending the same system prompt, then a 100-token question each."""
    calls = []
    for k in range(n):
        first = system_hash(k) if callable(system_hash) else system_hash
        prefixes = [(first, system_tokens, -1, "system"), (f"q{k}", system_tokens + 100, 0, "user")]
        calls.append(call(f"c{k}", at=every * k, task=f"t{k}", step="plan", fingerprint=f"f{k}", prefixes=prefixes,
                          input_tokens=system_tokens + 100, cost="1", **model, **overrides))  # fmt: skip
    return calls


def test_anthropic_without_breakpoints_saves_reads_less_one_write_premium() -> None:
    [finding] = run("prompt_cache", plan_calls())
    assert (finding.kind, finding.step, finding.model, finding.confidence) == (
        "prompt_cache", "plan", "claude-sonnet-4-6", "high")  # fmt: skip
    assert finding.evidence["diagnosis"] == "no_breakpoint"
    assert (finding.evidence["missed_calls"], finding.evidence["min_cacheable_tokens"]) == (9, 1024)
    # S = (N-1) x P x (p_in - p_read) - P x (p_write - p_in), the model's own prices.
    expected = 9 * 5000 * (Decimal(3) - Decimal("0.3")) / M - 5000 * (Decimal("3.75") - 3) / M
    assert finding.estimated_savings_usd == pytest.approx(expected, abs=Decimal("1e-15"))
    low, high = finding.savings_range_usd
    assert low <= finding.estimated_savings_usd == high
    assert finding.evidence["break_even_reads"] == pytest.approx(0.28, abs=0.01)
    assert "cache_control" in finding.suggestion
    assert len(finding.span_ids) == 9


def test_a_prefix_below_the_models_minimum_is_not_flagged() -> None:
    assert run("prompt_cache", plan_calls(system_tokens=900)) == []
    # Haiku 4.5 needs 4,096 tokens: 3,000 is below it, but above Sonnet's 1,024.
    haiku = {"provider": "anthropic", "model": "claude-haiku-4-5"}
    assert run("prompt_cache", plan_calls(system_tokens=3000, model=haiku)) == []
    assert len(run("prompt_cache", plan_calls(system_tokens=3000))) == 1


def test_calls_that_read_the_cache_are_not_flagged() -> None:
    calls = plan_calls(cache_breakpoints=1)
    cached = [calls[0]] + [
        call(c.span_id, at=10 * k, task=f"t{k}", step="plan", fingerprint=c.request_fingerprint,
             prefixes=list(c.prefixes), input_tokens=5100, cache_read_tokens=5000, cost="1", **SONNET)
        for k, c in enumerate(calls) if k
    ]  # fmt: skip
    assert run("prompt_cache", cached) == []


def test_a_breakpoint_that_does_not_cover_the_shared_prefix_is_misplaced() -> None:
    [finding] = run("prompt_cache", plan_calls(cache_breakpoints=1))
    assert (finding.evidence["diagnosis"], finding.confidence) == ("breakpoint_misplaced", "medium")


def test_openai_automatic_caching_miss_uses_128_token_steps_and_free_writes() -> None:
    [finding] = run("prompt_cache", plan_calls(system_tokens=2000, model=GPT4O))
    assert (finding.evidence["diagnosis"], finding.confidence) == ("routing_miss", "medium")
    # 2,000 shared tokens -> 1,920 cacheable (128-token steps); gpt-4o writes are free.
    assert finding.estimated_savings_usd == pytest.approx(
        9 * 1920 * (Decimal("2.5") - Decimal("1.25")) / M, abs=Decimal("1e-15")
    )
    assert "prompt_cache_key" in finding.suggestion


def test_a_system_prompt_that_changes_every_call_is_a_prefix_breaker() -> None:
    [finding] = run("prompt_cache", plan_calls(system_hash=lambda k: f"policy-at-{k}"))
    assert (finding.evidence["diagnosis"], finding.confidence) == ("prefix_breaker", "medium")
    expected = 9 * 5000 * (Decimal(3) - Decimal("0.3")) / M - 5000 * (Decimal("3.75") - 3) / M
    assert finding.estimated_savings_usd == pytest.approx(expected, abs=Decimal("1e-15"))
    assert "changes on every call" in finding.suggestion


def test_unrelated_system_prompts_of_different_lengths_are_not_breakers() -> None:
    calls = [
        call(f"c{k}", at=k, task=f"t{k}", step="plan", fingerprint=f"f{k}", input_tokens=2000 + 300 * k,
             prefixes=[(f"sys{k}", 2000 + 300 * k, -1, "system")], **SONNET)
        for k in range(10)
    ]  # fmt: skip
    assert run("prompt_cache", calls) == []


def test_gaps_longer_than_the_ttl_suggest_the_one_hour_ttl() -> None:
    [finding] = run("prompt_cache", plan_calls(every=600))  # 10 minutes apart: the 5-minute entry expired
    assert finding.evidence["diagnosis"] == "ttl_expired"
    assert finding.evidence["ttl_expired"] == 9
    # One 1-hour write ($6 = 2x input) instead of the 5-minute one.
    expected = 9 * 5000 * (Decimal(3) - Decimal("0.3")) / M - 5000 * (Decimal(6) - 3) / M
    assert finding.estimated_savings_usd == pytest.approx(expected, abs=Decimal("1e-15"))
    assert run("prompt_cache", plan_calls(every=3700)) == []  # over an hour: no TTL would have served them


def test_savings_already_claimed_by_an_earlier_rule_are_not_counted_again() -> None:
    calls = plan_calls()
    ledger = ResidualLedger(calls)
    for c in calls[1:6]:
        ledger.claim(c.span_id, Decimal(1))  # exact_cache took the whole cost of five of them
    [finding] = run("prompt_cache", calls, ledger=ledger)
    assert len(finding.span_ids) == 4
    full = 9 * 5000 * (Decimal(3) - Decimal("0.3")) / M - 5000 * (Decimal("3.75") - 3) / M
    assert finding.estimated_savings_usd == pytest.approx(full * 4 / 9, abs=Decimal("1e-15"))


def test_thresholds_are_configurable_and_errors_and_embeddings_are_ignored() -> None:
    strict = RulesConfig(prompt_cache=PromptCacheConfig(min_savings_usd=1.0))
    assert run("prompt_cache", plan_calls(), config=strict) == []
    failed = plan_calls(status="error")
    assert run("prompt_cache", failed) == []
    embeddings = plan_calls(prefix_fingerprints_json="[]", operation="embeddings")
    assert run("prompt_cache", embeddings) == []


def test_a_few_system_prompt_variants_of_equal_length_are_not_breakers() -> None:
    variants = plan_calls(n=12, system_hash=lambda k: f"variant-{k % 3}")  # three prompts, each reused
    assert {f.evidence["diagnosis"] for f in run("prompt_cache", variants)} == {"no_breakpoint"}


def test_a_growing_loop_writes_each_new_part_of_its_prefix_once() -> None:
    """Each miss writes only what the live cache did not hold: P less the longest earlier boundary written."""
    calls = []
    for k in range(5):
        prefixes = [("sys", 5000, -1, "system")] + [(f"m{j}", 5000 + 2000 * (j + 1), j, "user") for j in range(k + 1)]
        calls.append(call(f"c{k}", at=10 * k, task="t1", step="agent", fingerprint=f"f{k}", prefixes=prefixes,
                          input_tokens=5000 + 2000 * (k + 1), cost="1", **SONNET))  # fmt: skip
    [finding] = run("prompt_cache", calls)
    assert finding.evidence["missed_calls"] == 4  # the first call shares nothing
    # Shared prefixes 7,000, 9,000, 11,000, 13,000; written 7,000 then 2,000 per call.
    assert Decimal(finding.evidence["write_premium_usd"]) == 13000 * (Decimal("3.75") - 3) / M
    expected = 40000 * (Decimal(3) - Decimal("0.3")) / M - 13000 * (Decimal("3.75") - 3) / M
    assert finding.estimated_savings_usd == pytest.approx(expected, abs=Decimal("1e-15"))
