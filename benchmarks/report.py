"""Time ``agentprof report`` (every section, recommendations included) against the raw DuckDB floor.

The stores are the synthetic workload of ``benchmarks/rules.py`` (built in SQL, never in Python
loops): tasks of 20 calls (classify, lookup, a 12-iteration agent loop, drafts) with tool steps.
For each size the script times, interleaved (A B A B ...):

* **report**: ``agentprof report --format json`` in-process through click, after a warm-up
  report (imports, price data and SQLAlchemy's statement caches are warm: the report's own work);
* **fresh process**: the same command as a user runs it, ``agentprof report --format json`` in a
  new interpreter: the report's work plus what every invocation pays first (the interpreter,
  importing SQLAlchemy, DuckDB, rich, pydantic, genai-prices and agentprof's report modules, the
  price data, SQLAlchemy compiling each statement once), with agentprof's modules compiled to
  bytecode first as installing it does (``_bytecode.py``). ``--no-fresh`` leaves it out;
* **floor**: one DuckDB query over the same rows: a GROUP BY step and model with the exact p95
  latency, the least any report of these rows can cost.

It prints medians, the ratio report / floor, and how much of the fresh process is that fixed
cost, with the least of it: a new interpreter importing only SQLAlchemy, DuckDB with its
SQLAlchemy dialect, and rich (the libraries a report cannot do without), timed in the same
rounds. Building the 10,000,000-call store takes a few minutes and ~5 GB of disk; pass ``--keep
DIR`` to build it once and reuse it.

Run::

    python benchmarks/report.py                           # 100,000 calls, 5 rounds
    python benchmarks/report.py --calls 10000000 --keep /tmp/agentprof-10m --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from _bytecode import compile_like_an_install  # benchmarks/ is sys.path[0]
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


#: ``agentprof report`` as a user runs it (the console script is this same function).
FRESH_REPORT = "from agentprof.cli import main; main()"
#: The libraries a report cannot do without, imported and nothing else.
IMPORT_FLOOR = "import duckdb, duckdb_engine, sqlalchemy, sqlalchemy.dialects.postgresql, rich.console, rich.table"


def time_fresh(directory: Path) -> float:
    """Seconds of ``agentprof report --format json`` in a new interpreter, start to exit."""
    command = [sys.executable, "-c", FRESH_REPORT, "report", "--db", str(directory), "--format", "json"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_import_floor() -> float:
    """Seconds of a new interpreter importing only :data:`IMPORT_FLOOR`."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT_FLOOR], check=True)
    return time.perf_counter() - start


def time_floor(directory: Path) -> float:
    """Seconds of the floor query on a fresh read-only connection (as the report opens one)."""
    start = time.perf_counter()
    with duckdb.connect(str(directory / "agentprof.duckdb"), read_only=True) as conn:
        conn.execute(FLOOR).fetchall()
    return time.perf_counter() - start


def main_() -> None:
    args = store_arguments(__doc__, rounds=5, extra=_extra_arguments)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp) / "store"
        ensure_store(directory, args.calls)
        _, output = time_report(directory)  # warm-up: imports, price data, the OS page cache
        time_floor(directory)
        variants = {
            "report": lambda: time_report(directory)[0],
            "floor": lambda: time_floor(directory),
        }
        if args.fresh:
            compile_like_an_install()
            variants["fresh"] = lambda: time_fresh(directory)
            variants["imports"] = time_import_floor
            time_fresh(directory)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            order = list(variants.items())
            for name, measure in order if round_ % 2 == 0 else reversed(order):
                times[name].append(measure())
    reports, floors = times["report"], times["floor"]
    report, floor = statistics.median(reports), statistics.median(floors)
    ratios = sorted(r / f for r, f in zip(reports, floors, strict=True))
    print(f"agentprof report: median {report:.3f} s  ({_runs(reports)})  in-process, imports warm")
    print(f"DuckDB floor:     median {floor:.3f} s  ({_runs(floors)})")
    print(f"report / floor:   {report / floor:.1f}x (paired per round: {', '.join(f'{r:.1f}' for r in ratios)})")
    if args.fresh:
        fresh, imports = statistics.median(times["fresh"]), statistics.median(times["imports"])
        fixed = sorted(f - r for f, r in zip(times["fresh"], reports, strict=True))
        fresh_ratios = sorted(f / fl for f, fl in zip(times["fresh"], floors, strict=True))
        paired = ", ".join(f"{r:.1f}" for r in fresh_ratios)
        print(f"fresh process:    median {fresh:.3f} s  ({_runs(times['fresh'])})  as a user runs it")
        print(f"fresh / floor:    {fresh / floor:.1f}x (paired per round: {paired})")
        print(f"fixed cost:       median {statistics.median(fixed):.3f} s per run (fresh minus in-process, paired)")
        print(f"  least of it (a new interpreter importing the libraries): {imports:.3f} s ({_runs(times['imports'])})")
    recommendations = output.count('"kind"')
    print(f"{recommendations} recommendations in the report")


def _extra_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-fresh", dest="fresh", action="store_false", help="skip the fresh-process report and import floor"
    )


def _runs(times: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in times)


if __name__ == "__main__":
    main_()
