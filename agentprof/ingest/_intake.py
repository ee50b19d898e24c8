"""What ``agentprof serve`` does with a request body once HTTP is done with it, in one process.

:class:`Intake` decodes a body, drops spans it has already accepted, queues the rest, and one
writer thread assembles traces and writes spool segments, so the database is never opened here
and ``agentprof report`` can run meanwhile. Retries are idempotent: spans already accepted (by
trace and span id) are dropped on arrival, and ingestion drops anything that slips through.
:meth:`Intake.stop` drains the queue and writes every held span before returning.

An intake may own a :class:`~agentprof.ingest._decode.Shard` of the traces: it then keeps only
that share of every body (see :mod:`agentprof.ingest._workers`, which runs one per process).
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from agentprof import _safety
from agentprof._records import SpoolRow
from agentprof._spool import SpoolWriter
from agentprof._usage import CanonicalUsage
from agentprof.ingest._buffer import TraceBuffer
from agentprof.ingest._decode import (
    DecodedRequest,
    FlatSpan,
    RequestDecodeError,
    Shard,
    decode_json,
    decode_protobuf,
    weigh,
)
from agentprof.ingest._traces import MappedSpans

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_SEEN_CAPACITY = 1 << 18
#: Bytes of decoded spans queued for the writer (by :func:`~agentprof.ingest._decode.weigh`) before
#: requests are answered 503. A request that does not fit is still taken while the queue is at most
#: a quarter full: one larger than the whole budget (a collector's 64 MiB batch) must not wait for
#: an empty queue, which steady traffic from other clients may never leave.
QUEUE_BYTES = 64 * 1024 * 1024
_TICK_S = 0.2


@dataclass(slots=True)
class ReceiverStats:
    """Counters of one receiver (for the shutdown summary and tests)."""

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    spans_duplicate: int = 0
    throttled: int = 0
    rows_written: int = 0
    write_failures: int = 0

    def add(self, other: ReceiverStats) -> None:
        """Add ``other``'s counters to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one request body: the HTTP answer follows from it.

    Attributes:
        status: ``ok`` (queued, or every span already held), ``busy`` (the queue is full: 503,
            the client retries), ``invalid`` (not a trace request: 400).
        rejected: Spans that broke the id rules (``partial_success``).
        message: The first rejection's reason (``ok``) or what is wrong with the body (``invalid``).
    """

    status: Literal["ok", "busy", "invalid"]
    rejected: int = 0
    message: str = ""


BUSY = Outcome("busy")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An intake's counters at one moment (what a worker process reports with each answer)."""

    stats: ReceiverStats
    totals: tuple[int, int, int, int]  # MappedSpans: tasks, steps, model calls, skipped

    @staticmethod
    def mapped(totals: tuple[int, int, int, int]) -> MappedSpans:
        """``totals`` as :class:`MappedSpans` (without rows)."""
        tasks, steps, model_calls, skipped = totals
        return MappedSpans(tasks=tasks, steps=steps, model_calls=model_calls, skipped=skipped)


