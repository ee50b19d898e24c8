"""Bounded analysis of large selections (``_sampling``): windows, scaling, and accuracy against the exact run."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.console import Console

from agentprof.analytics import Filters
from agentprof.exceptions import ConfigError
from agentprof.reports import StoreInfo, build_report, render_markdown, render_text
from agentprof.reports.rules._config import RulesConfig
from agentprof.reports.rules._engine import analyse
from agentprof.reports.rules._sampling import plan_sample
from agentprof.store.schema import metadata, model_calls

TASKS = 600
CALLS = TASKS * 20
SECOND = 1_000_000_000
BASE_NS = 1_767_225_600 * SECOND

# Tasks of 20 calls, one a minute: 4 classify calls on gpt-4o (3 labels), 2 lookups that repeat the
# same question within the task, a 12-iteration agent loop on claude-sonnet-4-6 over a system prompt
# shared by every 4th task (no cache reads), 2 long varied drafts. The same shape as
# benchmarks/rules.py, small enough for a test.
INSERT_CALLS = """
INSERT INTO model_calls (
    span_id, trace_id, parent_span_id, task_id, task_name, step_name, step_kind, operation, provider,
    request_model, response_model, start_time, start_time_ns, end_time_ns, duration_ms, status,
    usage_known, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    priced, cost_usd, request_fingerprint, prefix_fingerprints, cache_breakpoints, tool_count,
    output_hash, output_chars, temperature, attempts, finish_reasons)
