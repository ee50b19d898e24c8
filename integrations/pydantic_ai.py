"""pydantic-ai instrumentation: an agent run is a task; tool calls inside it are steps.

pydantic-ai instruments itself with OpenTelemetry (``Agent.instrument_all(InstrumentationSettings(...))``).
agentprof gives it a tracer provider of its own whose only span processor maps pydantic-ai's spans
onto tasks and steps. That provider has no exporter: pydantic-ai's spans go nowhere else, and
agentprof emits its own task and step spans, as for any other integration.

=====================================  ==============================================================
pydantic-ai span                       agentprof
=====================================  ==============================================================
agent run (``invoke_agent <name>``,    task named after the agent (``Agent(name=...)``; pydantic-ai's
or ``agent run`` in format 2)          default is ``"agent"``). Inside a user's own ``agentprof.task``
                                       (or a tool of another agent) it is a *step* instead: one unit
                                       of work is one task.
tool (``execute_tool <name>``),        step, ``kind="tool"``, named after the tool (or output
output function                        function); argument and result hashes when pydantic-ai puts the
                                       content on the span (``capture_content=True``)
model request (``chat <model>``)       nothing: the ``openai`` integration records the HTTP call inside
                                       it, with the real usage. The run span's aggregated usage
                                       (``gen_ai.aggregated_usage.*``) is never read: nothing is
                                       counted twice.
anything else                          nothing
=====================================  ==============================================================

How frames follow the spans: the OpenTelemetry SDK calls ``on_start`` synchronously inside
``start_span`` and ``on_end`` inside ``Span.end()``, in the context of the code that opens and
closes the span. So making agentprof's frame current in ``on_start`` puts every model call made
inside that run or tool (including from the child tasks and worker threads pydantic-ai starts
there, which copy the context) in the right task and step. pydantic-ai opens the run span in a
helper task and copies the context variables it set there (agentprof's frame included) into the
caller's task for the run's body, then restores them, exactly as it does for its own OpenTelemetry
context. agentprof never touches the OpenTelemetry context itself: pydantic-ai already makes its
own span current, and agentprof's spans find their parents through agentprof's frame.

Leaving a frame never uses contextvar tokens (streamed runs end wherever the stream is closed):
the rules are shared with the Agents SDK integration (``integrations/_span_frames.py``). Tool steps
pydantic-ai never ends (durable-execution replays) end with their run.

Failures: a run or tool fails when an exception is propagating through it as its span ends (and was
not already in flight when it started), or when pydantic-ai set the span's status to ERROR (a tool
call that failed validation, or one whose error became a retry prompt for the model: ``SpanError``).
A streamed run closed before its end is cancelled by pydantic-ai: a failed task (``CancelledError``).

When pydantic-ai is already instrumented (``Agent.instrument_all(...)`` was called before
:func:`instrument`, e.g. by ``logfire.instrument_pydantic_ai()``), agentprof keeps the user's
setting and adds its processor to the user's OpenTelemetry SDK tracer provider (the global one for
``instrument_all(True)``, or the one behind ``InstrumentationSettings(tracer_provider=...)``): the
user's spans and exports are unchanged, and their sampler then decides which runs agentprof sees.
A provider that is not the OpenTelemetry SDK's cannot take a processor: those runs are not grouped
(their model calls are still recorded, outside any task), and neither are agents created with
``instrument=False`` or with their own ``instrument=`` settings; add :func:`span_processor` to such
a provider yourself (``provider.add_span_processor(span_processor())``).

Content: pydantic-ai puts prompts, tool arguments and results on its spans only when agentprof's
``capture_content`` is on (read when :func:`instrument` runs); they never leave the process either way.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import StatusCode
from pydantic_ai import Agent
from pydantic_ai.models.instrumented import InstrumentationSettings

from agentprof import _runtime, _safety
from agentprof._context import current_frame
from agentprof._decorators import _repr_hash

from ._span_frames import FrameFollower, FrameRecord, open_frame

#: pydantic-ai's instrumentation scope: spans of any other library on a shared provider are ignored.
SCOPE_NAME = "pydantic-ai"

_RUN = "invoke_agent"
_TOOL = "execute_tool"
_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "tool_arguments")
_RESULT_KEYS = ("gen_ai.tool.call.result", "tool_response")


class SpanError(Exception):
    """Stands for an error pydantic-ai recorded on a span without raising through it."""


@dataclass(slots=True, eq=False)
class _Open(FrameRecord):
    """One pydantic-ai span mapped to an agentprof task or step, from its start to its end."""

    key: int = 0  # the pydantic-ai span's id
    is_run: bool = False

    @property
    def root(self) -> FrameRecord:
        record: FrameRecord = self
        while record.parent is not None:
            record = record.parent
        return record


def _mapping(span: ReadableSpan) -> tuple[str, str | None] | None:
    """``(name, step kind)`` a span becomes (kind None for a run), or None for spans that are nothing."""
    scope = span.instrumentation_scope
    if scope is None or scope.name != SCOPE_NAME:
        return None
    attributes = span.attributes or {}
    operation = attributes.get("gen_ai.operation.name")
    if operation == _RUN:
        name = attributes.get("gen_ai.agent.name") or attributes.get("agent_name")
        return (name if isinstance(name, str) and name else "agent"), None
    if operation == _TOOL:
        name = attributes.get("gen_ai.tool.name")
        return (name if isinstance(name, str) and name else "tool"), "tool"
    return None


def _first(attributes: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


class AgentprofSpanProcessor(SpanProcessor):
    """Turns pydantic-ai's agent-run and tool spans into agentprof tasks and steps (see the module docstring).

    Every callback is guarded: a failure inside agentprof is counted and swallowed, never raised
    into pydantic-ai. ``enabled`` gates only *starting* tasks and steps, so turning it off mid-run
    still ends (and un-nests) everything already started.
    """

    def __init__(self) -> None:
        self.enabled = True
        self._frames = FrameFollower()  # frame span id -> record, open or finished, until its root ends
        self._lock = self._frames.lock
        self._open: dict[int, _Open] = {}  # pydantic-ai span id -> open record
        self._by_root: dict[int, list[_Open]] = {}  # root record's frame span id -> its records

    # --- SpanProcessor -----------------------------------------------------------------------
    def on_start(self, span: SDKSpan, parent_context: otel_context.Context | None = None) -> None:
        """Start a task (or step) for an agent run, a tool step for a tool call."""
        try:
            if not self.enabled or _runtime.get_runtime() is None:
                return
            mapped = _mapping(span)
            if mapped is not None:
                self._start(span, mapped[0], mapped[1])
        except Exception as exc:
            _safety.internal_error("pydantic_ai.span_start", exc)

    def on_end(self, span: ReadableSpan) -> None:
        """End the span's task or step, if it has one."""
        try:
            context = span.context
            if context is not None and self._open:
                self._end(context.span_id, span)
        except Exception as exc:
            _safety.internal_error("pydantic_ai.span_end", exc)

    def shutdown(self) -> None:
        """Nothing to release: tasks and steps are emitted as they end."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered here: agentprof's exporter flushes with ``agentprof.flush()``."""
        return True

    # --- starting ----------------------------------------------------------------------------
    def _start(self, span: SDKSpan, name: str, step_kind: str | None) -> None:
        context = span.context
        if context is None:
            return
        previous, parent = self._frames.enclosing()
        scope, active, frame = open_frame(name, step_kind, previous, foreign_scope=SCOPE_NAME)
        if step_kind == "tool":
            arguments = _first(span.attributes or {}, _ARGUMENT_KEYS)
            active.args_hash = _repr_hash(arguments) if arguments is not None else None
        record = _Open(
            scope=scope,
            active=active,
            entered=frame,
            previous_frame=previous,
            parent=parent,
            in_flight=sys.exc_info()[1],
            key=context.span_id,
            is_run=step_kind is None,
        )
        with self._lock:
            self._open[record.key] = record
            self._frames.by_frame[frame.span_id] = record
            self._by_root.setdefault(record.root.entered.span_id, []).append(record)
        current_frame.set(frame)

    # --- ending ------------------------------------------------------------------------------
    def _end(self, key: int, span: ReadableSpan) -> None:
        with self._lock:
            record = self._open.pop(key, None)
        if record is None:
            return
        in_flight = sys.exc_info()[1]
        error = in_flight if in_flight is not None and in_flight is not record.in_flight else None
        if error is None and span.status.status_code is StatusCode.ERROR:
            error = SpanError(span.status.description or "error")
        if not record.is_run:
            result = _first(span.attributes or {}, _RESULT_KEYS)
            record.active.result_hash = _repr_hash(result) if result is not None else None
        else:
            self._close_left_open(record)
        self._close(record, error)
        if record.parent is None:
            with self._lock:
                for done in self._by_root.pop(record.entered.span_id, ()):
                    self._frames.by_frame.pop(done.entered.span_id, None)

    def _close_left_open(self, run: _Open) -> None:
        """End the steps inside ``run`` that pydantic-ai never ended, innermost first."""
        with self._lock:
            records = list(self._by_root.get(run.root.entered.span_id, ()))
            left = [r for r in records if r is not run and not r.closed and _inside(r, run)]
            for record in left:
                self._open.pop(record.key, None)
        for record in reversed(left):
            self._close(record, None)

    def _close(self, record: _Open, error: BaseException | None) -> None:
        """Mark ``record`` finished, restore this context's frame if it is ours to restore, emit the span."""
        restore = self._frames.close(record)
        if restore is not None:
            current_frame.set(restore[1].previous_frame)
        record.scope._finish(record.active, error)


