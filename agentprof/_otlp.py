"""OTLP export beside the local store: a live tee to the observability stack a team already runs.

``agentprof.configure(otlp=True)`` (or ``AGENTPROF_OTLP=1``) adds the OpenTelemetry SDK's own
OTLP exporter, behind its own bounded ``BatchSpanProcessor``, after the store exporter: the store
exporter hands every span it saw on to that processor once it has mapped it (:func:`forwarder`),
so the model-call spans leave with what the mapping found. It is
configured by the standard variables, read by the SDK exporter itself:
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``_HEADERS``, ``_COMPRESSION``, ``_TIMEOUT``, and
``_PROTOCOL`` (``http/protobuf`` by default; ``grpc`` when its package is installed).

Model-call spans leave with their cost, in the dialects backends read: ``gen_ai.usage.cost``
(OpenLIT's and Langfuse's float USD) and agentprof's own ``agentprof.cost_usd`` (the exact
decimal, as a string), with the price provenance (``agentprof.price.version``) and
``agentprof.price.unpriced`` (plus the reason) for calls without a price, which carry no cost
attribute at all rather than a false $0. They also carry what agentprof's analyses read of a
call and its request body, which never leaves the process itself
(:data:`agentprof._mapping.ANALYSIS_ATTRIBUTES`: request and prefix fingerprints, cache
breakpoints, tool count, response format and tool choice, output hash and length, the provider's
usage block): hashes and counts, no text. ``agentprof serve`` reads them back, so a store fed over
OTLP gets the same recommendations as the local one.

A collector that is down, slow or refusing never reaches the agent: the queue is bounded, the
worker thread does the waiting, and failures and drops are counted (``agentprof doctor``). Nor
does it fill the agent's output: the SDK exporter logs a warning per retry and an error per
batch (a few long lines a minute for as long as the collector is down); those records are held
back while agentprof's exporter runs (:class:`_HeldExportLogs`) and the first failure becomes one
agentprof warning with its reason.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agentprof import _safety
from agentprof import _semconv as sc
from agentprof._mapping import ANALYSIS_ATTRIBUTES
from agentprof._records import SpoolRow
from agentprof.exceptions import ConfigError

COST = "gen_ai.usage.cost"
COST_USD = "agentprof.cost_usd"
PRICE_VERSION = "agentprof.price.version"
UNPRICED = "agentprof.price.unpriced"
UNPRICED_REASON = "agentprof.price.unpriced_reason"

_PROTOCOLS = ("http/protobuf", "grpc")

#: At exit, how long the final export may wait for the collector before it is abandoned.
FINAL_FLUSH_SECONDS = 3.0
#: The SDK's reason for a failed batch is quoted up to this many characters (urllib3's are long).
_REASON_CHARS = 300


class _HeldExportLogs(logging.Filter):
    """Holds back the SDK exporter's log records on a thread while that thread runs our export.

    Installed on the SDK exporter's own loggers, it drops only records made inside
    :meth:`CountingExporter.export` (a thread-local list is set then), keeping their messages for
    the one warning agentprof gives; an application that uses the same SDK exporter for its own
    pipeline still gets its records, from its own threads.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextmanager
    def holding(self) -> Iterator[list[str]]:
        """Hold this thread's records back for the block; yields the messages held."""
        held: list[str] = []
        self._local.held = held
        try:
            yield held
        finally:
            self._local.held = None

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the record through unless this thread is exporting for agentprof."""
        held = getattr(self._local, "held", None)
        if held is None:
            return True
        if len(held) < 4:
            try:
                held.append(record.getMessage())
            except Exception:  # a record whose arguments do not fit its format: still held back
                held.append(str(record.msg))
        return False

    def install(self, exporter: SpanExporter) -> None:
        """Filter the loggers of ``exporter``'s OpenTelemetry modules (its class and bases); idempotent."""
        for cls in type(exporter).__mro__:
            if cls.__module__.startswith("opentelemetry."):
                logger = logging.getLogger(cls.__module__)
                if self not in logger.filters:
                    logger.addFilter(self)


_EXPORT_LOGS = _HeldExportLogs()


