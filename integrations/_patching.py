"""The generic half of every provider integration: patch registry, call wrappers, stream proxies.

Provider modules (``openai.py``, ``anthropic.py``) only say *where* to patch and *how to read*
their SDK's objects; everything about the life of a recorded call lives here, once:

* :class:`Patcher` swaps class attributes for ``wrapt`` wrappers and restores the exact
  originals, idempotently. Patching the class (not a client) covers every client instance,
  including ones created before ``instrument()``.
* :func:`sync_call_wrapper` / :func:`async_call_wrapper` run the pattern of
  :mod:`agentprof._calls`: start, bind the request (so the request-builder hook can hand over
  the body bytes), call the SDK, finish or fail. The user's exceptions propagate unchanged
  (same object); our own failures go to :func:`agentprof._safety.internal_error`.
* :class:`SyncStreamProxy` / :class:`AsyncStreamProxy` wrap SDK streams so the user still gets
  an ``openai.Stream`` (``isinstance`` holds, every chunk is the same object, in order) while a
  :class:`StreamState` accumulates what the span needs.

Stream state machine (one :class:`StreamRecorder` per stream; the first terminal event wins,
later ones are ignored)::

    open --chunk--> open                      mark first chunk once; state.record_chunk(chunk)
    open --exhausted--> done                  stream_complete=True, usage from the state
    open --SDK error--> done                  error=exc, usage None; exc re-raised unchanged
    open --close()/exit/GC--> done            if the state saw the terminal event: as exhausted;
                                              else stream_complete=False, usage None (unpriced)
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import wrapt

from agentprof import _safety
from agentprof._calls import ModelCall, bind_request, capture_request, finish_call, mark_first_chunk, unbind_request

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
"""wrapt's wrapper signature: ``(wrapped, instance, args, kwargs) -> result``."""

StartCall = Callable[[Any, dict[str, Any]], ModelCall | None]
"""Provider hook: ``(resource instance, kwargs) -> call`` (``None``: agentprof not configured)."""

OnResult = Callable[[ModelCall, Any, dict[str, Any]], Any]
"""Provider hook: record a successful result; returns what the user gets (maybe a stream proxy)."""

_MISSING = object()


@dataclass(slots=True)
class _Patch:
    owner: type
    name: str
    original: Any
    owned: bool  # the attribute lived in owner.__dict__ (else it was inherited: delete on restore)
    wrapper: Any
    active: bool = True


class Patcher:
    """The set of class-level patches one integration applied, applied and undone as a whole.

    Idempotent: patching an attribute that is already patched by this patcher is a no-op, so
    ``instrument()`` twice wraps once. :meth:`unpatch_all` puts the original object back
    (``Completions.create is original`` afterwards); if some other library wrapped on top of
    us meanwhile, our wrapper is left in its chain but switched to pass-through, so theirs
    keeps working.
    """

    def __init__(self) -> None:
        self._patches: dict[tuple[type, str], _Patch] = {}
        self._lock = threading.Lock()

    def patch(self, owner: type, name: str, wrapper: Wrapper) -> None:
        """Wrap ``owner.name`` with ``wrapper`` unless this patcher already did."""
        with self._lock:
            if (owner, name) in self._patches:
                return
            owned = name in owner.__dict__
            original = owner.__dict__[name] if owned else getattr(owner, name)
            record = _Patch(owner, name, original, owned, None)
            record.wrapper = wrapt.FunctionWrapper(original, wrapper, enabled=lambda: record.active)
            setattr(owner, name, record.wrapper)
            self._patches[(owner, name)] = record

    def unpatch_all(self) -> None:
        """Restore every original this patcher replaced."""
        with self._lock:
            for record in self._patches.values():
                record.active = False
                if record.owner.__dict__.get(record.name, _MISSING) is not record.wrapper:
                    continue  # someone wrapped on top of us: stay in their chain, disabled
                if record.owned:
                    setattr(record.owner, record.name, record.original)
                else:
                    delattr(record.owner, record.name)
            self._patches.clear()

    def is_patched(self) -> bool:
        """Whether any patch of this patcher is in place."""
        return bool(self._patches)


