"""Spool ingestion throughput: model-call rows per second into a fresh DuckDB store.

Run by hand from the repository root:

    python benchmarks/ingest.py                       # 200 segments x 1,000 rows
    python benchmarks/ingest.py --segments 50 --rows 2000 --repeat 5
    python benchmarks/ingest.py --existing 2000000    # into a store that already holds 2M calls

Each repetition writes N segments of realistic ``model_call`` rows (every field agentprof fills
for a priced, cached, streamed chat call) with the real ``SpoolWriter``, then times
``open_store(...).ingest_spool()`` on a new database (create + migrate are outside the timing).
Prints each run (wall and process CPU time, DuckDB's threads included) and the median; the
target is >= 200,000 rows/s.

``--existing N`` first loads N older calls (untimed), so the cost of finding stored duplicates
in a grown store shows. Span ids are then random 64-bit hex, as real ones are, for the stored
and the timed rows alike (the default run keeps the sequential ids of earlier figures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentprof._config import resolve_store_location
from agentprof._records import money_text
from agentprof._spool import SpoolWriter
from agentprof.store import open_store

STEPS = ("plan", "search", "summarise", "answer")
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1"))


DAY_NS = 86_400 * 10**9


def model_call_row(index: int, *, random_id: bool = False, days_ago: int = 0) -> dict[str, Any]:
    provider, model = MODELS[index % len(MODELS)]
    start = 1_760_000_000_000_000_000 + index * 1_000_000 - days_ago * DAY_NS
    input_tokens = 1_200 + index % 900
    return {
        "kind": "model_call",
        "trace_id": f"{index // 20:032x}",
        "span_id": hashlib.blake2b(b"%d" % index, digest_size=8).hexdigest() if random_id else f"{index:016x}",
        "parent_span_id": f"{index // 5:016x}",
        "name": f"chat {model}",
        "start_time_ns": start,
        "end_time_ns": start + 850_000_000 + index % 400_000_000,
        "status": "ok",
        "task_id": f"{index // 20:016x}",
        "task_name": "support_ticket",
        "step_name": STEPS[index % len(STEPS)],
        "step_kind": "step",
        "step_path": STEPS[index % len(STEPS)],
        "service_name": "bench",
        "pid": 4242,
        "operation": "chat",
        "provider": provider,
        "request_model": model,
        "response_model": model + "-2025-01-01",
        "server_address": "api.example.com",
        "stream": True,
        "stream_complete": True,
        "usage_known": True,
        "input_tokens": input_tokens,
        "output_tokens": 180 + index % 300,
        "cache_read_tokens": 1_024,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "raw_usage": json.dumps({"prompt_tokens": input_tokens, "completion_tokens": 180 + index % 300}),
        "priced": True,
        "cost_usd": "0.000412350000000000",
        "input_cost_usd": "0.00018",
        "output_cost_usd": money_text(Decimal("2.3235E-4")),  # as the exporter writes it: 0.00023235
        "price_source": "genai-prices",
        "price_version": "genai-prices 0.2.3",
        "priced_provider": provider,
        "priced_model": model,
        "request_fingerprint": f"{index * 7919:032x}",
        "prefix_fingerprints": json.dumps(
            [{"hash": f"{index % 97:016x}", "tokens": 1024, "index": 1, "role": "system"}]
        ),
        "cache_breakpoints": 1,
        "tool_count": 3,
        "output_hash": f"{index * 31:016x}",
        "output_chars": 720,
        "ttft_ms": 312.5,
        "finish_reasons": '["stop"]',
        "temperature": 0.2,
        "response_id": f"chatcmpl-{index:012d}",
        "attempts": 1,
    }


def write_spool(writer: SpoolWriter, first: int, count: int, rows_per_segment: int, **options: Any) -> None:
    for base in range(first, first + count, rows_per_segment):
        end = min(base + rows_per_segment, first + count)
        writer.write_segment(model_call_row(index, **options) for index in range(base, end))


def run_once(segments: int, rows_per_segment: int, existing: int) -> tuple[int, float, float]:
    """Return (rows, wall seconds, CPU seconds) of one timed ingest."""
    with tempfile.TemporaryDirectory(prefix="agentprof-bench-") as folder:
        location = resolve_store_location(Path(folder) / "store")
        writer = SpoolWriter(location.spool_dir)
        timed = segments * rows_per_segment
        random_id = existing > 0
        if existing:  # older calls, in yesterday's time range, with their own indexes
            write_spool(writer, timed, existing, max(rows_per_segment, 10_000), random_id=True, days_ago=1)
        with open_store(location, create=True):
            pass
        write_spool(writer, 0, timed, rows_per_segment, random_id=random_id)
        started, cpu_started = time.perf_counter(), time.process_time()
        with open_store(location, ingest=False) as store:
            result = store.ingest_spool()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert result.rows == timed, result
        return result.rows, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1_000, help="rows per segment")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--existing", type=int, default=0, help="calls already in the store (random span ids)")
    args = parser.parse_args()
    rates, cpus = [], []
    for run in range(args.repeat):
        rows, elapsed, cpu = run_once(args.segments, args.rows, args.existing)
        rates.append(rows / elapsed)
        cpus.append(cpu)
        print(f"run {run + 1}: {rows:,} rows in {elapsed:.3f} s = {rows / elapsed:,.0f} rows/s (CPU {cpu:.3f} s)")
    print(
        f"median: {statistics.median(rates):,.0f} model-call rows/s, CPU {statistics.median(cpus):.3f} s "
        "(open_store + ingest_spool, timed)"
    )


if __name__ == "__main__":
    main()
