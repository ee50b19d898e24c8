"""Resident memory of a profiled process after 10,000 and after 1,000,000 model calls.

Each scenario runs in a fresh child process that records model calls through agentprof's own
recorder (``start_call`` / ``capture_request`` / ``finish_call``: what the SDK wrappers call,
with a realistic 1.5 kB request body and usage), inside tasks of 10 calls with two steps each,
at full speed. The SDK itself is left out: the openai SDK alone costs about 1 ms per call here,
which would make a million calls take 20 minutes, and its memory is not ours to measure.

Scenarios:

* ``store``: the normal pipeline (BatchSpanProcessor, exporter thread, spool segments). At full
  speed the producer outruns the exporter, so the bounded queue drops spans: that is the
  design (the agent is never slowed), and the drops are counted.
* ``stalled``: the exporter blocks forever on its first batch (a hung disk or collector): the
  queue fills, every later span is dropped and counted, and memory must stay flat.

Target (issue 6): RSS after 1,000,000 calls at most 50 MiB above the 10,000-call figure, in
both scenarios. Run::

    python benchmarks/memory.py                    # both scenarios, 10k and 1M calls (~5 min)
    python benchmarks/memory.py --calls 10000 200000 --scenarios stalled
    python benchmarks/memory.py --calls 2000 10000 30000 --scenarios stalled --body-kb 200

``--body-kb`` makes every request body that size (late in an agent loop a body is the whole
conversation): what the exporter has not taken yet is held beside its span, by count and by bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are a support agent. " * 40},
            {"role": "user", "content": "Ticket {n}: my invoice is wrong " * 8},
        ],
    }
)


def rss_mib() -> float:
    """Resident set size of this process (Linux ``/proc``)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import resource

    return pages * resource.getpagesize() / 2**20


def body_template(body_kb: int) -> str:
    """The request body of every call; with ``body_kb``, a system prompt padded to that size."""
    if not body_kb:
        return BODY
    data = json.loads(BODY)
    data["messages"][0]["content"] = ("You are a support agent. " * (body_kb * 1024 // 25 + 1))[: body_kb * 1024]
    return json.dumps(data)


def child(scenario: str, checkpoints: list[int], body_kb: int = 0) -> None:
    """Record calls up to each checkpoint and print one JSON line per checkpoint."""
    import agentprof
    from agentprof import _calls, _runtime
    from agentprof._usage import CanonicalUsage

    agentprof.configure(db=tempfile.mkdtemp(prefix="agentprof-memory-"))
    runtime = _runtime.get_runtime()
    assert runtime is not None
    exporter = runtime.exporter
    if scenario == "stalled":
        never = threading.Event()

        def stall(spans: object) -> object:
            never.wait()
            raise AssertionError("unreachable")

        exporter.export = stall  # type: ignore[method-assign, assignment]

    body = body_template(body_kb)
    usage = CanonicalUsage(input_tokens=412, output_tokens=38, cache_read_tokens=256)
    done = 0
    started = time.perf_counter()
    for checkpoint in checkpoints:
        while done < checkpoint:
            with agentprof.task("support"):
                for step in ("classify", "answer"):
                    with agentprof.step(step):
                        for _ in range(5):
                            attributes = {"server.address": "x"}
                            call = _calls.start_call("openai", "gpt-4o-mini", request_attributes=attributes)
                            token = _calls.bind_request(call)
                            _calls.capture_request(body.replace("{n}", str(done)).encode(), "https://x/v1/chat")
                            _calls.unbind_request(token)
                            _calls.finish_call(
                                call,
                                usage=usage,
                                response_model="gpt-4o-mini-2024-07-18",
                                finish_reasons=["stop"],
                                output=lambda: "billing",
                            )
                            done += 1
        gc.collect()
        print(
            json.dumps(
                {
                    "calls": done,
                    "rss_mib": round(rss_mib(), 1),
                    "seconds": round(time.perf_counter() - started, 1),
                    "emitted": exporter._emitted,
                    "exported": exporter._exported,
                    "pending_payloads": _calls.pending_payloads(),
                }
            ),
            flush=True,
        )
    if scenario == "stalled":
        import os

        os._exit(0)  # the stalled worker thread would block a normal shutdown forever
    agentprof.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--scenarios", nargs="+", default=["store", "stalled"], choices=["store", "stalled"])
    parser.add_argument("--body-kb", type=int, default=0, help="request bodies of this size (default: 1.5 kB)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, sorted(args.calls), args.body_kb)
        return
    for scenario in args.scenarios:
        command = [sys.executable, str(Path(__file__)), "--child", scenario, "--body-kb", str(args.body_kb)]
        command += ["--calls", *map(str, args.calls)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        points = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        first, last = points[0], points[-1]
        for point in points:
            print(
                f"{scenario:<8} after {point['calls']:>9,} calls: RSS {point['rss_mib']:7.1f} MiB  "
                f"({point['seconds']:6.1f} s; spans emitted {point['emitted']:,}, exported {point['exported']:,}, "
                f"payloads pending {point['pending_payloads']:,})"
            )
        growth = last["rss_mib"] - first["rss_mib"]
        verdict = "OK" if growth <= 50 else "OVER TARGET"
        print(f"{scenario:<8} growth {first['calls']:,} -> {last['calls']:,} calls: {growth:+.1f} MiB ({verdict})")


if __name__ == "__main__":
    main()
