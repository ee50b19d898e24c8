"""Time the recommendation rules and ``agentprof report`` on a synthetic store of 100,000 model calls.

The store is built in SQL (DuckDB ``INSERT ... SELECT ... FROM range(N)``), so building it takes
about a second, not minutes of Python. Every call belongs to one of N/20 tasks of 20 calls:

    k = 0..1   classify     openai gpt-4o, temperature 0, one-word labels (3 distinct outputs)
    k = 2..3   lookup       openai gpt-5-nano, temperature 0, requests drawn at random from 5,000 questions
                            (about half repeat an earlier identical request within 24 h)
    k = 4..15  agent_loop   anthropic claude-sonnet-4-6, input growing by 1,500 tokens per iteration
                            over a shared system prompt (prefix_fingerprints built in SQL);
                            a third of the tasks read the prefix from the prompt cache
    k = 16..19 draft        openai gpt-4o-mini, temperature 0.7, long varied outputs

About 1% of calls are errors without usage (unpriced); each task also has 4 ``search`` tool steps
of which half repeat the same arguments and result.

Run::

    python benchmarks/rules.py              # 100,000 calls, median of 3
    python benchmarks/rules.py --calls 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from agentprof._config import resolve_store_location
from agentprof.analytics import Filters
from agentprof.cli import main
from agentprof.reports.rules._base import ResidualLedger, RuleContext, Workload, clear_parse_caches
from agentprof.reports.rules._config import RulesConfig
from agentprof.reports.rules._engine import load_rule, load_workload, run_rules, selected_kinds
from agentprof.store import open_store

BASE_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01 00:00 UTC

INSERT_CALLS = """
INSERT INTO model_calls (
    span_id, trace_id, parent_span_id, task_id, task_name, step_name, step_kind, operation, provider,
    request_model, response_model, start_time, start_time_ns, end_time_ns, duration_ms, status, error_type,
    usage_known, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    priced, cost_usd, request_fingerprint, prefix_fingerprints, cache_breakpoints, tool_count,
    output_hash, output_chars, temperature, attempts, finish_reasons)