def _inside(record: _Open, run: _Open) -> bool:
    walker = record.parent
    while walker is not None:
        if walker is run:
            return True
        walker = walker.parent
    return False


# --- instrument / uninstrument ------------------------------------------------------------------
_lock = threading.Lock()
_processor: AgentprofSpanProcessor | None = None
_settings: InstrumentationSettings | None = None  # what instrument() installed with instrument_all
_previous: InstrumentationSettings | bool = False  # what instrument_all was set to before
_attached: list[Any] = []  # users' multi span processors agentprof's processor was added to


def span_processor() -> AgentprofSpanProcessor:
    """Agentprof's span processor, for a tracer provider agentprof cannot reach by itself.

    ``provider.add_span_processor(span_processor())`` on the OpenTelemetry SDK provider an agent's
    own ``instrument=InstrumentationSettings(tracer_provider=provider)`` uses groups its runs too.
    It only acts while :func:`instrument` is in effect.
    """
    global _processor
    with _lock:
        if _processor is None:
            _processor = AgentprofSpanProcessor()
            _processor.enabled = False
        return _processor


def _own_settings(processor: AgentprofSpanProcessor) -> InstrumentationSettings:
    """Instrumentation on a private provider: no exporter, every span sampled, no metrics."""
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    runtime = _runtime.get_runtime()
    capture = bool(runtime.capture_content) if runtime is not None else False
    return InstrumentationSettings(
        tracer_provider=provider,
        meter_provider=NoOpMeterProvider(),
        include_content=capture,
        include_binary_content=False,
        include_model_request_parameters=False,
    )


