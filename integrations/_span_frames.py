"""Following a framework's own spans with agentprof frames: shared by the Agents SDK and pydantic-ai integrations.

Both frameworks report their structure through callbacks that run synchronously where a span
starts and where it ends (the Agents SDK's tracing processor, an OpenTelemetry span processor for
pydantic-ai), in the context of the code that opens and closes it. An integration maps a span to
an agentprof task or step when it starts (:func:`open_frame`), makes that frame current, and on
end puts back what this context should show (:meth:`FrameFollower.restore_target`).

Leaving a frame never uses contextvar tokens: a token raises in any other context, and spans can
end from another context (an abandoned async generator is finalised from whichever task closes
it) or out of order. On end, the frame is put back only if the current frame in *this* context is
the span's own (or a finished descendant's): it becomes the nearest still-open ancestor's frame,
or what was current before the outermost finished one. Anything else (another context, an open
child) is left alone, so a callback can never raise nor leave a frame behind in the right context.

A framework span is a *task* when nothing of agentprof encloses it (or only a process frame of
``agentprof run``); inside a user's own task, or inside another framework task, it is a *step*:
one unit of work is one task.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace as otel_trace

from agentprof import _semconv as sc
from agentprof._context import Frame, TaskState, current_frame, new_span_id, new_trace_id, process_frame, step_frame
from agentprof._decorators import _Active, _Scope, step, task


@dataclass(slots=True, eq=False)
class FrameRecord:
    """One framework span mapped to an agentprof task or step, from its start to its end.

    Attributes:
        scope: The task or step that emits the span when it ends.
        active: Its running state (frame, parent span id, start time, tool hashes).
        entered: The frame made current at start.
        previous_frame: What this context showed before (what to put back).
        parent: The enclosing record of ours, if any.
        in_flight: The exception already propagating when the span started (not this span's failure).
        closed: Set when the span has ended.
    """

    scope: _Scope
    active: _Active
    entered: Frame
    previous_frame: Frame | None
    parent: FrameRecord | None
    in_flight: BaseException | None
    closed: bool = False


class FrameFollower:
    """The frames one processor made current: which record owns a frame, and what to restore on end.

    ``lock`` guards :attr:`by_frame` and every record's ``closed`` flag; framework callbacks run on
    any thread.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_frame: dict[int, Any] = {}  # frame span id -> record (a FrameRecord subclass), open or finished

    def enclosing(self) -> tuple[Frame | None, Any]:
        """``(frame, record)`` a span starting here nests in: the frame shown, skipping finished records of ours.

        ``record`` is ours when the frame shown is one this processor entered (``None`` otherwise).
        """
        shown = current_frame.get()
        with self.lock:
            parent = self.by_frame.get(shown.span_id) if shown is not None else None
            if parent is not None and parent.entered is not shown:
                parent = None
            return live_parent(shown, parent)

    def close(self, record: FrameRecord) -> tuple[Any, Any] | None:
        """Mark ``record`` finished and return :meth:`restore_target` for this context (under the lock)."""
        with self.lock:
            record.closed = True
            return self.restore_target()

    def restore_target(self) -> tuple[Any, Any] | None:
        """``(owner, outermost)`` when this context shows a finished frame of ours, else ``None``.

        ``owner`` is the record whose frame is shown; ``outermost`` the outermost finished record of
        its chain of finished ancestors: its ``previous_frame`` is what to show now. Any other frame
        shown here belongs to another context, or to an open child still running in this one, and is
        left alone. Call with :attr:`lock` held.
        """
        shown = current_frame.get()
        owner = self.by_frame.get(shown.span_id) if shown is not None else None
        if owner is None or owner.entered is not shown or not owner.closed:
            return None
        outermost = owner
        walker = owner.parent
        while walker is not None and walker.closed:
            outermost, walker = walker, walker.parent
        return owner, outermost


def live_parent(frame: Frame | None, record: Any) -> tuple[Frame | None, Any]:
    """Skip finished agentprof steps a context may still show (a span ended elsewhere)."""
    while record is not None and record.closed:
        frame, record = record.previous_frame, record.parent
    return frame, record


def open_frame(
    name: str,
    step_kind: str | None,
    previous: Frame | None,
    *,
    attributes: dict[str, Any] | None = None,
    foreign_scope: str | None = None,
) -> tuple[_Scope, _Active, Frame]:
    """The task or step a framework span becomes, with its frame (not yet current).

    Args:
        name: Task or step name.
        step_kind: ``None`` for what is a task at top level (a run), ``"step"`` or ``"tool"``.
        previous: The enclosing frame (:meth:`FrameFollower.enclosing`).
        attributes: Task attributes (only used when it becomes a task).
        foreign_scope: An OpenTelemetry instrumentation scope whose spans are never parents (the
            framework's own spans, which agentprof's provider does not export).
    """
    outer = previous if previous is not None else process_frame()
    trace_id, parent_span_id = parent_ids(outer, foreign_scope)
    scope: _Scope
    if step_kind is None and (previous is None or previous.task_id is None):
        scope = task(name, attributes=attributes)
        span_id = new_span_id()
        frame = Frame(trace_id, span_id, span_id, name, sc.TASK_LEVEL_STEP, None, None, TaskState())
    else:
        kind = step_kind or "step"
        scope = step(name, kind=kind)
        frame = step_frame(name, kind, trace_id, outer)
    return scope, _Active(frame, parent_span_id, time.time_ns()), frame


def parent_ids(outer: Frame | None, foreign_scope: str | None = None) -> tuple[int, int | None]:
    """``(trace_id, parent_span_id)``: the enclosing frame, else the application's OpenTelemetry span."""
    if outer is not None:
        return outer.trace_id, outer.span_id
    current = otel_trace.get_current_span()
    parent = current.get_span_context()
    if not parent.is_valid:
        return new_trace_id(), None
    scope = getattr(current, "instrumentation_scope", None)
    if foreign_scope is not None and getattr(scope, "name", None) == foreign_scope:
        return new_trace_id(), None
    return parent.trace_id, parent.span_id
