"""CPU the exporter thread spends per recorded model call, by SDK and model (the work off the caller's thread).

``overhead.py`` times the caller's thread; the exporter's work (mapping, pricing, fingerprinting,
the spool write) shows there only as the **+CPU** column, mixed with the calls' own CPU. This
script isolates it: ``--calls`` instrumented calls against the local test server (a separate
process) with the exporter held back (``schedule_delay_millis`` one hour, a queue large enough
for them all), then ``agentprof.flush()`` alone is timed, in process CPU time and wall time. Each
call's last message differs, so nothing is remembered from the previous call but what an agent
loop would share (the system prompt). Workloads are interleaved per round; medians are printed.

Models: ``gpt-4o-mini`` (flat prices), ``claude-haiku-4-5`` and ``claude-sonnet-4-5`` (both with
genai-prices long-context tiers, which kept them off the linear pricing path before 2026-12-02).

    python benchmarks/export_cpu.py                 # --calls 1500 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import anthropic
import openai
from _harness import ServerProcess

import agentprof

SYSTEM = ("You are a careful support agent. Follow the policy and cite the ticket. " * 20)[:1000]


def workloads(url: str) -> dict[str, Callable[[int], object]]:
    """One call per workload, its last message made distinct by ``i``."""
    oa = openai.OpenAI(base_url=url + "/v1", api_key="bench", max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0)

    def openai_call(i: int) -> object:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Summarise ticket {i}."}]
        return oa.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=64)  # type: ignore[arg-type]

    def anthropic_call(model: str) -> Callable[[int], object]:
        def call(i: int) -> object:
            messages = [{"role": "user", "content": f"Summarise ticket {i}."}]
            return an.messages.create(model=model, max_tokens=64, system=SYSTEM, messages=messages)  # type: ignore[arg-type]

        return call

    return {
        "openai gpt-4o-mini": openai_call,
        "anthropic claude-haiku-4-5": anthropic_call("claude-haiku-4-5"),
        "anthropic claude-sonnet-4-5": anthropic_call("claude-sonnet-4-5"),
    }


def export_cost(call: Callable[[int], object], calls: int, offset: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per call of exporting ``calls`` recorded calls."""
    with agentprof.task("export-cpu-bench"):
        for i in range(calls):
            call(offset + i)
    cpu, wall = time.process_time(), time.perf_counter()
    agentprof.flush()
    return (time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="recorded calls per workload and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = ServerProcess()
    try:
        with tempfile.TemporaryDirectory(prefix="agentprof-export-cpu-") as store:
            agentprof.configure(db=store, schedule_delay_millis=3_600_000, max_queue_size=4 * args.calls)
            agentprof.instrument()
            runs = workloads(server.url)
            for call in runs.values():  # warm-up: price tables, fingerprint tries, first segment
                export_cost(call, 100, 0)
            figures: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            for round_ in range(args.rounds):
                order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
                for name in order:
                    figures[name].append(export_cost(runs[name], args.calls, (round_ + 1) * 1_000_000))
            agentprof.uninstrument()
            agentprof.shutdown()
    finally:
        server.stop()
    print(f"{args.rounds} rounds x {args.calls} calls per workload; exporter work per recorded call (median):")
    for name, values in figures.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        rounds = ", ".join(f"{v[0]:.0f}" for v in values)
        print(f"  {name:30s} CPU {cpu:6.1f} µs   wall {wall:6.1f} µs   (CPU per round: {rounds})")


if __name__ == "__main__":
    main()
