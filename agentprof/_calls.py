"""Recording one model call: the small API every provider integration uses.

An integration wraps an SDK method like this::

    call = start_call("openai", kwargs.get("model"), stream=bool(kwargs.get("stream")))
    token = bind_request(call)            # lets the SDK's request builder hand us the body bytes
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        finish_call(call, error=exc)
        raise
    finally:
        unbind_request(token)
    finish_call(call, usage=..., response_model=..., output=lambda: text_of(response))

Only cheap work happens on the caller's thread: a clock read, a contextvar lookup, reading
usage numbers off the response and building one attribute dict. The request body (bytes the
SDK already serialised, immutable) and a closure that extracts the output text are parked in
a bounded side table keyed by span id; the exporter thread fingerprints, prices and writes
them later (ARCHITECTURE decision 9). A call is finished exactly once, whatever path ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from agentprof import _runtime
from agentprof import _semconv as sc
from agentprof._context import Frame, new_span_id, parent_of_new_span
from agentprof._usage import CanonicalUsage

OutputSource = Callable[[], str]
"""Returns the call's output text; run later on the exporter thread, never on the caller's."""


@dataclass(slots=True)
class Payload:
    """What a finished call leaves for the exporter thread, beside its span attributes."""

    body: bytes | None
    base_url: str | None
    output: OutputSource | None
    raw_usage: Any
    capture_content: bool


@dataclass(slots=True)
class ModelCall:
    """A model call in flight. Created by :func:`start_call`, ended by :func:`finish_call`."""

    provider: str
    operation: str
    request_model: str | None
    stream: bool
    start_ns: int
    trace_id: int
    parent_span_id: int | None
    frame: Frame | None
    request_attributes: dict[str, Any]
    body: bytes | None = None
    url: str | None = None
    attempts: int = 0
    first_chunk_ns: int | None = None
    finished: bool = False


_current_call: ContextVar[ModelCall | None] = ContextVar("agentprof_call", default=None)
_payloads: dict[int, Payload] = {}


def start_call(
    provider: str,
    request_model: str | None,
    *,
    operation: str = sc.OPERATION_CHAT,
    stream: bool = False,
    request_attributes: Mapping[str, Any] | None = None,
) -> ModelCall | None:
    """Begin recording a call; ``None`` when agentprof is not configured (record nothing)."""
    if _runtime.get_runtime() is None:
        return None
    trace_id, parent_span_id, frame = parent_of_new_span()
    return ModelCall(
        provider=provider,
        operation=operation,
        request_model=request_model if isinstance(request_model, str) else None,
        stream=stream,
        start_ns=time.time_ns(),
        trace_id=trace_id,
        parent_span_id=parent_span_id,
        frame=frame,
        request_attributes=dict(request_attributes) if request_attributes else {},
    )


def bind_request(call: ModelCall | None) -> Token[ModelCall | None] | None:
    """Make ``call`` the receiver of :func:`capture_request` while the SDK builds its request."""
    if call is None:
        return None
    return _current_call.set(call)


def unbind_request(token: Token[ModelCall | None] | None) -> None:
    """Undo :func:`bind_request`."""
    if token is not None:
        try:
            _current_call.reset(token)
        except ValueError:  # reset from another context (e.g. an async generator): just clear
            _current_call.set(None)


def capture_request(body: bytes | None, url: str | None) -> None:
    """Called by the SDK request-builder hook: remember the serialised body and count attempts."""
    call = _current_call.get()
    if call is not None:
        call.body = body
        call.url = url
        call.attempts += 1


def mark_first_chunk(call: ModelCall | None) -> None:
    """Record time to first chunk for a stream (first call wins)."""
    if call is not None and call.first_chunk_ns is None:
        call.first_chunk_ns = time.time_ns()


def finish_call(
    call: ModelCall | None,
    *,
    usage: CanonicalUsage | None = None,
    raw_usage: Any = None,
    response_model: str | None = None,
    response_id: str | None = None,
    finish_reasons: Sequence[str] | None = None,
    output: OutputSource | None = None,
    error: BaseException | None = None,
    stream_complete: bool | None = None,
) -> None:
    """End ``call`` and hand its span to the processor. Idempotent: later calls are ignored.

    Args:
        call: What :func:`start_call` returned (``None`` is accepted and ignored).
        usage: Canonical usage, or ``None`` when unknown (error, stream ended early): the call
            is then reported as unpriced, never as $0.
        raw_usage: The provider's own usage object or dict, serialised off-thread.
        response_model: Model the provider says answered.
        response_id: Provider's response id.
        finish_reasons: Finish/stop reasons in choice order.
        output: Closure returning the output text (hashed off-thread; stored only with
            ``capture_content``).
        error: The exception that ended the call, if any.
        stream_complete: For streams, whether the consumer read it to the end.
    """
    if call is None or call.finished:
        return
    call.finished = True
    runtime = _runtime.get_runtime()
    if runtime is None:
        return
    end_ns = time.time_ns()
    frame = call.frame
    attributes: dict[str, Any] = {
        sc.AGENTPROF_KIND: sc.KIND_MODEL_CALL,
        sc.GEN_AI_OPERATION_NAME: call.operation,
        sc.GEN_AI_PROVIDER_NAME: call.provider,
        sc.GEN_AI_REQUEST_STREAM: call.stream,
        sc.AGENTPROF_ATTEMPTS: call.attempts or 1,
    }
    if call.request_model:
        attributes[sc.GEN_AI_REQUEST_MODEL] = call.request_model
    if call.request_attributes:
        attributes.update(call.request_attributes)
    if frame is not None:
        if frame.task_id is not None:
            attributes[sc.AGENTPROF_TASK_ID] = format(frame.task_id, "016x")
        attributes[sc.AGENTPROF_TASK_NAME] = frame.task_name
        attributes[sc.AGENTPROF_STEP_NAME] = frame.step_name
        if frame.step_kind is not None:
            attributes[sc.AGENTPROF_STEP_KIND] = frame.step_kind
        if frame.step_path is not None:
            attributes[sc.AGENTPROF_STEP_PATH] = frame.step_path
    else:
        attributes[sc.AGENTPROF_TASK_NAME] = sc.UNTRACKED_TASK
        attributes[sc.AGENTPROF_STEP_NAME] = sc.UNTRACKED_TASK
    if response_model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = response_model
    if response_id:
        attributes[sc.GEN_AI_RESPONSE_ID] = response_id
    if finish_reasons:
        attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(finish_reasons)
    if call.first_chunk_ns is not None:
        ttft = call.first_chunk_ns - call.start_ns
        attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft / 1e9
        attributes[sc.AGENTPROF_TTFT_MS] = ttft / 1e6
    if stream_complete is not None:
        attributes[sc.AGENTPROF_STREAM_COMPLETE] = stream_complete
    attributes[sc.AGENTPROF_USAGE_KNOWN] = usage is not None
    if usage is not None:
        attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
        attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
        attributes[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
        attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_tokens
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        if usage.cache_write_5m_tokens is not None:
            attributes[sc.AGENTPROF_CACHE_WRITE_5M] = usage.cache_write_5m_tokens
        if usage.cache_write_1h_tokens is not None:
            attributes[sc.AGENTPROF_CACHE_WRITE_1H] = usage.cache_write_1h_tokens
    if error is not None:
        attributes[sc.ERROR_TYPE] = type(error).__name__
    span_id = new_span_id()
    if call.body is not None or output is not None or raw_usage is not None or call.url is not None:
        # Exporter stalled or spans dropped: the oldest payloads belong to spans the processor's
        # queue already dropped (it drops its oldest too), so they go first.
        while len(_payloads) >= runtime.max_pending_payloads:
            try:
                del _payloads[next(iter(_payloads))]
            except (StopIteration, KeyError, RuntimeError):
                break
        _payloads[span_id] = Payload(call.body, call.url, output, raw_usage, runtime.capture_content)
    model = call.request_model or "unknown"
    _runtime.emit_span(
        f"{call.operation} {model}",
        trace_id=call.trace_id,
        span_id=span_id,
        parent_span_id=call.parent_span_id,
        start_ns=call.start_ns,
        end_ns=end_ns,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        error=error is not None,
        error_message=type(error).__name__ if error is not None else None,
    )


def take_payload(span_id: int) -> Payload | None:
    """Remove and return the payload parked for ``span_id`` (exporter thread)."""
    return _payloads.pop(span_id, None)


def pending_payloads() -> int:
    """Number of payloads waiting for the exporter (for ``doctor`` and memory tests)."""
    return len(_payloads)
