"""Time agentprof adds to each SDK model call, against the bare SDK in the same run.

Run by hand from the repository root (never collected as a test):

    python benchmarks/overhead.py                          # 15 rounds x 200 calls per variant
    python benchmarks/overhead.py --rounds 5 --calls 100 --json overhead.json
    python benchmarks/overhead.py --groups openai          # one workload only (e.g. under cProfile)

The local model server (``python -m agentprof.testserver --port 0 --no-prompt-cache``) runs in
a separate process, so its CPU does not run under this process's GIL (on a ~1-core machine it
still competes for the core: that is part of every variant equally).

Workloads and variants. Each round runs N calls per variant of a workload, interleaved in
blocks of ``--block`` calls (A B C, C B A, A B C ...), so that every variant of a round spans the
same seconds: this machine's speed drifts by 2x within seconds, and whole 200-call blocks paired
badly.

* ``openai``: ``chat.completions.create`` (non-streaming)
    - ``bare``: the SDK, nothing instrumented;
    - ``otel-span``: a hand-made OpenTelemetry SDK span around the bare call, 4 request
      attributes at creation and 4 response attributes set after the call (8 in all), through
      a private ``TracerProvider`` + ``BatchSpanProcessor`` with a no-op exporter: the
      reference point "one bare SDK span with 8 attributes";
    - ``agentprof``: ``agentprof.instrument()`` for each block, calls inside one task that
      spans the block (so only the per-call cost is timed), ``agentprof.uninstrument()`` after.
* ``anthropic``: ``messages.create`` (non-streaming): ``bare`` / ``agentprof``.
* ``openai-stream``: ``stream=True, stream_options={"include_usage": True}``, every chunk
  consumed; ``[[chunks:N]]`` makes the server split the answer into N content chunks.
* ``anthropic-stream``: ``messages.create(stream=True)``, every event consumed (``message_start``,
  N ``content_block_delta`` events and the rest of the Messages event sequence).
* ``openai-stream-long``, ``anthropic-stream-long``: the same with a scripted reply long enough
  for ``--long-chunks`` content chunks (default 100), a quarter of the calls per round. Against
  the short stream of the same SDK in the same rounds they give the **marginal** cost of a chunk,
  (added(long) - added(short)) / (extra chunks), next to the bare SDK's own per-chunk time: the
  per-call cost (the span, pricing, the hand-over) no longer counts as per-chunk cost.

Per call: wall time (``perf_counter_ns``). Span processors are configured never to export on
their own timer; they are flushed at the end of each round, so export work never lands in
another variant's timed block. Per round: process CPU time (``process_time_ns``, all threads of
this process) of the variant's blocks plus its flush, so export (mapping, pricing, spool write)
is charged to the variant that caused it but is not in the per-call wall times; and the time the
cyclic garbage collector ran (a collection is charged to whichever block triggered it).
Reported per variant: median, mean and p99 per call (µs), CPU per
call, and against ``bare`` of the same round: added median (median over rounds of
``median(variant) - median(bare)``, with the 25th..75th percentile of those per-round
differences), the paired ratio, the added mean and the added CPU.

At the end the agentprof spool is flushed and its model-call rows are counted: they must equal
the instrumented calls made (warm-up included), or the benchmark measured nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anthropic
import openai
from _harness import (  # benchmarks/ is sys.path[0]
    EXPORT_NEVER_MS,
    GC,
    NullExporter,
    ServerProcess,
    anthropic_stream,
    close_round,
    openai_stream,
    percentile,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

import agentprof
from agentprof import _runtime

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GROUPS = ("openai", "anthropic", "openai-stream", "anthropic-stream", "openai-stream-long", "anthropic-stream-long")
_SHORT_REPLY_CHARS = 40  # the default reply ("Acknowledged: <8 hex>.") and the short streams' are shorter
LONG_SHARE = 4  # the long streams make calls // LONG_SHARE calls per round (in blocks // LONG_SHARE)


# --- variants -------------------------------------------------------------------------------------
@dataclass
class Variant:
    group: str
    name: str
    call: Callable[[], int]  # makes one model call; returns the number of stream chunks read
    instrumented: bool = False  # agentprof.instrument() for the round
    flush: Callable[[], object] | None = None  # drains this variant's span processor after a round
    times_ns: list[int] = field(default_factory=list)
    round_median_ns: list[float] = field(default_factory=list)
    round_mean_ns: list[float] = field(default_factory=list)
    round_cpu_ns: list[float] = field(default_factory=list)  # per call
    round_flush_ns: list[int] = field(default_factory=list)
    round_gc_ns: list[float] = field(default_factory=list)  # per call
    full_collections: int = 0
    cur_times: list[int] = field(default_factory=list)  # the round in progress
    cur_cpu_ns: int = 0
    cur_gc_ns: int = 0
    cur_full: int = 0
    cur_chunks: int = 0
    chunks: int = 0
    calls_made: int = 0  # warm-up included


def build_variants(url: str, args: argparse.Namespace) -> dict[str, list[Variant]]:
    system = ("You are a careful support agent. Follow the policy and cite the ticket. " * 200)[: args.prompt_chars]
    oa = openai.OpenAI(base_url=url + "/v1", api_key="bench", max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Summarise ticket 4711."}]
    stream_messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Summarise ticket 4711. [[chunks:{args.chunks}]]"},
    ]
    an_messages = [{"role": "user", "content": "Summarise ticket 4711."}]
    an_stream_messages = [{"role": "user", "content": f"Summarise ticket 4711. [[chunks:{args.chunks}]]"}]
    long_reply = ("Ticket 4711: refund approved, customer notified. " * (args.long_chunks // 10 + 1))[
        : 4 * args.long_chunks
    ]
    long_request = f"Summarise ticket 4711. [[reply:{long_reply}]] [[chunks:{args.long_chunks}]]"
    long_messages = [{"role": "system", "content": system}, {"role": "user", "content": long_request}]
    an_long_messages = [{"role": "user", "content": long_request}]

    def openai_call() -> int:
        oa.chat.completions.create(model=OPENAI_MODEL, messages=messages, temperature=0.2, max_tokens=64)
        return 0

    provider = TracerProvider()
    processor = BatchSpanProcessor(NullExporter(), schedule_delay_millis=EXPORT_NEVER_MS)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("overhead-bench")
    host = url.split("://", 1)[1].split(":", 1)[0]

    def otel_call() -> int:
        with tracer.start_as_current_span(
            f"chat {OPENAI_MODEL}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": OPENAI_MODEL,
                "server.address": host,
            },
        ) as span:
            response = oa.chat.completions.create(model=OPENAI_MODEL, messages=messages, temperature=0.2, max_tokens=64)
            usage = response.usage
            span.set_attributes(
                {
                    "gen_ai.response.model": response.model,
                    "gen_ai.response.id": response.id,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else 0,
                    "gen_ai.usage.output_tokens": usage.completion_tokens if usage else 0,
                }
            )
        return 0

    def anthropic_call() -> int:
        an.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, system=system, messages=an_messages)
        return 0

    def bare_and_agentprof(group: str, call: Callable[[], int]) -> list[Variant]:
        return [
            Variant(group, "bare", call),
            Variant(group, "agentprof", call, instrumented=True, flush=agentprof.flush),
        ]

    variants = {
        "openai": [
            Variant("openai", "bare", openai_call),
            Variant("openai", "otel-span", otel_call, flush=processor.force_flush),
            Variant("openai", "agentprof", openai_call, instrumented=True, flush=agentprof.flush),
        ],
        "anthropic": bare_and_agentprof("anthropic", anthropic_call),
        "openai-stream": bare_and_agentprof("openai-stream", openai_stream(oa, OPENAI_MODEL, stream_messages)),
        "anthropic-stream": bare_and_agentprof(
            "anthropic-stream", anthropic_stream(an, ANTHROPIC_MODEL, system, an_stream_messages)
        ),
        "openai-stream-long": bare_and_agentprof("openai-stream-long", openai_stream(oa, OPENAI_MODEL, long_messages)),
        "anthropic-stream-long": bare_and_agentprof(
            "anthropic-stream-long", anthropic_stream(an, ANTHROPIC_MODEL, system, an_long_messages)
        ),
    }
    return {group: variants[group] for group in args.groups}


def run_block(variant: Variant, calls: int) -> None:
    """``calls`` timed calls of ``variant``; agentprof is instrumented only for the block."""
    times = [0] * calls
    chunks = 0
    call = variant.call
    perf = time.perf_counter_ns
    if variant.instrumented:
        agentprof.instrument()
    gc0, full0 = GC.total_ns, GC.full
    cpu0 = time.process_time_ns()
    try:
        scope = agentprof.task("overhead-bench") if variant.instrumented else contextlib.nullcontext()
        with scope:
            for i in range(calls):
                t0 = perf()
                chunks += call()
                times[i] = perf() - t0
    finally:
        if variant.instrumented:
            agentprof.uninstrument()
    variant.cur_cpu_ns += time.process_time_ns() - cpu0
    variant.cur_gc_ns += GC.total_ns - gc0
    variant.cur_full += GC.full - full0
    variant.cur_times.extend(times)
    variant.cur_chunks += chunks
    variant.calls_made += calls


def finish_round(variant: Variant, *, record: bool) -> None:
    """Export this round's spans (CPU and GC charged to the variant), then keep the round's figures."""
    gc0, full0 = GC.total_ns, GC.full
    cpu0 = time.process_time_ns()
    f0 = time.perf_counter_ns()
    if variant.flush is not None:
        variant.flush()
    flush_ns = time.perf_counter_ns() - f0
    variant.cur_cpu_ns += time.process_time_ns() - cpu0
    variant.cur_gc_ns += GC.total_ns - gc0
    variant.cur_full += GC.full - full0
    close_round(variant, flush_ns, record=record)


def run_round(variants: list[Variant], calls: int, block: int, *, record: bool) -> None:
    """``calls`` calls per variant in blocks of ``block``: A B C, C B A, A B C ... then flush each."""
    sizes = [min(block, calls - done) for done in range(0, calls, block)]
    for index, size in enumerate(sizes):
        for variant in variants if index % 2 == 0 else reversed(variants):
            run_block(variant, size)
    for variant in variants:
        finish_round(variant, record=record)


# --- statistics -----------------------------------------------------------------------------------
def summarise(variant: Variant, bare: Variant) -> dict[str, Any]:
    us = 1e-3
    result: dict[str, Any] = {
        "group": variant.group,
        "variant": variant.name,
        "calls": len(variant.times_ns),
        "median_us": statistics.median(variant.times_ns) * us,
        "mean_us": statistics.fmean(variant.times_ns) * us,
        "p99_us": percentile(variant.times_ns, 99) * us,
        "cpu_per_call_us": statistics.median(variant.round_cpu_ns) * us,
        "flush_ms_per_round": statistics.median(variant.round_flush_ns) * 1e-6,
        "gc_per_call_us": statistics.fmean(variant.round_gc_ns) * us,
        "full_collections": variant.full_collections,
        "round_median_us": [m * us for m in variant.round_median_ns],
    }
    if variant.chunks:
        result["chunks_per_call"] = variant.chunks / len(variant.times_ns)
    if variant is not bare:
        added = [v - b for v, b in zip(variant.round_median_ns, bare.round_median_ns, strict=True)]
        result["round_added_us"] = [a * us for a in added]
        result["added_median_us"] = statistics.median(added) * us
        result["added_p25_us"] = percentile(added, 25) * us
        result["added_p75_us"] = percentile(added, 75) * us
        result["ratio"] = statistics.median(
            v / b for v, b in zip(variant.round_median_ns, bare.round_median_ns, strict=True)
        )
        result["added_mean_us"] = (
            statistics.median(v - b for v, b in zip(variant.round_mean_ns, bare.round_mean_ns, strict=True)) * us
        )
        result["added_cpu_us"] = (
            statistics.median(v - b for v, b in zip(variant.round_cpu_ns, bare.round_cpu_ns, strict=True)) * us
        )
        if variant.chunks:
            result["added_median_per_chunk_us"] = result["added_median_us"] / result["chunks_per_call"]
    return result


# --- checking that agentprof recorded every call ---------------------------------------------------
def spool_counts(spool_dir: Path) -> Counter[str]:
    """Model-call rows in the spool, keyed like the workload groups."""
    counts: Counter[str] = Counter()
    for segment in spool_dir.glob("seg-*.jsonl"):
        with open(segment, encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                if row.get("kind") != "model_call":
                    continue
                model = row.get("request_model") or ""
                group = "anthropic" if model.startswith("claude") else "openai"
                if row.get("stream"):
                    group += "-stream-long" if (row.get("output_chars") or 0) > _SHORT_REPLY_CHARS else "-stream"
                counts[group] += 1
                if not row.get("usage_known"):
                    counts["usage_unknown"] += 1
    return counts


# --- output ---------------------------------------------------------------------------------------
def marginal_chunk_costs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per SDK: what one more streamed chunk costs bare and with agentprof (short vs long stream, same rounds)."""
    by_key = {(row["group"], row["variant"]): row for row in rows}
    results = []
    for sdk in ("openai", "anthropic"):
        short_bare = by_key.get((f"{sdk}-stream", "bare"))
        long_bare = by_key.get((f"{sdk}-stream-long", "bare"))
        short_agent = by_key.get((f"{sdk}-stream", "agentprof"))
        long_agent = by_key.get((f"{sdk}-stream-long", "agentprof"))
        if not (short_bare and long_bare and short_agent and long_agent):
            continue
        extra = long_bare["chunks_per_call"] - short_bare["chunks_per_call"]
        bare_per_chunk = (long_bare["median_us"] - short_bare["median_us"]) / extra
        added = [
            (long - short) / extra
            for long, short in zip(long_agent["round_added_us"], short_agent["round_added_us"], strict=True)
        ]
        added_per_chunk = statistics.median(added)
        results.append(
            {
                "sdk": sdk,
                "extra_chunks": extra,
                "bare_per_chunk_us": bare_per_chunk,
                "added_per_chunk_us": added_per_chunk,
                "share": added_per_chunk / bare_per_chunk,
                "rounds_under_5_percent": sum(a < 0.05 * bare_per_chunk for a in added),
                "rounds": len(added),
            }
        )
    return results


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'workload':<23}{'variant':<11}{'median':>8}{'mean':>8}{'p99':>8}{'CPU/call':>9}{'GC/call':>8}{'gen2':>5}"
        f"  {'added median [p25..p75]':<28}{'ratio':>7}{'+mean':>8}{'+CPU':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        line = (
            f"{row['group']:<23}{row['variant']:<11}{row['median_us']:>8.0f}{row['mean_us']:>8.0f}"
            f"{row['p99_us']:>8.0f}{row['cpu_per_call_us']:>9.0f}{row['gc_per_call_us']:>8.0f}{row['full_collections']:>5}"
        )
        if "added_median_us" in row:
            spread = f"{row['added_median_us']:+.0f} [{row['added_p25_us']:+.0f}..{row['added_p75_us']:+.0f}]"
            line += f"  {spread:<28}{row['ratio']:>7.3f}{row['added_mean_us']:>+8.0f}{row['added_cpu_us']:>+8.0f}"
        print(line)
    print(
        "µs per call; CPU and GC per call include the end-of-round flush (export); gen2 = full collections; "
        "added = median over rounds of (variant - bare) in the same round"
    )
    for row in rows:
        if "added_median_per_chunk_us" in row:
            print(
                f"{row['group']} {row['variant']}: {row['chunks_per_call']:.0f} chunks per call, "
                f"added {row['added_median_per_chunk_us']:+.1f} µs per chunk (median), "
                f"{row['added_cpu_us'] / row['chunks_per_call']:+.1f} µs CPU per chunk"
            )
    for cost in marginal_chunk_costs(rows):
        print(
            f"{cost['sdk']} streams: one more chunk costs {cost['bare_per_chunk_us']:.1f} µs bare, agentprof adds "
            f"{cost['added_per_chunk_us']:+.2f} µs ({100 * cost['share']:+.1f}%; "
            f"{cost['extra_chunks']:.0f} extra chunks) -> {'met' if cost['share'] < 0.05 else 'NOT met'} "
            f"(target < 5%) [paired: {cost['rounds_under_5_percent']}/{cost['rounds']} rounds]"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per variant per round (default 200)")
    parser.add_argument(
        "--block", type=int, default=20, help="calls per variant before switching to the next one (default 20)"
    )
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per variant before round 1")
    parser.add_argument("--prompt-chars", type=int, default=1000, help="length of the system prompt (default 1000)")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer (default 20)")
    parser.add_argument(
        "--long-chunks", type=int, default=100, help="content chunks of the long streamed answers (default 100)"
    )
    parser.add_argument(
        "--groups",
        type=lambda s: [g for g in s.split(",") if g],
        default=list(GROUPS),
        help=f"comma-separated workloads (default {','.join(GROUPS)})",
    )
    parser.add_argument("--json", type=Path, help="also write every figure (and per-round medians) here")
    args = parser.parse_args(argv)
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    return args


def _sizes(group: str, calls: int, block: int) -> tuple[int, int]:
    """Calls per variant per round and block size for ``group`` (the long streams make a quarter)."""
    if group.endswith("-long"):
        return max(1, calls // LONG_SHARE), max(1, block // LONG_SHARE)
    return calls, block


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    server = ServerProcess()
    with tempfile.TemporaryDirectory(prefix="agentprof-overhead-") as tmp:
        try:
            # Spans are exported only by the explicit flush at the end of each round, so export work
            # never lands in another variant's timed block; its CPU is charged to agentprof's round.
            agentprof.configure(db=tmp, service_name="overhead-bench", schedule_delay_millis=EXPORT_NEVER_MS)
            runtime = _runtime.get_runtime()
            assert runtime is not None
            spool_dir = runtime.location.spool_dir
            groups = build_variants(server.url, args)
            for group, variants in groups.items():
                run_round(variants, *_sizes(group, args.warmup, args.block), record=False)
            for round_index in range(args.rounds):
                for group, variants in groups.items():
                    run_round(variants, *_sizes(group, args.calls, args.block), record=True)
                print(f"round {round_index + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)", flush=True)
            agentprof.flush()
            counts = spool_counts(spool_dir)
            agentprof.shutdown()
        finally:
            server.stop()

    rows = [summarise(variant, variants[0]) for variants in groups.values() for variant in variants]
    print()
    print(
        f"{datetime.date.today()}  nproc={os.cpu_count()}  python {platform.python_version()}  "
        f"openai {version('openai')}  anthropic {version('anthropic')}  "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}  agentprof {agentprof.__version__}"
    )
    print(
        f"{args.rounds} rounds x {args.calls} calls per variant in blocks of {args.block} (+{args.warmup} warm-up), "
        f"system prompt {args.prompt_chars} chars, elapsed {time.perf_counter() - started:.0f} s"
    )
    print()
    print_table(rows)

    expected = {group: sum(v.calls_made for v in variants if v.instrumented) for group, variants in groups.items()}
    ok = all(counts.get(group, 0) == n for group, n in expected.items())
    recorded = sum(counts.get(group, 0) for group in expected)
    detail = ", ".join(f"{group} {counts.get(group, 0)}/{n}" for group, n in expected.items())
    print()
    print(
        f"spool check: {recorded} model calls recorded / {sum(expected.values())} instrumented calls made "
        f"({detail}); usage unknown: {counts.get('usage_unknown', 0)} -> {'OK' if ok else 'MISMATCH'}"
    )

    if args.json is not None:
        payload = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"nproc": os.cpu_count(), "platform": platform.platform()},
            "python": platform.python_version(),
            "versions": {p: version(p) for p in ("openai", "anthropic", "opentelemetry-sdk", "agentprof")},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": rows,
            "spool_check": {"expected": expected, "recorded": dict(counts), "ok": ok},
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
