"""Process-wide state: agentprof's own TracerProvider, its processor, and span emission.

``configure`` builds a private ``TracerProvider`` (never the global one, so an application's
OpenTelemetry setup is left alone) with the store exporter behind a ``BatchSpanProcessor``.
Finished spans are built by :class:`agentprof._spans.SpanFactory` and handed straight to that
processor (the module says why that is cheap).

The OpenTelemetry SDK is imported by ``configure``, not here: it is about half of what
``import agentprof`` would otherwise cost, and a process that never records a span (a CLI
command, a module that only decorates) does not need it.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentprof import _safety
from agentprof._config import StoreLocation, load_project_config, resolve_store_location

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from agentprof._exporter import StoreSpanExporter
    from agentprof._spans import SpanFactory, SpanSource

_lock = threading.RLock()


@dataclass(slots=True)
class Runtime:
    """Everything ``configure`` set up; replaced as a whole, never mutated piecemeal."""

    provider: TracerProvider
    processor: BatchSpanProcessor
    exporter: StoreSpanExporter
    spans: SpanFactory
    location: StoreLocation
    service_name: str
    capture_content: bool
    max_pending_payloads: int = 10_240  # queue + one batch in flight (see configure)
    otlp_processor: BatchSpanProcessor | None = None  # the OTLP tee, when enabled
    app_processor: Any = None  # an application's TracerProvider processors, when joined


_runtime: Runtime | None = None


def get_runtime() -> Runtime | None:
    """Return the active runtime, or ``None`` before ``configure`` / after ``shutdown``."""
    return _runtime


def _otlp_requested(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return bool(_env_flag("AGENTPROF_OTLP"))


def _queue_settings(max_queue_size: int, schedule_delay_millis: float, max_export_batch_size: int) -> int:
    """The batch size to use with ``max_queue_size``, once the settings are checked.

    A batch cannot exceed the queue (the SDK raises if it does), and a user who only lowers
    ``max_queue_size`` has not chosen the batch: it is fitted to the queue rather than raise.

    Raises:
        ConfigError: A setting is not positive.
    """
    from agentprof.exceptions import ConfigError

    for name, value in (
        ("max_queue_size", max_queue_size),
        ("schedule_delay_millis", schedule_delay_millis),
        ("max_export_batch_size", max_export_batch_size),
    ):
        if value <= 0:
            raise ConfigError(f"{name} must be positive, not {value!r}")
    return min(max_export_batch_size, max_queue_size)


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.strip().lower() in {"1", "true", "yes", "on"}


def configure(
    db: str | os.PathLike[str] | None = None,
    service_name: str | None = None,
    capture_content: bool | None = None,
    *,
    max_queue_size: int = 8192,
    schedule_delay_millis: float = 1000.0,
    max_export_batch_size: int = 2048,
    otlp: bool | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Runtime:
    """Set up (or replace) agentprof's tracer provider and local store exporter.

    Arguments win over ``AGENTPROF_*`` environment variables, which win over
    ``[tool.agentprof]`` in pyproject.toml, which wins over defaults.

    Args:
        db: Store location (directory, ``.duckdb`` file or SQLAlchemy URL).
        service_name: Name of this service in reports.
        capture_content: Store prompt and completion text.
        max_queue_size: Finished spans held per processor before the oldest are dropped.
        schedule_delay_millis: How often a processor exports.
        max_export_batch_size: Spans per export.
        otlp: Also export every span over OTLP (see :mod:`agentprof._otlp`); default
            ``AGENTPROF_OTLP``.
        tracer_provider: An application's SDK ``TracerProvider`` to join instead of creating
            one: the store exporter is added to it (so it sees the application's spans too) and
            agentprof's spans go through all of its processors (so its exporters get them).

    Raises:
        ConfigError: OTLP was asked for with an unsupported protocol, or a queue setting is not
            positive (the profiler already running, if any, is left as it was).
    """
    max_export_batch_size = _queue_settings(max_queue_size, schedule_delay_millis, max_export_batch_size)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from agentprof import __version__
    from agentprof._exporter import StoreSpanExporter
    from agentprof._spans import SpanFactory

    global _runtime
    with _lock:
        if _runtime is not None:
            _shutdown_locked()
        project, _ = load_project_config()
        location = resolve_store_location(db if db is not None else project.get("db"))
        name = (
            service_name
            or os.environ.get("AGENTPROF_SERVICE_NAME")
            or os.environ.get("OTEL_SERVICE_NAME")
            or project.get("service_name")
            or "agent"
        )
        capture = capture_content
        if capture is None:
            capture = _env_flag("AGENTPROF_CAPTURE_CONTENT")
        if capture is None:
            capture = bool(project.get("capture_content", False))
        otlp_processor = None
        forward = None
        if _otlp_requested(otlp):
            from agentprof import _otlp

            otlp_processor = _otlp.make_processor(
                max_queue_size=max_queue_size,
                schedule_delay_millis=schedule_delay_millis,
                max_export_batch_size=max_export_batch_size,
            )
            forward = _otlp.forwarder(otlp_processor)  # the store exporter hands each span on, mapped
        exporter = StoreSpanExporter(location.spool_dir, service_name=name, forward=forward)
        processor = BatchSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
        )
        app_processor = None
        if tracer_provider is not None:
            provider = tracer_provider
            resource = tracer_provider.resource
            provider.add_span_processor(processor)  # it forwards the application's spans to OTLP too
            # The provider's own fan-out to every processor it has: ours and the application's.
            app_processor = getattr(tracer_provider, "_active_span_processor", None)
        else:
            resource = Resource.create({"service.name": name, "process.pid": os.getpid()})
            provider = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
            provider.add_span_processor(processor)
        scope = InstrumentationScope("agentprof", __version__)
        # A payload (request body, output closure) waits beside its span until the exporter takes
        # it. The processor's queue drops its *oldest* spans when full, so more pending payloads
        # than the queue plus one batch in flight can only belong to dropped spans.
        pending = max_queue_size + max_export_batch_size
        _runtime = Runtime(
            provider,
            processor,
            exporter,
            SpanFactory(resource, scope),
            location,
            name,
            capture,
            pending,
            otlp_processor,
            app_processor,
        )
        _register_atexit()
        return _runtime


def ensure_configured() -> Runtime:
    """Return the runtime, configuring with defaults on first use."""
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        return _runtime or configure()


def emit_span(
    name: str,
    *,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    error: bool = False,
    error_message: str | None = None,
) -> None:
    """Hand one finished ``INTERNAL`` span to the processor; a no-op when agentprof is not configured."""
    runtime = _runtime
    if runtime is None:
        return
    span = runtime.spans.finished(
        name, trace_id, span_id, parent_span_id, start_ns, end_ns, attributes, error_message, error
    )
    _hand_over(runtime, span)


def emit_deferred(source: SpanSource, span_id: int, error_message: str | None = None) -> None:
    """Hand one finished ``CLIENT`` span built from ``source`` to the processor (a deferred span).

    ``error_message`` (the exception's type name) marks the span as failed. A no-op when
    agentprof is not configured.
    """
    runtime = _runtime
    if runtime is None:
        return
    _hand_over(runtime, runtime.spans.deferred(source, span_id, error_message))


def _hand_over(runtime: Runtime, span: ReadableSpan) -> None:
    runtime.exporter.note_emitted()
    if runtime.app_processor is not None:
        runtime.app_processor.on_end(span)  # includes ours: it was added to it
        return
    runtime.processor.on_end(span)  # the OTLP tee gets the span from the store exporter


def flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span to the spool now; ``True`` when everything was written."""
    runtime = _runtime
    if runtime is None:
        return True
    try:
        written = bool(runtime.processor.force_flush(timeout_millis))  # also hands the spans on to OTLP
        if runtime.otlp_processor is not None:
            runtime.otlp_processor.force_flush(timeout_millis)  # best effort: the collector may be down
        return written
    except Exception as exc:  # the processor should never raise; never let it reach users
        _safety.internal_error("flush", exc)
        return False


def _shutdown_locked() -> None:
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is None:
        return
    try:
        runtime.processor.shutdown()  # type: ignore[no-untyped-call]  # its last spans go on to OTLP
    except Exception as exc:
        _safety.internal_error("shutdown", exc)
    if runtime.otlp_processor is not None:
        from agentprof import _otlp

        _otlp.shutdown_processor(runtime.otlp_processor)
    from agentprof import _calls  # (it imports this module)

    _calls.discard_payloads()
    runtime.exporter.report_losses()


def shutdown() -> None:
    """Flush and close agentprof; safe to call twice. Also runs at interpreter exit."""
    with _lock:
        _shutdown_locked()


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True


__all__ = [
    "Runtime",
    "configure",
    "emit_deferred",
    "emit_span",
    "ensure_configured",
    "flush",
    "get_runtime",
    "shutdown",
]
