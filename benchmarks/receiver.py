"""Spans per second through ``agentprof serve`` (OTLP/HTTP protobuf and JSON), end to end.

Starts ``agentprof serve --port 0`` as a **separate process** (the client must not share its
GIL), sends ``--requests`` export requests of ``--batch`` spans each from one client thread
(what one ``BatchSpanProcessor`` does; 503 answers are retried after 10 ms), then sends
SIGTERM and waits for the process to exit: the graceful shutdown maps and spools everything.

Each trace is an agent run: ``invoke_agent`` root, one tool step, and OTel GenAI ``chat`` spans
with usage and 2 KB of ``gen_ai.input.messages`` (so fingerprinting runs). Two figures per
encoding: *accepted* (requests answered 200 / wall time of sending) and *spooled* (spans /
time from the first request until the server has written every row and exited). On a shared
machine both move with the other load, so a third one does not: *per CPU-second*, spans over
the CPU time (user + system) the server process used after it started listening, until it exited.

A fourth figure, *sustained*, is the rate rows reach the spool while the client is still sending,
from the moment a tenth of them are there until SIGTERM: the rate a long stream is mapped at, without
the first second (a trace waits ``TraceBuffer.settle_s`` after its root for stragglers) or the
shutdown's flush. It needs a stream long enough for that window (``--requests 400``: 204,800 spans);
the client counts the lines of each new segment as it appears (~0.1 s of its CPU per 100,000 rows).

``--distinct-usage`` gives every call its own token counts (by default a trace's six calls repeat
six usages, so prices are computed once per usage and then remembered).

``--workers`` lists the ``agentprof serve --workers`` settings to compare, interleaved (A B, B A,
...): ``auto`` is the default (one worker process per CPU, at most 4), ``0`` one process. The
per-CPU-second figure counts the worker processes' CPU too (they are the server's children).

    python benchmarks/receiver.py                    # --requests 40 --batch 512 --repeat 3 --workers auto,0
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_URL = re.compile(r"on (http://127\.0\.0\.1:\d+)/v1/traces")
_SYSTEM = json.dumps([{"type": "text", "content": "You are a careful support agent. " * 60}])


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def build_request(index: int, batch: int, *, distinct_usage: bool = False) -> ExportTraceServiceRequest:
    """``batch`` spans: traces of 1 agent + 1 tool + 6 chat spans, unique ids per request."""
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    resource_spans.resource.attributes.append(_kv("service.name", "bench"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    t0 = time.time_ns()
    n = 0
    while n < batch:
        trace = os.urandom(16)
        root, tool = os.urandom(8), os.urandom(8)
        spans: list[tuple[bytes, bytes, str, dict[str, object]]] = [
            (
                root,
                b"",
                "invoke_agent support",
                {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"},
            )
        ]
        spans.append(
            (tool, root, "execute_tool search", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
        )
        for call in range(6):
            messages = json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": f"question {index}-{n}-{call}"}]}]
            )
            attributes: dict[str, object] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1200 + call + (7 * (index * batch + n) if distinct_usage else 0),
                "gen_ai.usage.output_tokens": 80,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.response.id": f"chatcmpl-{index}-{n}-{call}",
                "gen_ai.system_instructions": _SYSTEM,
                "gen_ai.input.messages": messages,
            }
            spans.append((os.urandom(8), tool if call % 2 else root, "chat gpt-4o-mini", attributes))
        for span_id, parent, name, attributes in spans[: batch - n]:
            span = Span(
                trace_id=trace,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=t0,
                end_time_unix_nano=t0 + 1_000_000,
            )
            span.attributes.extend(_kv(k, v) for k, v in attributes.items())
            scope.spans.append(span)
            n += 1
    return message


def to_json(message: ExportTraceServiceRequest) -> bytes:
    data = json_format.MessageToDict(message)
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(pid: int) -> float:
    """CPU time a running process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post(url: str, body: bytes, content_type: str) -> None:
    """Send one export request, retrying after 10 ms while the server answers 503."""
    while True:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            return
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise
            time.sleep(0.01)


@functools.cache
def _spool_only() -> list[str]:
    """``--ingest-every 0`` where serve has it (since 2026-12-03), else nothing (older trees).

    The receiver is measured, not loads of the spool into the store, and rows are counted in the spool.
    """
    command = [sys.executable, "-c", "from agentprof.cli import main; main()", "serve", "--help"]
    shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return ["--ingest-every", "0"] if "--ingest-every" in shown else []


