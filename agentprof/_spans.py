"""Finished spans built for the processor: the only module that needs the OpenTelemetry SDK on the hot path.

Why a module of its own: the SDK costs about half of ``import agentprof`` (its resources,
metrics and semantic-convention modules), and nothing needs it until the first span is built.
:mod:`agentprof._runtime` imports this module when it configures, so an application that only
imports agentprof, decorates functions or asks ``agentprof --help`` never loads the SDK.

Finished task, step and model-call spans are built as ``ReadableSpan`` objects at the end of
their work and handed straight to the processor: the hot path pays for one small object, not for
a live SDK span with per-attribute validation (~60-90 µs here). Model calls go further: a
:class:`DeferredSpan` builds its name, parent and attribute dict when first read, on the
exporter's thread, so the caller's thread only hands over references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


class SpanSource(Protocol):
    """What a :class:`DeferredSpan` is built from; read only once the span is finished."""

    trace_id: int
    parent_span_id: int | None
    start_ns: int
    end_ns: int

    def span_name(self) -> str:
        """The span's name."""
        ...

    def span_attributes(self) -> dict[str, Any]:
        """The span's attributes, a new dict."""
        ...


class DeferredSpan(ReadableSpan):
    """A finished ``CLIENT`` span whose name, parent, times and attributes are built on first read.

    ``ReadableSpan`` keeps them in private fields that every reader goes through (its properties,
    ``to_json``), so this subclass leaves those fields unset and :meth:`__getattr__` fills each
    in on first access. Processors only look at ``context`` when a span is handed over; the
    exporter threads read the rest, so building the attribute dict (and any canonical usage
    conversion behind it) happens there. Two exporter threads reading at once may both build a
    field: the source is read-only by then, so both get the same value.
    """

    _kind = SpanKind.CLIENT
    _events: tuple[Any, ...] = ()
    _links: tuple[Any, ...] = ()
    _instrumentation_info = None
    _status = _UNSET

    def __init__(
        self, source: SpanSource, context: SpanContext, resource: Resource, scope: InstrumentationScope
    ) -> None:
        # ReadableSpan.__init__ is skipped on purpose: it would set the fields built lazily below.
        self._source = source
        self._context = context
        self._resource = resource
        self._instrumentation_scope = scope

    def __getattr__(self, name: str) -> Any:
        """Build a deferred field (only reached while it is not set yet)."""
        if name == "_source":
            raise AttributeError(name)
        source = self._source
        value: Any
        if name == "_attributes":
            value = source.span_attributes()
        elif name == "_name":
            value = source.span_name()
        elif name == "_start_time":
            value = source.start_ns
        elif name == "_end_time":
            value = source.end_ns
        elif name == "_parent":
            parent_id = source.parent_span_id
            value = None if parent_id is None else SpanContext(source.trace_id, parent_id, False, _SAMPLED)
        else:
            raise AttributeError(name)
        object.__setattr__(self, name, value)
        return value


class SpanFactory:
    """Builds this process's finished spans, all with one resource and instrumentation scope."""

    __slots__ = ("resource", "scope")

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        self.resource = resource
        self.scope = scope

    def finished(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_span_id: int | None,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, Any],
        error_message: str | None,
        error: bool,
    ) -> ReadableSpan:
        """An ``INTERNAL`` span (a task or a step); ``error`` marks it failed with ``error_message``."""
        parent = (
            SpanContext(trace_id, parent_span_id, is_remote=False, trace_flags=_SAMPLED)
            if parent_span_id is not None
            else None
        )
        return ReadableSpan(
            name,
            SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED),
            parent,
            self.resource,
            attributes,
            kind=SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR, error_message) if error else _UNSET,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=self.scope,
        )

    def deferred(self, source: SpanSource, span_id: int, error_message: str | None) -> DeferredSpan:
        """A model call's ``CLIENT`` span, built from ``source`` when first read; failed if ``error_message``."""
        span = DeferredSpan(source, SpanContext(source.trace_id, span_id, False, _SAMPLED), self.resource, self.scope)
        if error_message is not None:
            span._status = Status(StatusCode.ERROR, error_message)
        return span


__all__ = ["DeferredSpan", "SpanFactory", "SpanSource"]