def _users_processors(setting: InstrumentationSettings | bool) -> Any:
    """The SDK multi span processor behind the user's pydantic-ai instrumentation, or None."""
    if isinstance(setting, InstrumentationSettings):
        tracer = setting.tracer
        if isinstance(tracer, SDKTracer):  # the provider's multi processor (renamed across SDK versions)
            return getattr(tracer, "span_processor", None) or getattr(tracer, "_span_processor", None)
        return None
    provider = otel_trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return getattr(provider, "_active_span_processor", None)
    return None


def _attach_to_users(setting: InstrumentationSettings | bool, processor: AgentprofSpanProcessor) -> None:
    processors = _users_processors(setting)
    if processors is None or not hasattr(processors, "add_span_processor"):
        _safety.count("pydantic_ai.instrumented_elsewhere")
        return
    if processor not in tuple(getattr(processors, "_span_processors", ())):
        processors.add_span_processor(processor)
    if all(processors is not seen for seen in _attached):
        _attached.append(processors)


def instrument() -> None:
    """Map pydantic-ai's agent runs and tool calls onto tasks and steps (idempotent).

    Turns pydantic-ai's instrumentation on with agentprof's private tracer provider, or, when the
    user already instrumented pydantic-ai, joins the user's provider (see the module docstring).
    """
    global _settings, _previous
    processor = span_processor()
    with _lock:
        processor.enabled = True
        current = Agent._instrument_default
        if _settings is not None and current is _settings:
            return
        if current:
            _attach_to_users(current, processor)
            return
        _previous = current
        _settings = _own_settings(processor)
        Agent.instrument_all(_settings)


def uninstrument() -> None:
    """Give pydantic-ai back its previous instrumentation setting; make the processor inert.

    A user's own setting made after :func:`instrument` is left alone. Runs already going still end
    their tasks and steps normally, so no frame is left behind.
    """
    global _settings
    with _lock:
        if _processor is not None:
            _processor.enabled = False
        if _settings is not None and Agent._instrument_default is _settings:
            Agent.instrument_all(_previous)
        _settings = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    if _processor is None or not _processor.enabled:
        return False
    return (_settings is not None and Agent._instrument_default is _settings) or bool(_attached)
