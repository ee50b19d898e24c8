"""``wasted_cache_write``: cache writes never read within their TTL, and 1-hour writes a 5-minute TTL would serve."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agentprof.reports.rules._base import CallRecord
from agentprof.reports.rules._config import RulesConfig, WastedCacheWriteConfig
from tests.reports.rules._call_factory import call, run

SONNET = {"provider": "anthropic", "model": "claude-sonnet-4-6"}  # $3 input, $0.30 read, $3.75 5m write, $6 1h
M = Decimal(1_000_000)


def cached_call(span_id: str, at: float, *, system: str = "policy", read: int = 0, write: int = 5000,
                one_hour: bool = False, **overrides: Any) -> CallRecord:  # fmt: skip
    """A call with a 5,000-token system prompt marked for caching and a 100-token question."""
    prefixes = [(system, 5000, -1, "system"), (f"q-{span_id}", 5100, 0, "user")]
    return call(span_id, at=at, task=f"t-{span_id}", step="plan", fingerprint=span_id, prefixes=prefixes,
                input_tokens=5100, cache_read_tokens=read, cache_write_tokens=write,
                cache_write_5m_tokens=None if one_hour else write, cache_write_1h_tokens=write if one_hour else None,
                cache_breakpoints=1, cost="1", **SONNET, **overrides)  # fmt: skip


def test_writes_no_later_call_reads_waste_the_write_premium() -> None:
    calls = [cached_call(f"c{k}", 10 * k, system=f"policy-{k}") for k in range(3)]
    [finding] = run("wasted_cache_write", calls)
    assert (finding.kind, finding.step, finding.confidence) == ("wasted_cache_write", "plan", "high")
    assert finding.evidence["signal"] == "never_read"
    assert finding.evidence["writes"] == 3
    assert finding.estimated_savings_usd == 3 * 5000 * (Decimal("3.75") - 3) / M
    assert "never read" in finding.suggestion


def test_a_write_read_within_its_ttl_is_not_wasted() -> None:
    calls = [cached_call("c0", 0), cached_call("c1", 60, read=5000, write=0)]
    assert run("wasted_cache_write", calls) == []


def test_a_read_after_the_ttl_does_not_count_as_reading_the_write() -> None:
    calls = [cached_call("c0", 0), cached_call("c1", 600, write=5000)]  # 10 minutes later: a fresh write
    [finding] = run("wasted_cache_write", calls)
    assert finding.evidence["writes"] == 2  # c1's write is never read either


def test_one_hour_writes_reused_within_five_minutes_only_needed_the_default_ttl() -> None:
    calls = [cached_call("c0", 0, one_hour=True)] + [
        cached_call(f"c{k}", 60 * k, read=5000, write=0) for k in range(1, 4)
    ]
    [finding] = run("wasted_cache_write", calls)
    assert (finding.evidence["signal"], finding.confidence) == ("ttl_1h_unneeded", "medium")
    assert finding.estimated_savings_usd == pytest.approx(
        5000 * (Decimal(6) - Decimal("3.75")) / M, abs=Decimal("1e-15")
    )
    assert "5-minute" in finding.suggestion


def test_one_hour_writes_reused_after_a_longer_gap_are_right() -> None:
    calls = [cached_call("c0", 0, one_hour=True), cached_call("c1", 1200, read=5000, write=0)]
    assert run("wasted_cache_write", calls) == []


def test_an_unread_one_hour_write_wastes_the_one_hour_premium() -> None:
    [finding] = run("wasted_cache_write", [cached_call("c0", 0, one_hour=True)])
    assert finding.evidence["signal"] == "never_read"
    assert finding.estimated_savings_usd == 5000 * (Decimal(6) - 3) / M


def test_minimum_savings_is_configurable() -> None:
    strict = RulesConfig(wasted_cache_write=WastedCacheWriteConfig(min_savings_usd=1.0))
    assert run("wasted_cache_write", [cached_call("c0", 0)], config=strict) == []


def test_calls_before_the_first_write_do_not_read_it_and_a_store_without_writes_has_no_findings() -> None:
    before = [cached_call(f"r{k}", 10 * k, read=5000, write=0) for k in range(3)]  # reads of nothing written
    assert run("wasted_cache_write", before) == []
    failed = cached_call("e0", 35, status="error")
    [finding] = run("wasted_cache_write", [*before, failed, cached_call("w0", 40)])
    assert (finding.evidence["writes"], finding.span_ids) == (1, ("w0",))
