"""Pieces shared by ``overhead.py`` and ``peers.py`` (not a benchmark itself).

* :class:`ServerProcess`: ``python -m agentprof.testserver --port 0 --no-prompt-cache`` in a
  separate process, its URL read from the first line it prints;
* :class:`NullExporter`: a span exporter that drops every batch (and counts the spans it got);
* :data:`GC`: wall time spent in the cyclic garbage collector and number of full collections;
* :func:`percentile`: nearest-rank percentile.

Both scripts are run as ``python benchmarks/<script>.py``, so this directory is on ``sys.path``.
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

SERVER_BANNER = "agentprof test server listening on "
EXPORT_NEVER_MS = 3_600_000  # span processors export only when the benchmark flushes them


# --- the test server, in its own process ---------------------------------------------------------
class ServerProcess:
    """``python -m agentprof.testserver`` as a child process; :attr:`url` from its first stdout line."""

    def __init__(self, python: str | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "agentprof.testserver", "--port", "0", "--no-prompt-cache"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # '' if the server died before printing
        if not line.startswith(SERVER_BANNER):
            self.stop()
            self._stderr.seek(0)
            raise RuntimeError(f"test server did not start: {line!r}\n{self._stderr.read().decode(errors='replace')}")
        self.url = line[len(SERVER_BANNER) :].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# --- span export that costs nothing --------------------------------------------------------------
class NullExporter(SpanExporter):
    """Accepts every batch and drops it; :attr:`spans` counts what it was given."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# --- garbage collector time (agentprof keeps SDK objects alive until export) -----------------------
class GcClock:
    """Wall time spent in the cyclic garbage collector (any thread) and number of full collections."""

    def __init__(self) -> None:
        self.total_ns = 0
        self.full = 0
        self._start = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.total_ns += time.perf_counter_ns() - self._start
            self.full += info["generation"] == 2


GC = GcClock()


# --- statistics -----------------------------------------------------------------------------------
def drain(stream: Iterable[Any]) -> int:
    """Read every chunk (or event) of a stream, as a user's loop would; returns how many there were."""
    count = 0
    for _ in stream:
        count += 1
    return count


def openai_stream(client: Any, model: str, messages: list[dict[str, str]]) -> Callable[[], int]:
    """One streamed chat completion with usage, every chunk read: returns the call (which returns its chunk count)."""

    def call() -> int:
        return drain(
            client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=0.2,
                max_tokens=1024,
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    return call


def anthropic_stream(client: Any, model: str, system: str, messages: list[dict[str, str]]) -> Callable[[], int]:
    """One streamed Messages call, every event read: returns the call (which returns its event count)."""

    def call() -> int:
        return drain(
            client.messages.create(model=model, max_tokens=1024, system=system, messages=messages, stream=True)
        )

    return call


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return float(ordered[rank - 1])


def close_round(variant: Any, flush_ns: int, *, record: bool) -> None:
    """Keep one round's figures on ``variant`` (when ``record``) and reset its per-round counters.

    ``variant`` is either script's ``Variant``: ``cur_*`` accumulate over the round's blocks,
    the ``round_*`` lists and totals keep recorded rounds.
    """
    times, calls = variant.cur_times, len(variant.cur_times)
    if record:
        variant.times_ns.extend(times)
        variant.round_median_ns.append(statistics.median(times))
        variant.round_mean_ns.append(statistics.fmean(times))
        variant.round_cpu_ns.append(variant.cur_cpu_ns / calls)
        variant.round_flush_ns.append(flush_ns)
        variant.round_gc_ns.append(variant.cur_gc_ns / calls)
        variant.full_collections += variant.cur_full
        variant.chunks += variant.cur_chunks
    variant.cur_times = []
    variant.cur_cpu_ns = variant.cur_gc_ns = variant.cur_full = variant.cur_chunks = 0
