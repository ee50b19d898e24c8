"""Recording stand-ins for SDK streams: same chunks, same type, one span per stream.

:class:`SyncStreamProxy` / :class:`AsyncStreamProxy` wrap an SDK ``Stream`` / ``AsyncStream``
in a ``wrapt.ObjectProxy``: ``isinstance(proxy, openai.Stream)`` holds and every chunk is the
very object the SDK produced, in order. A provider's :class:`StreamState` accumulates what the
span needs with a few attribute reads per chunk; the text is rebuilt later, off-thread.

State machine (one :class:`StreamRecorder` per stream; the first terminal event wins, later
ones are ignored)::

    open --chunk--> open                      mark first chunk once; state.record_chunk(chunk)
                                              (called by the proxy directly; a no-op once done)
    open --exhausted--> done                  stream_complete=True, usage from the state
    open --SDK error--> done                  error=exc, usage None; exc re-raised unchanged
    open --close()/exit/GC--> done            if the state saw the terminal event: as exhausted;
                                              else stream_complete=False, usage None (unpriced)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
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

    __slots__ = ("_call", "_state", "_done")

    def __init__(self, call: ModelCall, state: StreamState) -> None:
        self._call = call
        self._state = state
        self._done = False

    def start(self) -> Callable[[Any], None]:
        """The first chunk arrived: mark it, and return what records each chunk from now on.

        The proxies call the returned function directly for every chunk (no method of ours in
        between) and swap it for :func:`_ignore` when the stream ends, so a chunk never reaches a
        state whose span has ended.
        """
        if self._done:
            return _ignore
        mark_first_chunk(self._call)
        return self._state.record_chunk

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


def _ignore(chunk: Any) -> None:
    """What records a chunk once the stream's span has ended: nothing."""


if TYPE_CHECKING:
    _ObjectProxy = wrapt.ObjectProxy[Any]
else:
    _ObjectProxy = wrapt.ObjectProxy


class _StreamProxyBase(_ObjectProxy):
    """Shared set-up of the sync and async proxies (attributes prefixed ``_self_`` stay on the proxy).

    Per chunk, the proxy calls ``box[0]`` (the provider state's ``record_chunk`` once the first
    chunk is marked, ``None`` before it, :func:`_ignore` after the end) with no method of ours in
    between: the chunk path is most of what a long stream costs us, and reading an attribute of a
    ``wrapt`` proxy costs ~130 ns here (a plain object's, ~7 ns), so the chunk path reads one at
    most: ``_self_pull``, the wrapped stream's next-chunk method with the box. The box is a list
    so that a ``for`` loop's generator can hold it too.
    """

    _self_next_method = "__next__"

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        box: list[Callable[[Any], None] | None] = [None]
        self._self_box = box
        # None when the wrapped object has no such method: the chunk path then asks it again, and
        # fails as the object itself would.
        self._self_pull = (getattr(wrapped, self._self_next_method, None), box)
        # Abandonment: the proxy is collected before the stream ended. The callback holds the
        # recorder, never the proxy, so it does not keep the proxy alive.
        self._self_finalizer = weakref.finalize(self, _on_collect, recorder)

    def _self_start(self) -> Callable[[Any], None]:
        """The first chunk: mark it, and put what records the chunks into the box."""
        record = self._self_box[0] = self._self_recorder.start()
        return record

    def _self_exhausted(self) -> None:
        self._self_box[0] = _ignore
        self._self_finalizer.detach()
        self._self_recorder.exhausted()

    def _self_failed(self, exc: BaseException) -> None:
        self._self_box[0] = _ignore
        self._self_finalizer.detach()
        self._self_recorder.failed(exc)

    def _self_close_recorded(self) -> None:
        self._self_box[0] = _ignore
        self._self_finalizer.detach()
        self._self_recorder.closed()


class SyncStreamProxy(_StreamProxyBase):
    """A recording stand-in for an SDK ``Stream``: yields the very same chunks, in order.

    ``for chunk in proxy`` runs :meth:`_self_chunks`, a generator (as the SDK's own ``__iter__``
    is) whose chunk path reads no attribute of the proxy; ``next(proxy)`` works too, and both can
    be mixed: each pulls the wrapped stream's next chunk.
    """

    def __iter__(self) -> Iterator[Any]:
        return self._self_chunks()

    def _self_chunks(self) -> Iterator[Any]:
        next_chunk, box = self._self_pull
        if next_chunk is None:
            next_chunk = self.__wrapped__.__next__
        while True:
            try:
                chunk = next_chunk()
            except StopIteration:
                self._self_exhausted()
                return
            except BaseException as exc:
                self._self_failed(exc)
                raise
            try:
                (box[0] or self._self_start())(chunk)
            except Exception as exc:
                _safety.internal_error("stream.chunk", exc)
            yield chunk

    def __next__(self) -> Any:
        # One step of the loop above (a fresh generator, dropped after its first chunk): next() on
        # a stream is rare next to for loops, so it takes their path rather than a copy of it.
        return next(self._self_chunks())

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
    """The async twin of :class:`SyncStreamProxy`, around an SDK ``AsyncStream``.

    ``async for`` goes through :meth:`__anext__` (not an async generator: one collected before
    its end is finalised by the event loop, and trio warns about each).
    """

    _self_next_method = "__anext__"

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        next_chunk, box = self._self_pull
        try:
            chunk = await (next_chunk() if next_chunk is not None else self.__wrapped__.__anext__())
        except StopAsyncIteration:
            self._self_exhausted()
            raise
        except BaseException as exc:
            self._self_failed(exc)
            raise
        try:
            (box[0] or self._self_start())(chunk)
        except Exception as exc:
            _safety.internal_error("stream.chunk", exc)
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