class _SpoolWatch:
    """Counts the rows of each spool segment as it appears (segments are renamed into place whole)."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.marks: list[tuple[float, int]] = []
        self._counted: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _SpoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for path in self.spool.glob("seg-*.jsonl"):
                if path not in self._counted:
                    try:
                        self._counted[path] = path.read_bytes().count(b"\n")
                    except OSError:  # not counted, so read again at the next poll
                        continue
            self.marks.append((time.perf_counter(), sum(self._counted.values())))

    def sustained(self, spans: int, until: float) -> float | None:
        """Rows per second from the first mark with a tenth of ``spans`` spooled until ``until``; None if under 2 s."""
        start = next(((at, rows) for at, rows in self.marks if rows >= spans / 10), None)
        end = next(((at, rows) for at, rows in reversed(self.marks) if at <= until), None)
        if start is None or end is None or end[0] - start[0] < 2.0:
            return None
        return (end[1] - start[1]) / (end[0] - start[0])


def run_once(
    bodies: list[bytes], content_type: str, spans: int, workers: str = "auto"
) -> tuple[float, float, float, int, float | None]:
    """(accepted spans/s, spooled spans/s, spans per server CPU-second, rows written, sustained rows/s or None)."""
    cpu_before = _children_cpu_s()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", "from agentprof.cli import main; main()", "serve", "--port", "0", "--db", tmp]
        if workers != "auto":
            command += ["--workers", workers]
        server = subprocess.Popen(command + _spool_only(), stderr=subprocess.PIPE, text=True)
        assert server.stderr is not None
        match = _URL.search(server.stderr.readline())
        assert match, "serve did not start"
        cpu_started = _process_cpu_s(server.pid)
        url = match.group(1) + "/v1/traces"
        with _SpoolWatch(Path(tmp) / "spool") as watch:
            start = time.perf_counter()
            for body in bodies:
                post(url, body, content_type)
            sent = time.perf_counter()
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=600)
            done = time.perf_counter()
        cpu = _children_cpu_s() - cpu_before - cpu_started
        rows = sum(len(p.read_text().splitlines()) for p in (Path(tmp) / "spool").glob("seg-*.jsonl"))
    return spans / (sent - start), spans / (done - start), spans / cpu, rows, watch.sustained(spans, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--distinct-usage", action="store_true", help="no two calls with the same token counts")
    parser.add_argument("--only", choices=("protobuf", "json"), help="one encoding (default: both)")
    parser.add_argument("--workers", default="auto,0", help="serve --workers settings to compare (default: auto,0)")
    args = parser.parse_args()
    variants = args.workers.split(",")
    messages = [build_request(i, args.batch, distinct_usage=args.distinct_usage) for i in range(args.requests)]
    spans = args.requests * args.batch
    encodings = {
        "protobuf": ([m.SerializeToString() for m in messages], "application/x-protobuf"),
        "json": ([to_json(m) for m in messages], "application/json"),
    }
    for name, (bodies, content_type) in encodings.items():
        if args.only and name != args.only:
            continue
        size = sum(map(len, bodies)) / len(bodies) / 1024
        results: dict[str, list[tuple[float, float, float]]] = {variant: [] for variant in variants}
        steady: dict[str, list[float]] = {variant: [] for variant in variants}
        for round_ in range(args.repeat):
            for variant in variants if round_ % 2 == 0 else reversed(variants):
                a, s, c, rows, sustained = run_once(bodies, content_type, spans, variant)
                results[variant].append((a, s, c))
                if sustained is not None:
                    steady[variant].append(sustained)
                print(
                    f"{name} workers={variant}: {spans} spans ({size:.0f} KiB/request), accepted {a:,.0f}/s, "
                    f"spooled {s:,.0f}/s, {c:,.0f} per server CPU-second, {rows} rows, sustained "
                    + (f"{sustained:,.0f}/s" if sustained is not None else "n/a (a short stream)")
                )
                if rows != spans:
                    raise SystemExit(f"MISMATCH: {rows} rows spooled for {spans} spans sent")
        for variant, runs in results.items():
            accepted, spooled, per_cpu = zip(*runs, strict=True)
            print(
                f"{name} workers={variant} median: accepted {statistics.median(accepted):,.0f} spans/s, "
                f"end to end {statistics.median(spooled):,.0f} spans/s, "
                f"{statistics.median(per_cpu):,.0f} spans per server CPU-second, sustained "
                + (f"{statistics.median(steady[variant]):,.0f} spans/s" if steady[variant] else "n/a")
            )


if __name__ == "__main__":
    main()