WITH base AS (
    SELECT n, n // 20 AS t, n % 20 AS k FROM range({calls}) r(n)
), shaped AS (
    SELECT *,
        CASE WHEN k < 4 THEN 'classify' WHEN k < 6 THEN 'lookup' WHEN k < 18 THEN 'agent_loop' ELSE 'draft' END
            AS step,
        greatest(k - 6, 0) AS it,
        {base} + t * 60000000000 + k * 2000000000 AS start_ns
    FROM base
), sized AS (
    SELECT *,
        CASE step WHEN 'classify' THEN 'gpt-4o' WHEN 'lookup' THEN 'gpt-5-nano'
            WHEN 'agent_loop' THEN 'claude-sonnet-4-6' ELSE 'gpt-4o-mini' END AS model,
        CASE step WHEN 'classify' THEN 300 + n % 50 WHEN 'lookup' THEN 120
            WHEN 'agent_loop' THEN 3000 + it * 1500 ELSE 2000 + n % 700 END AS input_tokens,
        CASE step WHEN 'classify' THEN 2 WHEN 'lookup' THEN 80
            WHEN 'agent_loop' THEN 200 ELSE 400 + (n * 7919) % 800 END AS output_tokens
    FROM shaped
)
SELECT
    'c' || n, 'tr' || t, 's' || t || '-' || k, 'task' || t, ['support', 'research'][t % 2 + 1], step, 'step',
    'chat', CASE WHEN step = 'agent_loop' THEN 'anthropic' ELSE 'openai' END, model, model,
    make_timestamp(start_ns // 1000), start_ns, start_ns + 900000000, 900.0, 'ok', TRUE,
    input_tokens, output_tokens, 0, 0, 0, TRUE,
    CAST(input_tokens * CASE model WHEN 'gpt-4o' THEN 2.5 WHEN 'gpt-5-nano' THEN 0.05
            WHEN 'claude-sonnet-4-6' THEN 3.0 ELSE 0.15 END / 1e6
        + output_tokens * CASE model WHEN 'gpt-4o' THEN 10.0 WHEN 'gpt-5-nano' THEN 0.4
            WHEN 'claude-sonnet-4-6' THEN 15.0 ELSE 0.6 END / 1e6 AS DECIMAL(38, 18)),
    md5(CASE step WHEN 'lookup' THEN 'q' || t ELSE step || n END),
    CASE WHEN step = 'agent_loop' THEN to_json(list_transform(range(it + 2), lambda i: {{
        'hash': md5(CASE WHEN i = 0 THEN 'system-' || t % 4 ELSE 'task' || t || '-' || i END),
        'tokens': 3000 + i * 1500 - 1500 * (i > 0)::INT, 'index': i - 1,
        'role': CASE WHEN i = 0 THEN 'system' ELSE 'user' END}}))::VARCHAR
    ELSE to_json([{{'hash': md5('prompt-' || step), 'tokens': 200, 'index': -1, 'role': 'system'}},
        {{'hash': md5('m' || n), 'tokens': input_tokens, 'index': 0, 'role': 'user'}}])::VARCHAR END,
    0, CASE WHEN step = 'agent_loop' THEN 3 ELSE 0 END,
    md5(CASE step WHEN 'classify' THEN 'label' || n % 3 WHEN 'lookup' THEN 'a' || t ELSE 'out' || n END),
    output_tokens * 4,
    CASE step WHEN 'draft' THEN 0.7 WHEN 'agent_loop' THEN NULL ELSE 0.0 END,
    1,
    CASE WHEN step = 'agent_loop' THEN '["tool_use"]' ELSE '["stop"]' END
FROM sized
"""


def sampling_store(directory: Path) -> sa.Engine:
    """A DuckDB file in ``directory`` holding :data:`CALLS` calls of :data:`INSERT_CALLS` (dispose of it)."""
    engine = sa.create_engine(f"duckdb:///{directory / 't.duckdb'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(INSERT_CALLS.format(calls=CALLS, base=BASE_NS))
    return engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sampling_store(tmp_path_factory.mktemp("sampling"))
    yield engine
    engine.dispose()


def test_no_sample_when_the_selection_fits_or_max_calls_is_zero(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert plan_sample(conn, Filters(), CALLS) is None
        assert plan_sample(conn, Filters(), 0) is None
        assert plan_sample(conn, Filters(task="research"), CALLS // 2) is None  # the selection is half the store


def test_the_sample_is_the_latest_max_calls_calls(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        sample = plan_sample(conn, Filters(), 3000)
        assert sample is not None and sample.selection_calls == CALLS
        latest = (
            conn.execute(
                sa.select(model_calls.c.start_time_ns).order_by(model_calls.c.start_time_ns.desc()).limit(3000)
            )
            .scalars()
            .all()
        )
        held = conn.execute(
            sa.select(sa.func.count()).where(model_calls.c.start_time_ns >= sample.start_ns)
        ).scalar_one()
    assert sample.start_ns == min(latest)
    assert held == 3000  # start times are distinct here, so no ties at the boundary


def _by_key(findings: list) -> dict:  # type: ignore[type-arg]
    return {(f.kind, f.task, f.step, f.model, f.evidence.get("diagnosis")): f for f in findings}


def test_sampled_findings_match_the_exact_analysis(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        exact = analyse(conn, Filters(), RulesConfig(max_calls=0))
        sampled = analyse(conn, Filters(), RulesConfig(max_calls=3000))
    assert exact.sample is None and sampled.sample is not None
    assert sampled.calls_analysed < CALLS // 3
    exact_by_key, sampled_by_key = _by_key(exact.findings), _by_key(sampled.findings)
    kinds = {key[0] for key in exact_by_key}
    assert {"exact_cache", "prompt_cache", "cheaper_model"} <= kinds
    assert set(sampled_by_key) == set(exact_by_key)
    for key, truth in exact_by_key.items():
        estimate = sampled_by_key[key]
        # The group's cost is the exact total over every call, not a scaled one.
        assert estimate.current_cost_usd == truth.current_cost_usd, key
        if not truth.estimated_savings_usd:  # context_growth beyond prompt caching: nothing left to save
            assert not estimate.estimated_savings_usd, key
            continue
        ratio = estimate.estimated_savings_usd / truth.estimated_savings_usd
        assert Decimal("0.85") <= ratio <= Decimal("1.15"), (key, ratio)
        low, high = estimate.savings_range_usd
        assert low <= estimate.estimated_savings_usd <= high <= estimate.current_cost_usd
        assert estimate.evidence["sample"]["calls_in_selection"] == CALLS


def test_sampling_is_deterministic(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        first = analyse(conn, Filters(), RulesConfig(max_calls=3000)).findings
        second = analyse(conn, Filters(), RulesConfig(max_calls=3000)).findings
    assert first == second


def test_the_report_says_when_recommendations_come_from_a_sample(engine: sa.Engine) -> None:
    store = StoreInfo(location="big", dialect="duckdb")
    with engine.connect() as conn:
        sampled = build_report(conn, store=store, rules_config=RulesConfig(max_calls=3000))
        exact = build_report(conn, store=store, rules_config=RulesConfig(max_calls=0))
    assert exact.recommendations_basis is None
    basis = sampled.recommendations_basis
    assert basis is not None
    assert (basis.calls_analysed, basis.calls_in_selection, basis.max_calls) == (3000, CALLS, 3000)
    assert basis.since == datetime.fromtimestamp((BASE_NS + (CALLS - 3000) // 20 * 60 * SECOND) / 1e9, UTC)
    buffer = io.StringIO()
    render_text(sampled, Console(file=buffer, width=200, color_system=None, force_terminal=True))
    assert f"estimated from the latest 3,000 of {CALLS:,} calls" in buffer.getvalue()
    assert "max_calls = 0" in render_markdown(sampled)
    assert "estimated from" not in render_markdown(exact)


def test_max_calls_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="max_calls"):
        RulesConfig.from_table({"max_calls": -1}, "pyproject.toml")
