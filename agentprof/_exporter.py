"""The local store exporter: a standard OpenTelemetry ``SpanExporter`` writing spool segments.

It runs on the ``BatchSpanProcessor``'s worker thread, so the mapping work (fingerprints,
pricing, JSON) never touches the agent's thread. It never raises: a full disk or an unwritable
directory drops the batch, counts the loss and reports it (``agentprof doctor`` reads the
health file; a warning is logged once and again at shutdown).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentprof import _safety
from agentprof._calls import take_payload
from agentprof._mapping import SpanMapper
from agentprof._records import SpoolRow
from agentprof._spool import SpoolWriter

_HEALTH_INTERVAL_S = 5.0


class StoreSpanExporter(SpanExporter):
    """Maps finished spans to records and appends them to this process's spool."""

    def __init__(
        self,
        spool_dir: Path,
        *,
        service_name: str,
        forward: Callable[[ReadableSpan, SpoolRow | None], None] | None = None,
    ) -> None:
        """``forward`` (the OTLP tee, :func:`agentprof._otlp.forwarder`) gets every span with its row."""
        self.spool_dir = spool_dir
        self._forward = forward
        self._writer = SpoolWriter(spool_dir)
        self._mapper = SpanMapper(service_name)
        self._lock = threading.Lock()
        self._emitted = 0
        self._exported = 0
        self._written = 0
        self._lost = 0
        self._last_health = 0.0
        self._shutdown = False
        self._warned = False
        self._baseline = _safety.counters()  # what earlier runtimes of this process counted

    def note_emitted(self) -> None:
        """Count a span handed to the processor (the exporter sees what survived the queue)."""
        self._emitted += 1

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and write one batch; never raises."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        rows: list[SpoolRow] = []
        forward = self._forward
        for span in spans:
            payload = None
            row = None
            try:
                context = span.context
                payload = take_payload(context.span_id) if context is not None else None
                row = self._mapper.map(span, payload)
            except Exception as exc:
                _safety.internal_error("exporter.map", exc)
            if forward is not None:  # before the spool is written: a full disk must not stop the tee
                try:
                    forward(span, row)
                except Exception as exc:
                    _safety.internal_error("exporter.forward", exc)
            if row is not None:
                rows.append(row)
        with self._lock:
            self._exported += len(spans)
        try:
            written = self._writer.write_segment(rows)
        except Exception as exc:  # disk full, permissions, directory removed: drop, count, warn
            with self._lock:
                self._lost += len(rows)
            _safety.count("spool_write_failures")
            _safety.count("spans_lost", len(rows))
            if not self._warned:
                self._warned = True
                _safety.logger.warning(
                    "agentprof: cannot write profiling data to %s (%s); spans are being dropped. "
                    "Your agent is unaffected. Run `agentprof doctor`.",
                    self.spool_dir,
                    exc,
                )
            return SpanExportResult.FAILURE
        with self._lock:
            self._written += written
        _safety.count("spans_written", written)
        self._maybe_write_health()
        return SpanExportResult.SUCCESS

    def health(self) -> dict[str, int]:
        """Counters of this exporter plus what the process-wide safety counters gained since it started."""
        with self._lock:
            own = {
                "spans_emitted": self._emitted,
                "spans_exported": self._exported,
                "spans_written": self._written,
                "spans_lost_on_write": self._lost,
            }
        merged = {**_safety.counters_since(self._baseline), **own}
        return merged

    def _maybe_write_health(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_health < _HEALTH_INTERVAL_S:
            return
        self._last_health = now
        try:
            self._writer.write_health(self.health())
        except Exception:
            _safety.count("health_write_failures")

    def report_losses(self) -> None:
        """After shutdown: record final health and warn once if spans were lost."""
        health = self.health()
        dropped = max(0, health["spans_emitted"] - health["spans_exported"])
        if dropped:
            _safety.count("spans_dropped_queue_full", dropped)
        self._maybe_write_health(force=True)
        lost = dropped + health["spans_lost_on_write"]
        if lost:
            _safety.logger.warning(
                "agentprof: %d of %d spans were not recorded (queue full or spool unwritable). Run `agentprof doctor`.",
                lost,
                health["spans_emitted"],
            )

    def shutdown(self) -> None:
        """Stop accepting batches."""
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: every batch is written when exported."""
        return True
