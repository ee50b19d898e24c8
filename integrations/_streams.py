"""Recording stand-ins for SDK streams: same chunks, same type, one span per stream.

:class:`SyncStreamProxy` / :class:`AsyncStreamProxy` wrap an SDK ``Stream`` / ``AsyncStream``
in a ``wrapt.ObjectProxy``: ``isinstance(proxy, openai.Stream)`` holds and every chunk is the
very object the SDK produced, in order. A provider's :class:`StreamState` accumulates what the
span needs with a few attribute reads per chunk; the text is rebuilt later, off-thread.

State machine (one :class:`StreamRecorder` per stream; the first terminal event wins, later
ones are ignored)::

    open --chunk--> open                      mark first chunk once; state.record_chunk(chunk)
    open --exhausted--> done                  stream_complete=True, usage from the state
    open --SDK error--> done                  error=exc, usage None; exc re-raised unchanged
    open --close()/exit/GC--> done            if the state saw the terminal event: as exhausted;
                                              else stream_complete=False, usage None (unpriced)
"""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any

import wrapt

from agentprof import _safety
from agentprof._calls import ModelCall, finish_call, mark_first_chunk

from ._patching import salvage


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
            salvage(self._call, "stream.finish", exc, stream_complete=True)

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


def helper_close_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper for an SDK stream *helper*'s ``close`` (``ChatCompletionStream``, ``ResponseStream``).

    The SDK helpers wrap the raw stream (our proxy) as ``_raw_stream`` but close only the HTTP
    response, and a helper holds itself in a reference cycle: without this, a helper left
    early would keep its span open until the garbage collector ran. Runs before the SDK's close
    and returns exactly what it returns (the very coroutine, when async). The span ends as
    complete if the terminal event was seen, else incomplete and unpriced.
    """
    try:
        raw = getattr(instance, "_raw_stream", None)
        if isinstance(raw, _StreamProxyBase):
            raw._self_close_recorded()
    except Exception as exc:
        _safety.internal_error("stream.helper_close", exc)
    return wrapped(*args, **kwargs)
