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
    finish_call(call, raw_usage=response.usage, usage_from=canonical_usage, output=text_of(response))

The caller's thread only captures references: a clock read, a contextvar lookup, the request
body (bytes the SDK already serialised, immutable), the request URL object, the provider's raw
usage object and the output (a string already built, or a closure that builds it). The call is
handed to the span processor as a :class:`agentprof._spans.DeferredSpan`: its attribute dict,
its name, the canonical usage and the request URL as text are built when the exporter thread
first reads them (ARCHITECTURE decision 9), where fingerprinting, pricing and writing happen
too. The references wait in a bounded side table keyed by span id. A call is finished exactly
once, whatever path ends it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from agentprof import _runtime, _safety
from agentprof import _semconv as sc
from agentprof._context import Frame, new_span_id, parent_of_new_span
from agentprof._usage import CanonicalUsage

OutputSource = Callable[[], str]
"""Returns the call's output text; run later on the exporter thread, never on the caller's."""

UsageReader = Callable[[Any], CanonicalUsage | None]
"""Turns a provider's raw usage object into canonical usage; run on the exporter thread."""


@dataclass(slots=True)
class Payload:
    """What a finished call leaves for the exporter thread, beside its span attributes."""

    body: bytes | None
    base_url: str | None
    output: OutputSource | None
    raw_usage: Any
    capture_content: bool


