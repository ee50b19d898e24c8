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
worker thread does the waiting, and failures and drops are counted (``agentprof doctor``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agentprof import _safety
from agentprof import _semconv as sc
from agentprof._mapping import ANALYSIS_ATTRIBUTES
from agentprof._records import SpoolRow, money_text
from agentprof.exceptions import ConfigError

COST = "gen_ai.usage.cost"
COST_USD = "agentprof.cost_usd"
PRICE_VERSION = "agentprof.price.version"
UNPRICED = "agentprof.price.unpriced"
UNPRICED_REASON = "agentprof.price.unpriced_reason"

_PROTOCOLS = ("http/protobuf", "grpc")

#: At exit, how long the final export may wait for the collector before it is abandoned.
FINAL_FLUSH_SECONDS = 3.0


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
    """A bounded batch processor feeding the OTLP exporter, with cost attributes added."""
    return CountingBatchSpanProcessor(
        CostAttributingExporter(make_exporter()),
        max_queue_size=max_queue_size,
        schedule_delay_millis=schedule_delay_millis,
        max_export_batch_size=max_export_batch_size,
    )


class CostAttributingExporter(SpanExporter):
    """Adds cost attributes to model-call spans, then hands the batch to the real exporter.

    Runs on the processor's worker thread: pricing (a few microseconds per call) never touches
    the agent's threads. A span that cannot be priced or copied goes out unchanged.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._user_prices: Any = None
        self._user_prices_loaded = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export ``spans`` with cost attributes; never raises, counts what the collector refused."""
        batch = [self._with_cost(span) for span in spans]
        try:
            result = self.inner.export(batch)
        except Exception as exc:  # the SDK exporter returns FAILURE itself; be safe anyway
            _safety.internal_error("otlp.export", exc)
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            _safety.count("otlp_spans_exported", len(batch))
        else:
            _safety.count("otlp_spans_failed", len(batch))
        return result

    def shutdown(self) -> None:
        """Stop the inner exporter (its retry back-off ends at once)."""
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

    def _with_cost(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes or {}
        # A span the store exporter mapped already has its cost (:func:`with_analysis`): priced once.
        if attributes.get(sc.AGENTPROF_KIND) != sc.KIND_MODEL_CALL or UNPRICED in attributes:
            return span
        try:
            return _copy_with(span, {**attributes, **self._cost_attributes(attributes, span.start_time or 0)})
        except Exception as exc:
            _safety.internal_error("otlp.cost", exc)
            return span

    def _cost_attributes(self, attributes: Any, start_ns: int) -> dict[str, Any]:
        from agentprof._mapping import usage_from_attributes
        from agentprof.pricing import UserPrices, price_call, resolve_model

        if not self._user_prices_loaded:
            self._user_prices_loaded = True
            try:
                self._user_prices = UserPrices.load()
            except Exception:  # a bad prices table is reported by the store path; price without it
                self._user_prices = None
        provider = attributes.get(sc.GEN_AI_PROVIDER_NAME)
        model = attributes.get(sc.GEN_AI_RESPONSE_MODEL) or attributes.get(sc.GEN_AI_REQUEST_MODEL)
        host = attributes.get(sc.SERVER_ADDRESS)
        ref = resolve_model(
            provider if isinstance(provider, str) else None,
            model if isinstance(model, str) else None,
            f"https://{host}" if isinstance(host, str) and host else None,
        )
        result = price_call(
            usage_from_attributes(attributes),
            ref,
            timestamp=datetime.fromtimestamp(start_ns / 1e9, tz=UTC),
            user_prices=self._user_prices,
        )
        if result.cost_usd is None:
            return {UNPRICED: True, UNPRICED_REASON: result.unpriced_reason or "unpriced"}
        return {
            COST: float(result.cost_usd),
            COST_USD: money_text(result.cost_usd),
            PRICE_VERSION: result.version or "",
            UNPRICED: False,
        }


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


def with_analysis(span: ReadableSpan, row: SpoolRow | None) -> ReadableSpan:
    """``span`` with its model call's cost and :data:`~agentprof._mapping.ANALYSIS_ATTRIBUTES` from ``row``.

    ``row`` is what the store exporter mapped the span to (``None``: not mapped, or not a span
    agentprof records); spans other than model calls go out as they are. The cost is the store's
    own figure, so the collector and the store agree to the digit and the tee prices nothing again.
    """
    if row is None or row.get("kind") != sc.KIND_MODEL_CALL:
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
        if isinstance(processor, CountingBatchSpanProcessor):
            counters = _safety.counters()
            handled = counters.get("otlp_spans_exported", 0) + counters.get("otlp_spans_failed", 0)
            if processor.received > handled:
                _safety.count("otlp_spans_dropped", processor.received - handled)
    except Exception as exc:
        _safety.internal_error("otlp.shutdown", exc)