WITH base AS (
    SELECT n, n // 20 AS t, n % 20 AS k, n % 97 = 0 AS failed FROM range({calls}) r(n)
), shaped AS (
    SELECT *,
        CASE WHEN k < 2 THEN 'classify' WHEN k < 4 THEN 'lookup' WHEN k < 16 THEN 'agent_loop' ELSE 'draft' END
            AS step,
        greatest(k - 4, 0) AS it,
        BASE_NS + t * 60000000000 + k * 2000000000 AS start_ns
    FROM base
), sized AS (
    SELECT *,
        CASE step WHEN 'classify' THEN 'gpt-4o' WHEN 'lookup' THEN 'gpt-5-nano'
            WHEN 'agent_loop' THEN 'claude-sonnet-4-6' ELSE 'gpt-4o-mini' END AS model,
        CASE step WHEN 'classify' THEN 300 + n % 50 WHEN 'lookup' THEN 120
            WHEN 'agent_loop' THEN 3000 + it * 1500 ELSE 2000 + n % 700 END AS input_tokens,
        CASE step WHEN 'classify' THEN 2 WHEN 'lookup' THEN 80
            WHEN 'agent_loop' THEN 200 ELSE 400 + (n * 7919) % 800 END AS output_tokens,
        CASE WHEN step = 'agent_loop' AND t % 3 = 0 AND it > 0 THEN 3000 + (it - 1) * 1500 ELSE 0 END AS cached
    FROM shaped
)
SELECT
    'c' || n, 'tr' || t, 's' || t || '-' || k, 'task' || t,
    ['support', 'research', 'triage', 'codegen'][t % 4 + 1], step, 'step', 'chat',
    CASE WHEN step = 'agent_loop' THEN 'anthropic' ELSE 'openai' END,
    model, model,
    make_timestamp(start_ns // 1000), start_ns, start_ns + 900000000, 900.0,
    CASE WHEN failed THEN 'error' ELSE 'ok' END, CASE WHEN failed THEN 'RateLimitError' END,
    NOT failed,
    CASE WHEN failed THEN NULL ELSE input_tokens END,
    CASE WHEN failed THEN NULL ELSE output_tokens END,
    CASE WHEN failed THEN NULL ELSE cached END, 0, 0,
    NOT failed,
    CASE WHEN NOT failed THEN CAST(
        (input_tokens - cached) * CASE model WHEN 'gpt-4o' THEN 2.5 WHEN 'gpt-5-nano' THEN 0.05
            WHEN 'claude-sonnet-4-6' THEN 3.0 ELSE 0.15 END / 1e6
        + cached * 0.3 / 1e6
        + output_tokens * CASE model WHEN 'gpt-4o' THEN 10.0 WHEN 'gpt-5-nano' THEN 0.4
            WHEN 'claude-sonnet-4-6' THEN 15.0 ELSE 0.6 END / 1e6 AS DECIMAL(38, 18)) END,
    md5(CASE step WHEN 'lookup' THEN 'q' || hash(t * 2 + k) % 5000 ELSE step || n END),
    CASE WHEN step = 'agent_loop' THEN to_json(list_transform(range(it + 2), lambda i: {{
        'hash': md5(CASE WHEN i = 0 THEN 'system-' || t % 4 ELSE 'task' || t || '-' || i END),
        'tokens': 3000 + i * 1500 - 1500 * (i > 0)::INT, 'index': i - 1,
        'role': CASE WHEN i = 0 THEN 'system' ELSE 'user' END}}))::VARCHAR
    ELSE to_json([{{'hash': md5('prompt-' || step), 'tokens': 200, 'index': -1, 'role': 'system'}},
        {{'hash': md5('m' || n), 'tokens': input_tokens, 'index': 0, 'role': 'user'}}])::VARCHAR END,
    0, CASE WHEN step = 'agent_loop' THEN 3 ELSE 0 END,
    md5(CASE step WHEN 'classify' THEN 'label' || n % 3
        WHEN 'lookup' THEN 'a' || hash(t * 2 + k) % 5000 ELSE 'out' || n END),
    output_tokens * 4,
    CASE step WHEN 'draft' THEN 0.7 WHEN 'agent_loop' THEN NULL ELSE 0.0 END,
    CASE WHEN n % 211 = 0 THEN 2 ELSE 1 END,
    CASE WHEN failed THEN NULL WHEN step = 'agent_loop' THEN '["tool_use"]' ELSE '["stop"]' END
FROM sized
""".replace("BASE_NS", str(BASE_NS))

INSERT_TASKS = """
INSERT INTO tasks (task_id, trace_id, name, start_time, start_time_ns, end_time_ns, duration_ms, status,
    success, outcome_explicit)
SELECT 'task' || t, 'tr' || t, ['support', 'research', 'triage', 'codegen'][t % 4 + 1],
    make_timestamp((BASE_NS + t * 60000000000) // 1000), BASE_NS + t * 60000000000,
    BASE_NS + t * 60000000000 + 40000000000, 40000.0, 'ok', TRUE, FALSE
FROM range({tasks}) r(t)
""".replace("BASE_NS", str(BASE_NS))

INSERT_TOOL_STEPS = """
INSERT INTO spans (span_id, trace_id, parent_span_id, kind, name, task_id, task_name, step_name, step_kind,
    start_time, start_time_ns, end_time_ns, duration_ms, status, tool_args_hash, tool_result_hash)
SELECT 'tool' || t || '-' || j, 'tr' || t, 'task' || t, 'step', 'search', 'task' || t,
    ['support', 'research', 'triage', 'codegen'][t % 4 + 1], 'search', 'tool',
    make_timestamp((BASE_NS + t * 60000000000 + (9 + 2 * j) * 2000000000 + 1000000000) // 1000),
    BASE_NS + t * 60000000000 + (9 + 2 * j) * 2000000000 + 1000000000,
    BASE_NS + t * 60000000000 + (9 + 2 * j) * 2000000000 + 1500000000, 500.0, 'ok',
    md5('args' || t || '-' || j % 2), md5('result' || t || '-' || j % 2)
FROM range({tasks}) r(t), range(4) s(j)
""".replace("BASE_NS", str(BASE_NS))


def build_store(directory: Path, calls: int) -> None:
    """Create a store at ``directory`` holding ``calls`` synthetic model calls (see the module docstring)."""
    tasks = (calls + 19) // 20
    with open_store(resolve_store_location(directory), create=True) as store, store.engine.begin() as conn:
        conn.exec_driver_sql(INSERT_CALLS.format(calls=calls))
        conn.exec_driver_sql(INSERT_TASKS.format(tasks=tasks))
        conn.exec_driver_sql(INSERT_TOOL_STEPS.format(tasks=tasks))


def store_arguments(
    description: str | None, rounds: int, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The command line of a script timing a command on this store: ``--calls``, ``--rounds``, ``--keep``.

    ``extra`` adds the script's own options.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--keep", type=Path, help="build the store here (or reuse the one already there)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def ensure_store(directory: Path, calls: int) -> None:
    """Build the store at ``directory`` unless one is there already (``--keep`` reuses it)."""
    if not (directory / "agentprof.duckdb").exists():
        start = time.perf_counter()
        build_store(directory, calls)
        print(f"built a store of {calls:,} model calls in {time.perf_counter() - start:.1f} s")


def timed(function: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        clear_parse_caches()  # every report starts cold: parsed prefixes must not carry over
        start = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "store"
        start = time.perf_counter()
        build_store(directory, args.calls)
        print(f"built a store of {args.calls:,} model calls in {time.perf_counter() - start:.2f} s")
        with open_store(resolve_store_location(directory)) as store, store.engine.connect() as conn:
            run_rules(conn, Filters())  # warm-up: imports, genai-prices data, price lookups
            load_times = timed(lambda: load_workload(conn, Filters()), args.repeat)
            rule_times = timed(lambda: run_rules(conn, Filters()), args.repeat)
            findings = run_rules(conn, Filters())
            workload = load_workload(conn, Filters())
        per_rule = time_each_rule(workload)
        runner = CliRunner()
        report_times = []
        for _ in range(args.repeat):
            clear_parse_caches()
            start = time.perf_counter()
            result = runner.invoke(main, ["report", "--db", str(directory), "--format", "json"])
            report_times.append(time.perf_counter() - start)
            assert result.exit_code == 0, result.output
    print(f"load_workload:              median {statistics.median(load_times):.3f} s  ({_runs(load_times)})")
    print(f"run_rules (load + rules):   median {statistics.median(rule_times):.3f} s  ({_runs(rule_times)})")
    print(f"agentprof report --format json: median {statistics.median(report_times):.3f} s  ({_runs(report_times)})")
    parts = ", ".join(f"{kind} {seconds:.3f}" for kind, seconds in per_rule.items())
    print(f"one run, s:                 {parts}")
    print(f"{len(findings)} findings:")
    for finding in findings:
        print(
            f"  {finding.kind:<18} {finding.task:<10} {finding.step:<12} saves ${finding.estimated_savings_usd:.2f}"
            f" ({finding.confidence})"
        )


def time_each_rule(workload: Workload) -> dict[str, float]:
    """Seconds per rule in one cold run (prefix parsing, timed on its own, comes first)."""
    clear_parse_caches()
    gc.disable()  # as run_rules does
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for call in workload.calls:
        call.boundaries  # noqa: B018 - what the prefix rules parse, timed on its own
    seconds["parse"] = time.perf_counter() - start
    config = RulesConfig()
    context = RuleContext(workload=workload, config=config, ledger=ResidualLedger(workload.calls))
    for kind in selected_kinds(config):
        start = time.perf_counter()
        load_rule(kind).run(context)
        seconds[kind] = time.perf_counter() - start
    gc.enable()
    return seconds


def _runs(times: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in times)


if __name__ == "__main__":
    main_()
