"""Where the current code is: the innermost task and step, kept in a contextvar.

Model-call wrappers read :data:`current_frame` once per call (a contextvar lookup, ~50 ns) to
learn their task and step names, instead of walking span parents later. The matching
OpenTelemetry context is attached too, so spans made by other instrumentation (httpx, the
official GenAI instrumentations) nest under agentprof's task and step spans.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agentprof._semconv import TASK_LEVEL_STEP, UNTRACKED_TASK

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_random = random.Random()


def new_span_id() -> int:
    """Return a random, non-zero 64-bit span id."""
    return _random.getrandbits(64) or 1


def new_trace_id() -> int:
    """Return a random, non-zero 128-bit trace id."""
    return _random.getrandbits(128) or 1


@dataclass(slots=True)
class TaskState:
    """Mutable outcome of one running task, set by :func:`agentprof.set_outcome`."""

    success: bool | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """The innermost agentprof span around the running code.

    Attributes:
        trace_id: Trace of the task (or of the application's span it started under).
        span_id: Id of the innermost task or step span; parent of model calls made here.
        task_id: Span id of the enclosing task, ``None`` outside any task.
        task_name: Name of the enclosing task, ``"(untracked)"`` outside any task.
        step_name: Innermost step name, ``"(task)"`` directly inside a task.
        step_kind: ``"step"`` or ``"tool"``; ``None`` directly inside a task.
        step_path: ``"outer/inner"`` path of nested steps, ``None`` outside steps.
        task_state: Outcome holder of the enclosing task.
    """

    trace_id: int
    span_id: int
    task_id: int | None
    task_name: str
    step_name: str
    step_kind: str | None
    step_path: str | None
    task_state: TaskState | None = field(default=None, compare=False)


current_frame: ContextVar[Frame | None] = ContextVar("agentprof_frame", default=None)

#: The frame of code outside any task in this process: ``None``, except under ``agentprof run``,
#: where the whole program (its threads and child processes included) is one task.
_process_frame: Frame | None = None


def set_process_frame(frame: Frame | None) -> None:
    """Make ``frame`` the parent of everything this process does outside a task (``agentprof run``)."""
    global _process_frame
    _process_frame = frame


def process_frame() -> Frame | None:
    """The frame set by :func:`set_process_frame`, if any."""
    return _process_frame


def parent_of_new_span() -> tuple[int, int | None, Frame | None]:
    """Return ``(trace_id, parent_span_id, frame)`` for a span starting now.

    Inside an agentprof frame the frame decides; otherwise an application's current
    OpenTelemetry span (if any) is the parent, so agentprof spans join existing traces.
    """
    frame = current_frame.get() or _process_frame
    if frame is not None:
        return frame.trace_id, frame.span_id, frame
    parent = trace.get_current_span().get_span_context()
    if parent.is_valid:
        return parent.trace_id, parent.span_id, None
    return new_trace_id(), None, None


def step_frame(name: str, kind: str, trace_id: int, outer: Frame | None) -> Frame:
    """A new step's frame inside ``outer`` (its task, outcome and ``outer/name`` path), or untracked."""
    span_id = new_span_id()
    if outer is None:
        return Frame(trace_id, span_id, None, UNTRACKED_TASK, name, kind, name, None)
    path = f"{outer.step_path}/{name}" if outer.step_path else name
    return Frame(trace_id, span_id, outer.task_id, outer.task_name, name, kind, path, outer.task_state)


def untracked_names() -> tuple[str, str]:
    """Task and step names for model calls made outside any task."""
    return UNTRACKED_TASK, UNTRACKED_TASK


def enter_frame(frame: Frame) -> tuple[object, object]:
    """Make ``frame`` current (ours and OpenTelemetry's); return tokens for :func:`exit_frame`."""
    span_context = SpanContext(frame.trace_id, frame.span_id, is_remote=False, trace_flags=_SAMPLED)
    otel_token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
    return current_frame.set(frame), otel_token


def exit_frame(tokens: tuple[object, object]) -> None:
    """Undo :func:`enter_frame`, tolerating a context that was already switched."""
    frame_token, otel_token = tokens
    try:
        current_frame.reset(frame_token)  # type: ignore[arg-type]
    except ValueError:
        current_frame.set(None)
    otel_context.detach(otel_token)  # type: ignore[arg-type]


__all__ = [
    "Frame",
    "TaskState",
    "TASK_LEVEL_STEP",
    "current_frame",
    "enter_frame",
    "exit_frame",
    "new_span_id",
    "new_trace_id",
    "parent_of_new_span",
]
