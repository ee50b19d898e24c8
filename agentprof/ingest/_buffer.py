"""Received spans held per trace until the trace is complete enough to attribute, then spooled.

Exporters send children before parents (a parent ends last), often in different requests, and
a foreign model call can only be attributed to its task and step once its ancestors are here.
So a trace is mapped when its root has arrived and nothing new came for ``settle_s`` seconds,
or ``max_wait_s`` after its last span whatever arrived. agentprof's own spans carry their task
and step and are written at once. A mapped trace is *retained* for ``retain_s``: a straggler
then is mapped with the whole tree around it, and only its own rows are written (the store's
primary keys would ignore a repeated row anyway).

Memory is bounded by spans *and* by bytes (``max_spans``, ``max_bytes``, weighed by
:func:`~agentprof.ingest._decode.weigh`): a received span is mostly content (a chat span with its
messages is kilobytes to megabytes), so a count alone let a burst of large spans hold gigabytes.
For the same reason a span, once written, keeps only what attribution of its trace's later spans
reads (:func:`release_content`): markers, names, models, usage; not its messages.

Rows are handed to the sink once per call (:meth:`TraceBuffer.add`, :meth:`~TraceBuffer.flush_ready`,
:meth:`~TraceBuffer.flush_all`), in batches of at most ``segment_rows``, not once per trace: each
batch becomes one spool segment, and a segment per trace (a file created, renamed and later
loaded by the store for a handful of rows) cost more than mapping the trace did.

Not thread-safe: one writer thread owns a buffer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentprof import _semconv as sc
from agentprof._records import SpoolRow
from agentprof.ingest._decode import SPAN_OVERHEAD, FlatSpan, weigh
from agentprof.ingest._prepare import BLOCK_KEYS
from agentprof.ingest._traces import MappedSpans, TraceMapper

RowSink = Callable[[list[SpoolRow]], None]
#: Rows per sink call at most: large enough that file creation is amortised, small enough that a
#: segment the store cannot read (moved aside whole) or a crash mid-write loses little.
SEGMENT_ROWS = 8192
#: Bytes of spans held (waiting or retained) before the oldest traces are written early.
MAX_HELD_BYTES = 128 * 1024 * 1024
#: An attribute value longer than this (or a list or map) is content, not something attribution reads.
CONTEXT_VALUE_CHARS = 512


@dataclass(slots=True)
class _Trace:
    spans: dict[str, FlatSpan] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    last_seen: float = 0.0
    has_root: bool = False
    flushed_at: float | None = None
    weight: int = 0  # of the spans held, by weigh()


class TraceBuffer:
    """Assembles traces from batches of spans and hands their rows to ``sink``."""

    def __init__(
        self,
        sink: RowSink,
        mapper: TraceMapper | None = None,
        *,
        settle_s: float = 1.0,
        max_wait_s: float = 30.0,
        retain_s: float = 10.0,
        max_spans: int = 500_000,
        max_bytes: int = MAX_HELD_BYTES,
        segment_rows: int = SEGMENT_ROWS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._mapper = mapper or TraceMapper()
        self.settle_s = settle_s
        self.max_wait_s = max_wait_s
        self.retain_s = retain_s
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self.segment_rows = segment_rows
        self._clock = clock
        self._traces: dict[str, _Trace] = {}
        self._held = 0
        self._held_bytes = 0
        self._pending: list[SpoolRow] = []
        self.totals = MappedSpans()

    @property
    def pending_spans(self) -> int:
        """Spans held (waiting or retained)."""
        return self._held

    @property
    def pending_bytes(self) -> int:
        """Approximate bytes of the spans held (see :func:`~agentprof.ingest._decode.weigh`)."""
        return self._held_bytes

    def add(self, spans: Iterable[FlatSpan]) -> None:
        """Take a batch: agentprof's own spans are written now, the others wait for their trace."""
        try:
            self._add(spans)
        finally:
            self._write()

    def _add(self, spans: Iterable[FlatSpan]) -> None:
        now = self._clock()
        native: list[FlatSpan] = []
        for span in spans:
            trace = self._traces.get(span.trace_id)
            if trace is None:
                trace = self._traces[span.trace_id] = _Trace()
            if span.span_id in trace.spans:
                continue
            trace.spans[span.span_id] = span
            self._held += 1
            weight = weigh(span)
            trace.weight += weight
            self._held_bytes += weight
            trace.last_seen = now
            if span.parent_span_id is None:
                trace.has_root = True
            if sc.AGENTPROF_KIND in span.attributes:
                native.append(span)
                trace.written.add(span.span_id)
        if native:
            self._emit(self._mapper.map_spans(native))
            for span in native:
                self._release(self._traces[span.trace_id], span)
        if self._held > self.max_spans or self._held_bytes > self.max_bytes:
            self._evict()

    def flush_ready(self) -> None:
        """Map and write every trace that is ready, and forget retained ones that expired."""
        now = self._clock()
        try:
            for trace_id, trace in list(self._traces.items()):
                if len(trace.written) == len(trace.spans):  # written holds only ids of held spans
                    if trace.flushed_at is None or now - trace.flushed_at >= self.retain_s:
                        self._forget(trace_id)
                    continue
                quiet = now - trace.last_seen
                if (trace.has_root and quiet >= self.settle_s) or quiet >= self.max_wait_s:
                    self._flush(trace, now)
        finally:
            self._write()

    def flush_all(self) -> None:
        """Map and write everything held (shutdown, end of an import)."""
        now = self._clock()
        try:
            for trace_id, trace in list(self._traces.items()):
                if len(trace.written) < len(trace.spans):
                    self._flush(trace, now)
                self._forget(trace_id)
        finally:
            self._write()

    def _flush(self, trace: _Trace, now: float) -> None:
        if trace.written:
            unwritten = set(trace.spans.keys() - trace.written)
            self._emit(self._mapper.map_trace(list(trace.spans.values()), only=unwritten))
            trace.written |= unwritten
        else:
            unwritten = set(trace.spans)
            self._emit(self._mapper.map_trace(list(trace.spans.values())))
            trace.written = unwritten
        for span_id in unwritten:
            self._release(trace, trace.spans[span_id])
        trace.flushed_at = now

    def _release(self, trace: _Trace, span: FlatSpan) -> None:
        """Drop a written span's content (it is held only as context for its trace's stragglers)."""
        before = span.weight
        if before - SPAN_OVERHEAD <= CONTEXT_VALUE_CHARS:
            return  # too light to hold any content
        if release_content(span):
            span.weight = 0
            freed = before - weigh(span)
            trace.weight -= freed
            self._held_bytes -= freed

    def _evict(self) -> None:
        """Over a memory bound: write the oldest traces now rather than hold more."""
        for trace_id, trace in sorted(self._traces.items(), key=lambda item: item[1].last_seen):
            if self._held <= self.max_spans // 2 and self._held_bytes <= self.max_bytes // 2:
                break
            if len(trace.written) < len(trace.spans):
                self._flush(trace, self._clock())
            self._forget(trace_id)

    def _forget(self, trace_id: str) -> None:
        trace = self._traces.pop(trace_id)
        self._held -= len(trace.spans)
        self._held_bytes -= trace.weight

    def _emit(self, mapped: MappedSpans) -> None:
        if mapped.rows:
            self._pending.extend(mapped.rows)
            if len(self._pending) >= self.segment_rows:
                self._write(whole_only=True)
        mapped.rows = []
        self.totals.add(mapped)

    def _write(self, *, whole_only: bool = False) -> None:
        """Hand the pending rows to the sink, ``segment_rows`` at a time (with ``whole_only``, full batches only)."""
        size = self.segment_rows
        end = len(self._pending) - len(self._pending) % size if whole_only else len(self._pending)
        pending, self._pending = self._pending[:end], self._pending[end:]
        for start in range(0, end, size):
            self._sink(pending[start : start + size])


def release_content(span: FlatSpan) -> bool:
    """Keep only the attributes that attribution of other spans reads; whether anything was dropped.

    What :mod:`~agentprof.ingest._traces` reads of a span other than the one it maps (roles,
    names, usage, response ids) is short text and numbers; content (messages, instructions, tool
    definitions, inputs and outputs) is long text or lists and maps. Usage and parameter blocks
    that :func:`~agentprof.ingest._prepare.prepare` flattens are kept whatever their size. The one
    use lost: a wrapper span's content merged into a model call below it that arrives after the
    wrapper was written (the call is then fingerprinted from its own attributes only).
    """
    attributes = span.attributes
    kept: dict[str, Any] = {}
    for key, value in attributes.items():
        kind = type(value)
        if (
            (kind is str and len(value) > CONTEXT_VALUE_CHARS) or kind is list or kind is dict or kind is bytes
        ) and key not in BLOCK_KEYS:
            continue
        kept[key] = value
    if len(kept) == len(attributes):
        return False
    span.attributes = kept
    return True