def make_exporter() -> SpanExporter:
    """The SDK's OTLP span exporter for the configured protocol.

    Raises:
        ConfigError: An unknown protocol, or ``grpc`` without its package.
    """
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip() or "http/protobuf"
    if protocol not in _PROTOCOLS:
        raise ConfigError(f"OTLP protocol {protocol!r} is not supported: use http/protobuf (default) or grpc")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ConfigError(
                "OTLP protocol grpc needs its exporter: pip install opentelemetry-exporter-otlp-proto-grpc"
            ) from None
        return GrpcExporter()  # type: ignore[no-any-return]
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that counts the spans handed to it.

    Its queue drops the oldest spans silently when full; spans handed in minus spans delivered
    or refused is what it dropped, reported at shutdown (``agentprof doctor``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0

    def on_end(self, span: ReadableSpan) -> None:
        """Count, then queue (never blocks)."""
        self.received += 1
        super().on_end(span)


def make_processor(
    *, max_queue_size: int, schedule_delay_millis: float, max_export_batch_size: int
) -> CountingBatchSpanProcessor:
    """A bounded batch processor feeding the OTLP exporter (the store exporter adds the attributes)."""
    return CountingBatchSpanProcessor(
        CountingExporter(make_exporter()),
        max_queue_size=max_queue_size,
        schedule_delay_millis=schedule_delay_millis,
        max_export_batch_size=max_export_batch_size,
    )


class CountingExporter(SpanExporter):
    """Hands each batch to the real exporter, counting what the collector took and refused.

    The spans already carry their cost and analysis attributes (:func:`with_analysis`, on the
    store exporter's thread), so nothing is priced here.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.handled = 0  # spans this exporter delivered or failed (the process counters span runtimes)
        self._handled_lock = threading.Lock()
        self._stopped = False
        _EXPORT_LOGS.install(inner)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export ``spans``; never raises, counts what the collector refused, warns of the first failure."""
        batch = list(spans)
        with _EXPORT_LOGS.holding() as held:
            try:
                result = self.inner.export(batch)
            except Exception as exc:  # the SDK exporter returns FAILURE itself; be safe anyway
                _safety.internal_error("otlp.export", exc)
                result = SpanExportResult.FAILURE
        with self._handled_lock:
            self.handled += len(batch)
        if result is SpanExportResult.SUCCESS:
            _safety.count("otlp_spans_exported", len(batch))
        else:
            _safety.count("otlp_spans_failed", len(batch))
            reason = held[0] if held else "the exporter gave no reason"
            _safety.warn_once(
                "otlp.delivery",  # not internal_error's "otlp.export": a bug there must still be logged
                "agentprof: OTLP export failed, %d span(s) not delivered (%s). Your program is unaffected and "
                "the local store keeps recording; later failures are counted, not logged: run `agentprof doctor`.",
                len(batch),
                reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 3] + "...",
            )
        return result

    def shutdown(self) -> None:
        """Stop the inner exporter (its retry back-off ends at once); only the first call does.

        :func:`shutdown_processor` stops the exporter early, to end a back-off, and the processor's
        own shutdown stops it again: the SDK's exporter logs a warning for a second stop, which
        every program with OTLP on printed at exit.
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            self.inner.shutdown()
        except Exception as exc:
            _safety.internal_error("otlp.shutdown", exc)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the inner exporter."""
        try:
            return bool(self.inner.force_flush(timeout_millis))
        except Exception as exc:
            _safety.internal_error("otlp.flush", exc)
            return False


def _copy_with(span: ReadableSpan, attributes: dict[str, Any]) -> ReadableSpan:
    """``span`` with ``attributes`` instead of its own (a finished span's attributes are read-only)."""
    return ReadableSpan(
        span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


_UNMAPPED = "agentprof could not map this call (an internal error: run `agentprof doctor`)"


def with_analysis(span: ReadableSpan, row: SpoolRow | None) -> ReadableSpan:
    """``span`` with its model call's cost and :data:`~agentprof._mapping.ANALYSIS_ATTRIBUTES` from ``row``.

    ``row`` is what the store exporter mapped the span to (``None``: not a span agentprof records,
    or the mapping failed); spans other than model calls go out as they are. The cost is the
    store's own figure, so the collector and the store agree to the digit and nothing is priced twice.
    """
    if row is None:
        attributes = span.attributes or {}
        if attributes.get(sc.AGENTPROF_KIND) != sc.KIND_MODEL_CALL:
            return span
        # A call the mapping failed on (an internal error, counted): flagged, never a false $0.
        return _copy_with(span, {**attributes, UNPRICED: True, UNPRICED_REASON: _UNMAPPED})
    if row.get("kind") != sc.KIND_MODEL_CALL:
        return span
    extra: dict[str, Any] = {}
    for attribute, column, _ in ANALYSIS_ATTRIBUTES:
        value = row.get(column)
        if value is not None:
            extra[attribute] = value
    cost = row.get("cost_usd")
    if cost is None:
        extra[UNPRICED] = True
        extra[UNPRICED_REASON] = row.get("unpriced_reason") or "unpriced"
    else:
        extra.update({COST: float(cost), COST_USD: cost, UNPRICED: False})
        extra[PRICE_VERSION] = row.get("price_version") or ""
    return _copy_with(span, {**(span.attributes or {}), **extra})


def forwarder(processor: BatchSpanProcessor) -> Callable[[ReadableSpan, SpoolRow | None], None]:
    """What the store exporter calls with each span it mapped: queue it, with its analysis, for OTLP.

    ``on_end`` only appends to the processor's bounded queue (the oldest span is dropped, and
    counted, when it is full), so a slow collector never holds the store exporter up.
    """
    on_end = processor.on_end

    def forward(span: ReadableSpan, row: SpoolRow | None) -> None:
        on_end(with_analysis(span, row))

    return forward


def shutdown_processor(processor: BatchSpanProcessor, deadline_s: float = FINAL_FLUSH_SECONDS) -> None:
    """Flush the OTLP tee for at most ``deadline_s``, then stop it; never raises.

    ``BatchSpanProcessor.force_flush`` ignores its timeout and the SDK exporter retries a down
    collector with back-off for up to its whole timeout, so the flush runs on its own thread:
    if it is not done in time, stopping the exporter ends its back-off at once. Whatever was
    not delivered is counted as failed.
    """
    try:
        finished = threading.Event()

        def flush() -> None:
            try:
                processor.force_flush()
            finally:
                finished.set()

        threading.Thread(target=flush, name="agentprof-otlp-final-flush", daemon=True).start()
        if not finished.wait(deadline_s):
            _safety.count("otlp_final_flush_abandoned")
        processor.span_exporter.shutdown()
        processor.shutdown()  # type: ignore[no-untyped-call]
        exporter = processor.span_exporter
        if isinstance(processor, CountingBatchSpanProcessor) and isinstance(exporter, CountingExporter):
            if processor.received > exporter.handled:
                _safety.count("otlp_spans_dropped", processor.received - exporter.handled)
    except Exception as exc:
        _safety.internal_error("otlp.shutdown", exc)
