"""Time ``agentprof report`` (every section, recommendations included) against the raw DuckDB floor.

The stores are the synthetic workload of ``benchmarks/rules.py`` (built in SQL, never in Python
loops): tasks of 20 calls (classify, lookup, a 12-iteration agent loop, drafts) with tool steps.
For each size the script times, interleaved (A B A B ...):

* **report**: ``agentprof report --format json`` in-process through click (what a user waits for,
  minus interpreter start-up, which ``benchmarks/startup.py`` measures);
* **floor**: one DuckDB query over the same rows: a GROUP BY step and model with the exact p95
  latency, the least any report of these rows can cost.

It prints medians and the ratio report / floor. Building the 10,000,000-call store takes a few
minutes and ~5 GB of disk; pass ``--keep DIR`` to build it once and reuse it.

Run::

    python benchmarks/report.py                           # 100,000 calls, 5 rounds
    python benchmarks/report.py --calls 10000000 --keep /tmp/agentprof-10m --rounds 3
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import duckdb
from click.testing import CliRunner
from rules import ensure_store, store_arguments

from agentprof.cli import main
from agentprof.reports.rules._base import clear_parse_caches

FLOOR = """
SELECT step_name, coalesce(response_model, request_model) AS model, count(*), sum(cost_usd),
    quantile_cont(duration_ms, 0.95)
FROM model_calls GROUP BY ALL
"""


def time_report(directory: Path) -> tuple[float, str]:
    """Seconds of one cold ``agentprof report --format json`` and its output."""
    clear_parse_caches()
    runner = CliRunner()
    start = time.perf_counter()
    result = runner.invoke(main, ["report", "--db", str(directory), "--format", "json"])
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"agentprof report failed: {result.output}")
    return elapsed, result.output


def time_floor(directory: Path) -> float:
    """Seconds of the floor query on a fresh read-only connection (as the report opens one)."""
    start = time.perf_counter()
    with duckdb.connect(str(directory / "agentprof.duckdb"), read_only=True) as conn:
        conn.execute(FLOOR).fetchall()
    return time.perf_counter() - start


def main_() -> None:
    args = store_arguments(__doc__, rounds=5)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp) / "store"
        ensure_store(directory, args.calls)
        _, output = time_report(directory)  # warm-up: imports, price data, the OS page cache
        time_floor(directory)
        reports: list[float] = []
        floors: list[float] = []
        for round_ in range(args.rounds):
            pair = [("report", reports), ("floor", floors)]
            for name, times in pair if round_ % 2 == 0 else reversed(pair):
                times.append(time_report(directory)[0] if name == "report" else time_floor(directory))
    report, floor = statistics.median(reports), statistics.median(floors)
    ratios = sorted(r / f for r, f in zip(reports, floors, strict=True))
    print(f"agentprof report: median {report:.3f} s  ({_runs(reports)})")
    print(f"DuckDB floor:     median {floor:.3f} s  ({_runs(floors)})")
    print(f"report / floor:   {report / floor:.1f}x (paired per round: {', '.join(f'{r:.1f}' for r in ratios)})")
    recommendations = output.count('"kind"')
    print(f"{recommendations} recommendations in the report")


def _runs(times: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in times)


if __name__ == "__main__":
    main_()