def _fail(call: ModelCall, exc: BaseException) -> None:
    try:
        finish_call(call, error=exc)
    except Exception as internal:
        _safety.internal_error("finish_call.error", internal)


def _start(start: StartCall, instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
    try:
        return start(instance, kwargs)
    except Exception as exc:
        _safety.internal_error("start_call", exc)
        return None


def _salvage(call: ModelCall, where: str, exc: Exception, **outcome: Any) -> None:
    """Report a failure of ours, then still end ``call`` (usage unknown) so it is not lost."""
    try:
        _safety.internal_error(where, exc)
    finally:
        try:
            finish_call(call, **outcome)
        except Exception as internal:
            _safety.internal_error("finish_call.salvage", internal)


def _result(on_result: OnResult, call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return on_result(call, result, kwargs)
    except Exception as exc:
        _salvage(call, "on_result", exc)
        return result


RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
"""Header both Stainless SDKs add to ``extra_headers`` for ``with_raw_response`` / ``with_streaming_response``."""


def _raw_mode(kwargs: dict[str, Any]) -> str | None:
    headers = kwargs.get("extra_headers")
    if not headers:
        return None
    try:
        mode = headers.get(RAW_RESPONSE_HEADER)
    except Exception:  # not a mapping: not one of ours
        return None
    return mode if isinstance(mode, str) else None


def _raw_unreadable(call: ModelCall, mode: str, kwargs: dict[str, Any]) -> bool:
    """Finish calls whose raw response we must not parse; ``True`` when it did.

    ``with_streaming_response`` has not read the body yet (parsing would consume it under the
    user), and a raw response to ``stream=True`` hands out a stream we cannot substitute: both
    are recorded with usage unknown (unpriced), never guessed.
    """
    if mode == "stream" or kwargs.get("stream") is True:
        finish_call(call)
        return True
    return False


def _raw_sync(on_result: OnResult, call: ModelCall, result: Any, kwargs: dict[str, Any], mode: str) -> Any:
    try:
        if not _raw_unreadable(call, mode, kwargs):
            on_result(call, result.parse(), kwargs)  # the SDK caches the parse: the user's parse() is free
    except Exception as exc:
        _salvage(call, "on_raw_result", exc)
    return result


async def _raw_async(on_result: OnResult, call: ModelCall, result: Any, kwargs: dict[str, Any], mode: str) -> Any:
    try:
        if not _raw_unreadable(call, mode, kwargs):
            parsed = result.parse()  # sync on openai's legacy response, a coroutine on anthropic's
            if inspect.isawaitable(parsed):
                parsed = await parsed
            on_result(call, parsed, kwargs)
    except Exception as exc:
        _salvage(call, "on_raw_result", exc)
    return result


def _call_sync(
    start: StartCall,
    on_result: OnResult,
    instance: Any,
    kwargs: dict[str, Any],
    fn: Callable[..., Any],
    fn_args: tuple[Any, ...],
    fn_kwargs: dict[str, Any],
) -> Any:
    call = _start(start, instance, kwargs)
    if call is None:
        return fn(*fn_args, **fn_kwargs)
    token = bind_request(call)
    try:
        result = fn(*fn_args, **fn_kwargs)
    except BaseException as exc:
        _fail(call, exc)
        raise
    finally:
        unbind_request(token)
    if "extra_headers" in kwargs and (mode := _raw_mode(kwargs)) is not None:
        return _raw_sync(on_result, call, result, kwargs, mode)
    return _result(on_result, call, result, kwargs)


async def _call_async(
    start: StartCall,
    on_result: OnResult,
    instance: Any,
    kwargs: dict[str, Any],
    fn: Callable[..., Awaitable[Any]] | None,
    fn_args: tuple[Any, ...],
    fn_kwargs: dict[str, Any],
    awaitable: Awaitable[Any] | None = None,
) -> Any:
    call = _start(start, instance, kwargs)
    if call is None:
        return await (awaitable if fn is None else fn(*fn_args, **fn_kwargs))  # type: ignore[misc]
    token = bind_request(call)
    try:
        result = await (awaitable if fn is None else fn(*fn_args, **fn_kwargs))  # type: ignore[misc]
    except BaseException as exc:
        _fail(call, exc)
        raise
    finally:
        unbind_request(token)
    if "extra_headers" in kwargs and (mode := _raw_mode(kwargs)) is not None:
        return await _raw_async(on_result, call, result, kwargs, mode)
    return _result(on_result, call, result, kwargs)


def sync_call_wrapper(start: StartCall, on_result: OnResult) -> Wrapper:
    """Build the wrapt wrapper for a synchronous SDK method that makes one model call.

    ``start`` reads the request (kwargs) and opens the call; ``on_result`` records what came
    back and returns what the user gets. ``with_raw_response`` results are parsed (the SDK
    caches the parse) and handed to ``on_result``; the raw response itself is returned.
    """

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _call_sync(start, on_result, instance, kwargs, wrapped, args, kwargs)

    return wrapper


def async_call_wrapper(start: StartCall, on_result: OnResult) -> Wrapper:
    """Build the wrapt wrapper for an ``async def`` SDK method; the twin of :func:`sync_call_wrapper`."""

    def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        return _call_async(start, on_result, instance, kwargs, wrapped, args, kwargs)

    return wrapper


def deferred_sync_call(
    start: StartCall, on_result: OnResult, instance: Any, kwargs: dict[str, Any], request: Callable[[], Any]
) -> Callable[[], Any]:
    """Record ``request()`` (a zero-argument SDK request, run later) as one call described by ``kwargs``.

    For stream helpers that build the request now and send it when their context manager is
    entered (anthropic's ``MessageStreamManager``): the call starts when the request is sent.
    """
    return lambda: _call_sync(start, on_result, instance, kwargs, request, (), {})


def deferred_async_call(
    start: StartCall, on_result: OnResult, instance: Any, kwargs: dict[str, Any], request: Awaitable[Any]
) -> Awaitable[Any]:
    """The async twin of :func:`deferred_sync_call`, for an SDK request that is an un-awaited awaitable."""
    return _call_async(start, on_result, instance, kwargs, None, (), {}, request)


def build_request_hook(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrapper for an SDK's ``BaseClient._build_request``: hand the serialised body to the bound call.

    Runs once per HTTP attempt, so SDK retries are counted. The body bytes are immutable and
    already built by the SDK, so keeping a reference costs nothing; fingerprinting happens on
    the exporter thread. Never breaks request building: any failure here is ours and swallowed.
    """
    request = wrapped(*args, **kwargs)
    try:
        try:
            body = request.content
        except Exception:  # a streamed/unread body: no fingerprint, the call is still recorded
            body = None
        capture_request(body if isinstance(body, bytes) else None, str(request.url))
    except Exception as exc:
        _safety.internal_error("capture_request", exc)
    return request


class StreamState:
    """What a provider accumulates from the chunks of one stream (logfire's ``record_chunk`` contract).

    Subclasses keep per-chunk work to a few attribute reads and list appends; anything that
    needs the whole stream (joining text) goes into the ``output`` closure passed to
    ``finish_call``, which runs on the exporter thread.

    Attributes:
        saw_end: The provider's terminal event arrived (the final usage chunk, ``message_stop``):
            a stream closed after it is complete, not abandoned.
    """

    saw_end: bool = False

    def record_chunk(self, chunk: Any) -> None:
        """Take note of one chunk, cheaply."""
        raise NotImplementedError

    def finish(self, call: ModelCall) -> None:
        """End ``call`` as a complete stream, with whatever usage the chunks carried."""
        raise NotImplementedError


class StreamRecorder:
    """Drives one stream's span through the state machine in the module docstring."""

    __slots__ = ("_call", "_state", "_done", "_seen_chunk")

    def __init__(self, call: ModelCall, state: StreamState) -> None:
        self._call = call
        self._state = state
        self._done = False
        self._seen_chunk = False

    def chunk(self, chunk: Any) -> None:
        """A chunk was handed to the user."""
        if self._done:
            return
        try:
            if not self._seen_chunk:
                self._seen_chunk = True
                mark_first_chunk(self._call)
            self._state.record_chunk(chunk)
        except Exception as exc:
            _safety.internal_error("stream.chunk", exc)

    def exhausted(self) -> None:
        """The SDK stream ended normally."""
        if self._done:
            return
        self._done = True
        try:
            self._state.finish(self._call)
        except Exception as exc:
            _salvage(self._call, "stream.finish", exc, stream_complete=True)

    def failed(self, exc: BaseException) -> None:
        """The SDK raised mid-stream; ``exc`` is re-raised by the caller."""
        if self._done:
            return
        self._done = True
        try:
            finish_call(self._call, error=exc, stream_complete=False)
        except Exception as internal:
            _safety.internal_error("stream.failed", internal)

    def closed(self) -> None:
        """Closed, left by a ``with`` block, or garbage-collected: complete only if the end was seen."""
        if self._done:
            return
        if self._state.saw_end:
            self.exhausted()
            return
        self._done = True
        try:
            finish_call(self._call, stream_complete=False)
        except Exception as exc:
            _safety.internal_error("stream.closed", exc)


def _on_collect(recorder: StreamRecorder) -> None:
    recorder.closed()


if TYPE_CHECKING:
    _ObjectProxy = wrapt.ObjectProxy[Any]
else:
    _ObjectProxy = wrapt.ObjectProxy


class _StreamProxyBase(_ObjectProxy):
    """Shared set-up of the sync and async proxies (attributes prefixed ``_self_`` stay on the proxy)."""

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        # Abandonment: the proxy is collected before the stream ended. The callback holds the
        # recorder, never the proxy, so it does not keep the proxy alive.
        self._self_finalizer = weakref.finalize(self, _on_collect, recorder)

    def _self_close_recorded(self) -> None:
        self._self_finalizer.detach()
        self._self_recorder.closed()


class SyncStreamProxy(_StreamProxyBase):
    """A recording stand-in for an SDK ``Stream``: yields the very same chunks, in order."""

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        recorder: StreamRecorder = self._self_recorder
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            self._self_finalizer.detach()
            recorder.exhausted()
            raise
        except BaseException as exc:
            self._self_finalizer.detach()
            recorder.failed(exc)
            raise
        recorder.chunk(chunk)
        return chunk

    def close(self) -> None:
        """Close the SDK stream, then end the span (incomplete unless the end was seen)."""
        try:
            self.__wrapped__.close()
        finally:
            self._self_close_recorded()

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_close_recorded()


class AsyncStreamProxy(_StreamProxyBase):
    """The async twin of :class:`SyncStreamProxy`, around an SDK ``AsyncStream``."""

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        recorder: StreamRecorder = self._self_recorder
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_finalizer.detach()
            recorder.exhausted()
            raise
        except BaseException as exc:
            self._self_finalizer.detach()
            recorder.failed(exc)
            raise
        recorder.chunk(chunk)
        return chunk

    async def close(self) -> None:
        """Close the SDK stream, then end the span (incomplete unless the end was seen)."""
        try:
            await self.__wrapped__.close()
        finally:
            self._self_close_recorded()

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_close_recorded()


def proxy_stream(stream: Any, call: ModelCall, state: StreamState, *, is_async: bool) -> Any:
    """Wrap an SDK stream so its span ends by the state machine above."""
    recorder = StreamRecorder(call, state)
    if is_async:
        return AsyncStreamProxy(stream, recorder)
    return SyncStreamProxy(stream, recorder)


def number(kwargs: dict[str, Any], key: str) -> int | float | None:
    """A numeric request parameter from ``kwargs`` (``None`` when absent, ``NOT_GIVEN`` or not a number)."""
    value = kwargs.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None