class Intake:
    """Decodes request bodies into this process's trace buffer and spool.

    Use :meth:`start` / :meth:`stop`. Thread-safe: HTTP threads call :meth:`submit` at once.
    """

    def __init__(
        self,
        spool_dir: Path,
        *,
        queue_size: int = 256,
        queue_bytes: int = QUEUE_BYTES,
        buffer: TraceBuffer | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.shard = shard
        self.queue_bytes = queue_bytes
        self.stats = ReceiverStats()
        self._writer = SpoolWriter(spool_dir)
        self._buffer = buffer or TraceBuffer(self._write_rows)
        self._queue: queue.Queue[tuple[list[FlatSpan], int] | None] = queue.Queue(maxsize=queue_size)
        self._queued_bytes = 0  # weight of the spans in _queue, under _lock
        self._recent_weights: deque[int] = deque(maxlen=8)  # of the requests queued lately
        self._seen: OrderedDict[int, None] = OrderedDict()  # by span_key(), the latest _SEEN_CAPACITY spans
        self._lock = threading.Lock()
        self._hold = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def totals(self) -> MappedSpans:
        """What was mapped and spooled so far (tasks, steps, model calls, skipped spans)."""
        return self._buffer.totals

    def snapshot(self) -> Snapshot:
        """The counters now, as plain values."""
        totals = self._buffer.totals
        with self._lock:
            stats = ReceiverStats(*astuple(self.stats))
        return Snapshot(stats, (totals.tasks, totals.steps, totals.model_calls, totals.skipped))

    def start(self) -> Intake:
        """Load the price data and start the writer thread."""
        warm_up()
        self._thread = threading.Thread(target=self._run_writer, name="agentprof-serve-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Write everything queued and held, then end the writer thread. Idempotent.

        The caller makes sure no :meth:`submit` is still running (the HTTP server is closed first).
        """
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    @contextmanager
    def hold_writer(self) -> Iterator[None]:
        """Pause the writer thread (its queue fills, then requests get 503): maintenance and tests."""
        with self._hold:
            yield

    # --- called by request threads -------------------------------------------------------
    def submit(self, body: bytes, content_type: str) -> Outcome:
        """Decode ``body`` (``content_type`` is :data:`PROTOBUF` or :data:`JSON`) and queue its new spans.

        A queue that looks full answers ``busy`` before decoding: under sustained overload clients
        resend every refused request, and decoding each only to refuse it took CPU from the writer
        that would drain the queue. (A body that would be ``invalid`` is then refused as ``busy``
        first, and as ``invalid`` when resent.)
        """
        with self._lock:
            self.stats.requests += 1
            if self._looks_full():
                self.stats.throttled += 1
                return BUSY
        try:
            if content_type == PROTOBUF:
                decoded = decode_protobuf(body, self.shard)
            else:
                decoded = decode_json(body, self.shard)
        except RequestDecodeError as exc:
            return Outcome("invalid", message=str(exc))
        return self._queue_decoded(decoded)

    def submit_decoded(self, decoded: DecodedRequest) -> Outcome:
        """Queue the new spans of a request decoded elsewhere (a worker pool's front end decodes JSON)."""
        with self._lock:
            self.stats.requests += 1
        return self._queue_decoded(decoded)

    def _queue_decoded(self, decoded: DecodedRequest) -> Outcome:
        if not self.accept(decoded):
            return BUSY
        return Outcome("ok", decoded.rejected, decoded.first_error)

    def _looks_full(self) -> bool:
        """Whether the lightest of the requests accepted lately would be refused now (caller holds ``_lock``).

        The lightest, so that a client sending small requests is not refused for the size of
        another's large ones.
        """
        return self._queue.full() or self._over_budget(min(self._recent_weights, default=0))

    def _over_budget(self, weight: int) -> bool:
        """Whether queuing ``weight`` more would pass :data:`QUEUE_BYTES` (caller holds ``_lock``)."""
        queued = self._queued_bytes
        return queued > self.queue_bytes // 4 and queued + weight > self.queue_bytes

    def accept(self, decoded: DecodedRequest) -> bool:
        """Queue the new spans of a decoded request; ``False`` when the queue is full.

        Full means ``queue_size`` requests or ``queue_bytes`` of spans, whichever comes first: a
        count alone let a burst of large spans (a collector flushing its backlog) hold gigabytes.
        """
        keys = [span_key(span) for span in decoded.spans]
        for span in decoded.spans:
            weigh(span)  # outside the lock: kept on the span, summed below
        with self._lock:
            fresh = [span for span, key in zip(decoded.spans, keys, strict=True) if key not in self._seen]
            if not fresh:
                self.stats.spans_duplicate += len(decoded.spans)
                self.stats.spans_rejected += decoded.rejected
                return True
            weight = sum(span.weight for span in fresh)
            if self._over_budget(weight):
                self.stats.throttled += 1
                return False
            try:
                self._queue.put_nowait((fresh, weight))
            except queue.Full:
                self.stats.throttled += 1
                return False
            self._queued_bytes += weight
            self._recent_weights.append(weight)
            for key in keys:
                self._seen[key] = None
            while len(self._seen) > _SEEN_CAPACITY:
                self._seen.popitem(last=False)
            self.stats.spans_accepted += len(fresh)
            self.stats.spans_duplicate += len(decoded.spans) - len(fresh)
            self.stats.spans_rejected += decoded.rejected
        return True

    # --- the writer thread -------------------------------------------------------------
    def _run_writer(self) -> None:
        flushed = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=_TICK_S)
            except queue.Empty:
                item = ([], 0)
            with self._hold:
                try:
                    if item is None:
                        self._drain()
                        self._buffer.flush_all()
                        return
                    self._take(item)
                    # once a tick, not after every batch: the check walks every trace held
                    if time.monotonic() - flushed >= _TICK_S:
                        self._buffer.flush_ready()
                        flushed = time.monotonic()
                except Exception as exc:  # a mapping bug must not stop the receiver
                    _safety.internal_error("serve.writer", exc)

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._take(item)

    def _take(self, item: tuple[list[FlatSpan], int]) -> None:
        """Hand a queued batch to the buffer; its bytes leave the queue's count first."""
        batch, weight = item
        if weight:
            with self._lock:
                self._queued_bytes -= weight
        if batch:
            self._buffer.add(batch)

    def _write_rows(self, rows: list[SpoolRow]) -> None:
        try:
            written = self._writer.write_segment(rows)
        except OSError as exc:
            with self._lock:
                self.stats.write_failures += 1
            _safety.logger.error(
                "agentprof serve: cannot write to %s (%s); %d rows lost", self.spool_dir, exc, len(rows)
            )
            return
        with self._lock:
            self.stats.rows_written += written


def span_key(span: FlatSpan) -> int:
    """The span's trace and span ids as one integer: what remembering it costs (~50 bytes, not ~270).

    Exact, unlike a hash: two spans never share a key. A tuple of the two hex strings kept both
    strings alive, 70 MiB per receiver process at :data:`_SEEN_CAPACITY`.
    """
    return int(span.trace_id + span.span_id, 16)


def warm_up() -> None:
    """Load the price data now (~0.2 s of CPU), not while the first received batch waits for it."""
    try:
        from agentprof.pricing import price_call, resolve_model

        usage = CanonicalUsage(input_tokens=1, output_tokens=1)
        price_call(usage, resolve_model("openai", "gpt-4o", None), timestamp=datetime.now(UTC))
    except Exception as exc:  # pricing will say so again, per call; serving must start regardless
        _safety.internal_error("serve.warm_up", exc)


def tune_gc_for_serving() -> None:
    """Tune the cyclic garbage collector for a process that holds many received spans.

    Modules and price data live as long as the process: frozen, no collection walks them again.
    Young collections every 20,000 allocations instead of 700: one request allocates more than
    that, and every collection that reaches the old generation walks all the spans held. Together
    they took the collector from ~8% to ~3% of the receiver's CPU.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
