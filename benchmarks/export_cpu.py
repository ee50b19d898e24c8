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
    python benchmarks/export_cpu.py --otlp          # the same with OTLP export on

``--otlp`` also exports every span over OTLP/HTTP (protobuf) to a sink in a separate process that
reads each request and answers 200 (:data:`SINK`): the flush then includes handing the mapped spans
to the OTLP batch processor, encoding them and posting them, all in this process's CPU time. The
sink's span, request and byte counts are printed, so a run that lost spans shows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable

import anthropic
import openai
from _harness import ServerProcess

import agentprof

SYSTEM = ("You are a careful support agent. Follow the policy and cite the ticket. " * 20)[:1000]


#: An OTLP/HTTP collector that counts and drops every request; ``GET`` answers its counts as JSON.
SINK = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
counts = {"requests": 0, "bytes": 0, "spans": 0}
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        counts["requests"] += 1
        counts["bytes"] += len(body)
        counts["spans"] += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        body = json.dumps(counts).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_sink() -> tuple[subprocess.Popen[str], str]:
    """The :data:`SINK` process and its base URL."""
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    return sink, f"http://127.0.0.1:{int(sink.stdout.readline())}"


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
    parser.add_argument("--otlp", action="store_true", help="also export over OTLP/HTTP to a sink process")
    args = parser.parse_args()
    server = ServerProcess()
    sink: subprocess.Popen[str] | None = None
    try:
        if args.otlp:  # the OTLP queue holds a whole workload's spans: the flush, not a full queue, sends them
            sink, sink_url = start_sink()
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
            os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(4 * args.calls)
        with tempfile.TemporaryDirectory(prefix="agentprof-export-cpu-") as store:
            agentprof.configure(
                db=store, schedule_delay_millis=3_600_000, max_queue_size=4 * args.calls, otlp=args.otlp or None
            )
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
        if sink is not None:
            with urllib.request.urlopen(sink_url) as answer:
                counts = json.load(answer)
            spans, requests, size = counts["spans"], counts["requests"], counts["bytes"]
            print(f"OTLP sink received {spans:,} spans in {requests:,} requests, {size:,} bytes")
    finally:
        server.stop()
        if sink is not None:
            sink.terminate()
            sink.wait()
    otlp = " and OTLP export" if args.otlp else ""
    print(f"{args.rounds} rounds x {args.calls} calls per workload; exporter{otlp} work per recorded call (median):")
    for name, values in figures.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        rounds = ", ".join(f"{v[0]:.0f}" for v in values)
        print(f"  {name:30s} CPU {cpu:6.1f} µs   wall {wall:6.1f} µs   (CPU per round: {rounds})")


if __name__ == "__main__":
    main()
