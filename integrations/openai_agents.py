"""OpenAI Agents SDK instrumentation: a run is a task; agents, handoffs, guardrails and tools are steps.

The Agents SDK reports its own structure to *tracing processors* (``agents.add_trace_processor``).
agentprof registers one and maps what it hears onto tasks and steps:

=====================================  ==============================================================
SDK trace or span                      agentprof
=====================================  ==============================================================
trace (one ``Runner.run`` /            task named after the workflow (``RunConfig(workflow_name=...)``
``run_sync`` / ``run_streamed``, or    or ``trace("...")``; the SDK's default is ``"Agent workflow"``).
the user's ``with trace(...)``)        Inside a user's own ``agentprof.task`` it is a *step* of that
                                       task instead: one unit of work is one task.
agent span                             step named after the agent
function span (a tool)                 step, ``kind="tool"``, named after the tool
handoff span                           step ``"handoff: Triage -> Billing"``
guardrail span                         step ``"guardrail: <name>"`` (guardrails may call models)
generation / response span             nothing: the ``openai`` integration records the model call
                                       itself, with the real usage, so nothing is counted twice
task, turn, custom, MCP, speech spans  nothing
=====================================  ==============================================================

How frames follow the SDK's spans: the SDK calls ``on_span_start`` / ``on_span_end``
synchronously inside ``Span.start()`` / ``Span.finish()``, in the context of the code that opens
and closes the span (the SDK keeps its own current span in a contextvar, set right there). So
making agentprof's frame current in ``on_span_start`` puts every model call made inside that agent
or tool, including those the SDK makes from the child tasks and ``asyncio.to_thread`` workers it
starts there (which copy the context), in the right step. How a frame is left without contextvar
tokens is shared with the pydantic-ai integration (``integrations/_span_frames.py``); here the
OpenTelemetry context follows the frame too, so an application's own spans nest under the step.

Failures: a span or run fails when an exception is propagating through it as it ends (the
exception in flight at ``on_*_end`` that was not already in flight when it started), or when the
SDK attached an error to the span (a tool error the SDK turned into a message for the model; its
error type is ``SpanError``). A streamed run its consumer cancels is a failed task
(``CancelledError``): it never produced its answer.

Streams: the SDK asks for usage in streamed chat completions only from OpenAI's own endpoint. With
an OpenAI-compatible ``base_url``, set ``ModelSettings(include_usage=True)`` or the streamed calls
are recorded without usage (unpriced, never $0).

Trace export: the SDK's default processor also uploads traces to OpenAI. agentprof neither needs
nor blocks that; to keep agentprof's view while exporting nothing, call
``agents.set_trace_processors([])`` *before* :func:`instrument` (calling it afterwards drops
agentprof's processor too; :func:`instrument` again puts it back). Do not use
``set_tracing_disabled(True)``, ``OPENAI_AGENTS_DISABLE_TRACING=1`` or
``RunConfig(tracing_disabled=True)``: they silence every processor, agentprof's included (model
calls are still recorded by the ``openai`` integration, but no longer grouped into tasks and steps).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from dataclasses import dataclass
from typing import Any

from agents import add_trace_processor
from agents.tracing import (
    AgentSpanData,
    FunctionSpanData,
    GuardrailSpanData,
    HandoffSpanData,
    Span,
    Trace,
    TracingProcessor,
    get_trace_provider,
)
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agentprof import _runtime, _safety
from agentprof._context import current_frame
from agentprof._decorators import _repr_hash

from ._span_frames import FrameFollower, FrameRecord, open_frame

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class SpanError(Exception):
    """Stands for an error the SDK attached to a span without raising (its name is the error type)."""


@dataclass(slots=True, eq=False)
class _Open(FrameRecord):
    """One SDK trace or span mapped to an agentprof task or step (``entered`` may be renamed: handoffs)."""

    key: tuple[str, str] = ("", "")
    previous_otel: otel_context.Context | None = None
    attached_otel: otel_context.Context | None = None


def _step_name(span: Span[Any]) -> tuple[str, str] | None:
    """``(name, kind)`` of the step a span becomes, or None for spans that are not steps."""
    data = span.span_data
    if isinstance(data, AgentSpanData):
        return data.name, "step"
    if isinstance(data, FunctionSpanData):
        return data.name, "tool"
    if isinstance(data, HandoffSpanData):
        return _handoff_name(data), "step"
    if isinstance(data, GuardrailSpanData):
        return f"guardrail: {data.name}", "step"
    return None


def _handoff_name(data: HandoffSpanData) -> str:
    # The SDK learns the target only after the span started; see _finish_handoff.
    if data.to_agent:
        return f"handoff: {data.from_agent} -> {data.to_agent}"
    return f"handoff: {data.from_agent}"


class AgentprofTracingProcessor(TracingProcessor):
    """Turns the Agents SDK's traces and spans into agentprof tasks and steps (see the module docstring).

    Every callback is guarded: a failure inside agentprof is counted and swallowed, never raised
    into the SDK. ``enabled`` gates only *starting* tasks and steps, so turning it off mid-run still
    ends (and un-nests) everything already started.
    """

    def __init__(self) -> None:
        self.enabled = True
        self._frames = FrameFollower()  # frame span id -> record, open or finished, until its trace ends
        self._lock = self._frames.lock
        self._open: dict[tuple[str, str], _Open] = {}
        self._by_trace: dict[str, list[_Open]] = {}

    # --- TracingProcessor ------------------------------------------------------------------
    def on_trace_start(self, trace: Trace) -> None:
        """Start the run's task (or, inside the user's own task, a step named after the workflow)."""
        try:
            if self.enabled and _runtime.get_runtime() is not None:
                self._start(("trace", trace.trace_id), trace.trace_id, trace.name, None, trace=trace)
        except Exception as exc:
            _safety.internal_error("openai_agents.trace_start", exc)

    def on_trace_end(self, trace: Trace) -> None:
        """End the run's task, after any of its steps the SDK left open."""
        try:
            trace_key = ("trace", trace.trace_id)
            with self._lock:
                records = list(self._by_trace.get(trace.trace_id, ()))
            for record in reversed(records):
                if record.key != trace_key and self._take(record.key) is record:
                    self._close(record, None)
            self._end(trace_key, None)
            with self._lock:
                for record in self._by_trace.pop(trace.trace_id, ()):
                    self._frames.by_frame.pop(record.entered.span_id, None)
        except Exception as exc:
            _safety.internal_error("openai_agents.trace_end", exc)

    def on_span_start(self, span: Span[Any]) -> None:
        """Start a step for agent, tool, handoff and guardrail spans."""
        try:
            if not self.enabled or _runtime.get_runtime() is None:
                return
            named = _step_name(span)
            if named is not None:
                self._start(("span", span.span_id), span.trace_id, named[0], named[1])
        except Exception as exc:
            _safety.internal_error("openai_agents.span_start", exc)

    def on_span_end(self, span: Span[Any]) -> None:
        """End the span's step, if it has one."""
        try:
            self._end(("span", span.span_id), span)
        except Exception as exc:
            _safety.internal_error("openai_agents.span_end", exc)

    def shutdown(self) -> None:
        """Nothing to release: steps are emitted as they end."""

    def force_flush(self) -> None:
        """Nothing buffered here: agentprof's exporter flushes with ``agentprof.flush()``."""

    # --- starting ----------------------------------------------------------------------------
    def _start(
        self, key: tuple[str, str], trace_key: str, name: str, step_kind: str | None, trace: Trace | None = None
    ) -> None:
        previous, parent = self._frames.enclosing()
        scope, active, frame = open_frame(name, step_kind, previous, attributes=_trace_attributes(trace))
        previous_otel = otel_context.get_current()
        span_context = SpanContext(frame.trace_id, frame.span_id, is_remote=False, trace_flags=_SAMPLED)
        attached = otel_trace.set_span_in_context(NonRecordingSpan(span_context), previous_otel)
        record = _Open(
            scope=scope,
            active=active,
            entered=frame,
            previous_frame=previous,
            parent=parent,
            in_flight=sys.exc_info()[1],
            key=key,
            previous_otel=previous_otel,
            attached_otel=attached,
        )
        with self._lock:
            self._open[key] = record
            self._frames.by_frame[frame.span_id] = record
            self._by_trace.setdefault(trace_key, []).append(record)
        current_frame.set(frame)
        otel_context.attach(attached)

    # --- ending ------------------------------------------------------------------------------
    def _take(self, key: tuple[str, str]) -> _Open | None:
        """Remove and return the open record for ``key``: whoever takes it is the one who closes it."""
        with self._lock:
            return self._open.pop(key, None)

    def _end(self, key: tuple[str, str], span: Span[Any] | None) -> None:
        record = self._take(key)
        if record is None:
            return
        in_flight = sys.exc_info()[1]
        error = in_flight if in_flight is not None and in_flight is not record.in_flight else None
        if span is not None:
            if error is None and span.error is not None:
                error = SpanError(str(span.error.get("message") or "error"))
            data = span.span_data
            if isinstance(data, HandoffSpanData):
                _finish_handoff(record, data)
            elif isinstance(data, FunctionSpanData):
                record.active.args_hash = _repr_hash(data.input) if data.input else None
                record.active.result_hash = _repr_hash(data.output) if data.output is not None else None
        self._close(record, error)

    def _close(self, record: _Open, error: BaseException | None) -> None:
        """Mark ``record`` finished, restore this context's frame if it is ours to restore, emit the span."""
        restore = self._frames.close(record)
        if restore is not None:
            owner, outermost = restore
            otel_is_ours = otel_context.get_current() is owner.attached_otel
            current_frame.set(outermost.previous_frame)
            if otel_is_ours and outermost.previous_otel is not None:
                otel_context.attach(outermost.previous_otel)
        record.scope._finish(record.active, error)