@dataclass(slots=True, eq=False)
class ModelCall:
    """A model call in flight. Created by :func:`start_call`, ended by :func:`finish_call`.

    After :func:`finish_call` it is read-only: the exporter thread builds the span's attributes
    from it (:meth:`span_attributes`) while the caller's thread has moved on.

    Attributes:
        request_attributes: Request attributes (``server.address`` ...), shared and never mutated:
            an integration passes the same mapping for every call of a client.
        temperature: ``gen_ai.request.temperature``, ``None`` when not set (likewise ``max_tokens``
            and ``top_p``).
        url: The request URL: text, or the SDK's URL object (made text on the exporter thread).
    """

    provider: str
    operation: str
    request_model: str | None
    stream: bool
    start_ns: int
    trace_id: int
    parent_span_id: int | None
    frame: Frame | None
    request_attributes: Mapping[str, Any] | None = None
    temperature: int | float | None = None
    max_tokens: int | float | None = None
    top_p: int | float | None = None
    body: bytes | None = None
    url: Any = None
    attempts: int = 0
    first_chunk_ns: int | None = None
    finished: bool = False
    # Set by finish_call:
    end_ns: int = 0
    usage: CanonicalUsage | None = None
    raw_usage: Any = None
    usage_from: UsageReader | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] | None = None
    output: OutputSource | str | None = None
    error_type: str | None = None
    stream_complete: bool | None = None
    capture_content: bool = False

    def span_name(self) -> str:
        """The span's name, ``"{operation} {model}"`` (exporter thread)."""
        return f"{self.operation} {self.request_model or 'unknown'}"

    def span_attributes(self) -> dict[str, Any]:
        """The span's attributes, built from what :func:`finish_call` kept (exporter thread)."""
        attributes: dict[str, Any] = {
            sc.AGENTPROF_KIND: sc.KIND_MODEL_CALL,
            sc.GEN_AI_OPERATION_NAME: self.operation,
            sc.GEN_AI_PROVIDER_NAME: self.provider,
            sc.GEN_AI_REQUEST_STREAM: self.stream,
            sc.AGENTPROF_ATTEMPTS: self.attempts or 1,
        }
        if self.request_model:
            attributes[sc.GEN_AI_REQUEST_MODEL] = self.request_model
        if self.request_attributes:
            attributes.update(self.request_attributes)
        if self.temperature is not None:
            attributes[sc.GEN_AI_REQUEST_TEMPERATURE] = self.temperature
        if self.max_tokens is not None:
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = self.max_tokens
        if self.top_p is not None:
            attributes[sc.GEN_AI_REQUEST_TOP_P] = self.top_p
        frame = self.frame
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
        if self.response_model:
            attributes[sc.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.response_id:
            attributes[sc.GEN_AI_RESPONSE_ID] = self.response_id
        if self.finish_reasons:
            attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(self.finish_reasons)
        if self.first_chunk_ns is not None:
            ttft = self.first_chunk_ns - self.start_ns
            attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft / 1e9
            attributes[sc.AGENTPROF_TTFT_MS] = ttft / 1e6
        if self.stream_complete is not None:
            attributes[sc.AGENTPROF_STREAM_COMPLETE] = self.stream_complete
        usage = self.canonical_usage()
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
        if self.error_type is not None:
            attributes[sc.ERROR_TYPE] = self.error_type
        return attributes

    def canonical_usage(self) -> CanonicalUsage | None:
        """Canonical usage: as given, or read from the raw usage object; ``None`` when unknown.

        A reader that fails is our bug: it is reported and the call is kept with usage unknown.
        """
        if self.usage is not None or self.usage_from is None or self.raw_usage is None:
            return self.usage
        try:
            return self.usage_from(self.raw_usage)
        except Exception as exc:
            _safety.internal_error("usage_from", exc)
            return None

    def payload(self) -> Payload:
        """The request body, URL text, output and raw usage for the exporter (exporter thread)."""
        output = self.output
        url = self.url
        return Payload(
            self.body,
            None if url is None else str(url),
            (lambda: output) if isinstance(output, str) else output,
            self.raw_usage,
            self.capture_content,
        )


bound_call: ContextVar[ModelCall | None] = ContextVar("agentprof_call", default=None)
"""The call whose SDK request is being built (:func:`bind_request`); SDK wrappers may set it directly."""
_payloads: dict[int, ModelCall] = {}
#: Request-body bytes parked in ``_payloads`` at most. Bodies carry the whole conversation (hundreds
#: of kilobytes per call late in an agent loop), so the count bound alone let a stalled exporter
#: hold gigabytes of them in the agent's process.
MAX_PENDING_BODY_BYTES = 128 * 1024 * 1024
_payload_lock = threading.Lock()  # _payloads and _pending_body_bytes change together
_pending_body_bytes = 0


def _park(call: ModelCall, span_id: int, max_count: int) -> None:
    """Leave ``call``'s payload for the exporter, letting the oldest go past either bound.

    Past the count bound (the processor's queue plus one batch in flight), the oldest payloads
    belong to spans the processor's queue already dropped (it drops its oldest too, and counts
    them). Past the bytes bound their spans may still be queued: they will be stored without
    request fingerprints or output hash, so those are counted (``payloads_dropped``, shown by
    ``agentprof doctor``).
    """
    global _pending_body_bytes
    size = len(call.body) if call.body is not None else 0
    dropped = 0
    with _payload_lock:
        while _payloads and (len(_payloads) >= max_count or _pending_body_bytes + size > MAX_PENDING_BODY_BYTES):
            oldest = _payloads.pop(next(iter(_payloads)))
            if len(_payloads) + 1 < max_count:
                dropped += 1
            if oldest.body is not None:
                _pending_body_bytes -= len(oldest.body)
            # Its span may still wait in the processor's queue, holding the call: let go of the
            # body and output here, or the bound would bound nothing.
            oldest.body = None
            oldest.output = None
        _payloads[span_id] = call
        _pending_body_bytes += size
    if dropped:
        _safety.count("payloads_dropped", dropped)


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
    attributes = dict(request_attributes) if request_attributes else None
    return open_call(provider, request_model, operation, stream, attributes, None, None, None)


def open_call(
    provider: str,
    request_model: Any,
    operation: str,
    stream: bool,
    request_attributes: Mapping[str, Any] | None,
    temperature: int | float | None,
    max_tokens: int | float | None,
    top_p: int | float | None,
) -> ModelCall:
    """:func:`start_call` for SDK wrappers that already checked agentprof is configured.

    ``request_attributes`` is kept, not copied: the wrappers pass one mapping per client, which
    nobody mutates. The sampling parameters are numbers or ``None``.
    """
    trace_id, parent_span_id, frame = parent_of_new_span()
    return ModelCall(
        provider,
        operation,
        request_model if isinstance(request_model, str) else None,
        stream,
        time.time_ns(),
        trace_id,
        parent_span_id,
        frame,
        request_attributes,
        temperature,
        max_tokens,
        top_p,
    )


def bind_request(call: ModelCall | None) -> Token[ModelCall | None] | None:
    """Make ``call`` the receiver of :func:`capture_request` while the SDK builds its request."""
    if call is None:
        return None
    return bound_call.set(call)


def unbind_request(token: Token[ModelCall | None] | None) -> None:
    """Undo :func:`bind_request`."""
    if token is not None:
        try:
            bound_call.reset(token)
        except ValueError:  # reset from another context (e.g. an async generator): just clear
            bound_call.set(None)


def capture_request(body: bytes | None, url: Any) -> None:
    """Called by the SDK request-builder hook: remember the serialised body and URL, count attempts.

    ``url`` is text or an immutable URL object (``str()`` gives the text, on the exporter thread).
    """
    call = bound_call.get()
    if call is not None:
        call.body = body
        call.url = url
        call.attempts += 1


def mark_first_chunk(call: ModelCall | None) -> None:
    """Record time to first chunk for a stream (first call wins)."""
    if call is not None and call.first_chunk_ns is None and not call.finished:
        call.first_chunk_ns = time.time_ns()


def finish_call(
    call: ModelCall | None,
    *,
    usage: CanonicalUsage | None = None,
    raw_usage: Any = None,
    usage_from: UsageReader | None = None,
    response_model: str | None = None,
    response_id: str | None = None,
    finish_reasons: Sequence[str] | None = None,
    output: OutputSource | str | None = None,
    error: BaseException | None = None,
    stream_complete: bool | None = None,
) -> None:
    """End ``call`` and hand its span to the processor. Idempotent: later calls are ignored.

    Args:
        call: What :func:`start_call` returned (``None`` is accepted and ignored).
        usage: Canonical usage, or ``None`` when unknown (error, stream ended early): the call
            is then reported as unpriced, never as $0.
        raw_usage: The provider's own usage object or dict, serialised off-thread.
        usage_from: When ``usage`` is not given: reads canonical usage out of ``raw_usage`` on the
            exporter thread (the raw object must not change after the call; SDK models don't).
        response_model: Model the provider says answered.
        response_id: Provider's response id.
        finish_reasons: Finish/stop reasons in choice order.
        output: The output text, or a closure returning it (run off-thread); hashed, and stored
            only with ``capture_content``.
        error: The exception that ended the call, if any.
        stream_complete: For streams, whether the consumer read it to the end.
    """
    if call is None or call.finished:
        return
    call.finished = True
    runtime = _runtime.get_runtime()
    if runtime is None:
        return
    call.end_ns = time.time_ns()
    call.usage = usage
    call.raw_usage = raw_usage
    call.usage_from = usage_from
    call.response_model = response_model
    call.response_id = response_id
    if finish_reasons:
        call.finish_reasons = finish_reasons if type(finish_reasons) is tuple else tuple(finish_reasons)
    call.output = output
    call.stream_complete = stream_complete
    call.capture_content = runtime.capture_content
    error_type = None
    if error is not None:
        error_type = call.error_type = type(error).__name__  # the name only: an exception holds frames
    span_id = new_span_id()
    if call.body is not None or output is not None or raw_usage is not None or call.url is not None:
        _park(call, span_id, runtime.max_pending_payloads)
    _runtime.emit_deferred(call, span_id, error_type)


def take_payload(span_id: int) -> Payload | None:
    """Remove and return the payload parked for ``span_id`` (exporter thread).

    The call lets go of the body and output: its span may wait longer in another processor's
    queue (the OTLP tee), and only the store needs them.
    """
    global _pending_body_bytes
    with _payload_lock:
        call = _payloads.pop(span_id, None)
        if call is None:
            return None
        if call.body is not None:
            _pending_body_bytes -= len(call.body)
    payload = call.payload()
    call.body = None
    call.output = None
    return payload


def pending_payloads() -> int:
    """Number of payloads waiting for the exporter (for ``doctor`` and memory tests)."""
    return len(_payloads)


def discard_payloads() -> None:
    """Forget every parked payload: at shutdown, after the last export.

    Their spans were never exported, and the exporter's own counts already say so.
    """
    global _pending_body_bytes
    with _payload_lock:
        _payloads.clear()
        _pending_body_bytes = 0


def pending_body_bytes() -> int:
    """Request-body bytes of the payloads waiting for the exporter (memory tests)."""
    return _pending_body_bytes