def _trace_attributes(trace: Trace | None) -> dict[str, Any]:
    """The SDK's trace and group ids, to find the same run in the OpenAI traces dashboard."""
    if trace is None:
        return {}
    attributes = {"openai_agents.trace_id": trace.trace_id}
    group_id = getattr(trace, "group_id", None)
    if isinstance(group_id, str):
        attributes["openai_agents.group_id"] = group_id
    return attributes


def _finish_handoff(record: _Open, data: HandoffSpanData) -> None:
    """Name the handoff step after its target, which the SDK sets only after the span started.

    Model calls made *during* the handoff (the user's ``on_handoff`` callback or input filter)
    keep the start-time name ``"handoff: A"``; the step span gets the full ``"handoff: A -> B"``.
    """
    frame = record.active.frame
    name = _handoff_name(data)
    if name == frame.step_name:
        return
    parent_path = frame.step_path.rpartition("/")[0] if frame.step_path else ""
    path = f"{parent_path}/{name}" if parent_path else name
    record.active.frame = dataclasses.replace(frame, step_name=name, step_path=path)


_lock = threading.Lock()
_processor: AgentprofTracingProcessor | None = None
_registered_with: object | None = None


def _is_registered(processor: AgentprofTracingProcessor) -> bool:
    """Whether the SDK's current provider still calls ``processor``.

    ``set_trace_processors`` replaces the whole list (agentprof's processor included) and the SDK
    offers no way to read it back, so peek at the default provider's list when it is there and fall
    back to remembering which provider the processor was added to.
    """
    provider = get_trace_provider()
    processors = getattr(getattr(provider, "_multi_processor", None), "_processors", None)
    if isinstance(processors, tuple):
        return processor in processors
    return _registered_with is provider


def instrument() -> None:
    """Register agentprof's tracing processor with the Agents SDK (idempotent)."""
    global _processor, _registered_with
    with _lock:
        if _processor is None:
            _processor = AgentprofTracingProcessor()
        _processor.enabled = True
        if not _is_registered(_processor):
            add_trace_processor(_processor)
            _registered_with = get_trace_provider()


def uninstrument() -> None:
    """Make the processor inert: no new tasks or steps (the SDK cannot unregister a processor).

    Tasks and steps already running still end normally, so their frames are never left behind.
    """
    with _lock:
        if _processor is not None:
            _processor.enabled = False


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _processor is not None and _processor.enabled
