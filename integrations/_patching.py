"""The generic half of every provider integration: patch registry, call wrappers, request hook.

Provider modules (``openai.py``, ``anthropic.py``) only say *where* to patch and *how to read*
their SDK's objects (logfire's model: one generic patcher, a small module per provider);
everything about the life of a recorded call lives here and in :mod:`._streams`, once:

* :class:`Patcher` swaps class attributes for ``wrapt`` wrappers and restores the exact
  originals, idempotently. Patching the class (not a client) covers every client instance,
  including ones created before ``instrument()``.
* :func:`sync_call_wrapper` / :func:`async_call_wrapper` run the pattern of
  :mod:`agentprof._calls`: start, bind the request (so :func:`build_request_hook` can hand
  over the body bytes the SDK serialised), call the SDK, finish or fail. The user's
  exceptions propagate unchanged (same object, bare ``raise``); our own failures go to
  :func:`agentprof._safety.internal_error` and the call is still finished, usage unknown.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, cast

import wrapt

from agentprof import _safety
from agentprof import _semconv as sc
from agentprof._calls import ModelCall, bound_call, capture_request, finish_call

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
    # wrapt's ``enabled``: truthy while the patch is active. A list, emptied to disable, rather
    # than a callable: wrapt tests a non-callable's truth in C, a callable costs a Python call
    # on every SDK call (twice per model call, with the request-builder hook).
    switch: list[bool] = field(default_factory=lambda: [True])


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
            switch = cast(Any, record.switch)  # truthy or not by its length, which wrapt's stubs don't model
            record.wrapper = wrapt.FunctionWrapper(original, wrapper, enabled=switch)
            setattr(owner, name, record.wrapper)
            self._patches[(owner, name)] = record

    def unpatch_all(self) -> None:
        """Restore every original this patcher replaced."""
        with self._lock:
            for record in self._patches.values():
                record.switch.clear()
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


def _unbind(token: Token[ModelCall | None]) -> None:
    try:
        bound_call.reset(token)
    except ValueError:  # reset from another context (e.g. an async generator): just clear
        bound_call.set(None)


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


def salvage(call: ModelCall, where: str, exc: Exception, **outcome: Any) -> None:
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
        salvage(call, "on_result", exc)
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
        salvage(call, "on_raw_result", exc)
    return result


async def _raw_async(on_result: OnResult, call: ModelCall, result: Any, kwargs: dict[str, Any], mode: str) -> Any:
    try:
        if not _raw_unreadable(call, mode, kwargs):
            parsed = result.parse()  # sync on openai's legacy response, a coroutine on anthropic's
            if inspect.isawaitable(parsed):
                parsed = await parsed
            on_result(call, parsed, kwargs)
    except Exception as exc:
        salvage(call, "on_raw_result", exc)
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
    try:
        call = start(instance, kwargs)
    except Exception as exc:
        _safety.internal_error("start_call", exc)
        call = None
    if call is None:
        return fn(*fn_args, **fn_kwargs)
    token = bound_call.set(call)
    try:
        result = fn(*fn_args, **fn_kwargs)
    except BaseException as exc:
        _fail(call, exc)
        raise
    finally:
        _unbind(token)
    if "extra_headers" in kwargs and (mode := _raw_mode(kwargs)) is not None:
        return _raw_sync(on_result, call, result, kwargs, mode)
    try:
        return on_result(call, result, kwargs)
    except Exception as exc:
        salvage(call, "on_result", exc)
        return result


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
    token = bound_call.set(call)
    try:
        result = await (awaitable if fn is None else fn(*fn_args, **fn_kwargs))  # type: ignore[misc]
    except BaseException as exc:
        _fail(call, exc)
        raise
    finally:
        _unbind(token)
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


def patch_call_methods(
    patcher: Patcher,
    sync_resource: type,
    async_resource: type,
    start: StartCall,
    on_result: OnResult,
    names: tuple[str, ...] = ("create", "parse"),
) -> None:
    """Record every method in ``names`` that the SDK resource pair has (sync and async twins).

    ``parse`` and friends exist only in newer SDKs: a missing method is skipped, not an error.
    """
    sync_wrapper = sync_call_wrapper(start, on_result)
    async_wrapper = async_call_wrapper(start, on_result)
    for name in names:
        if hasattr(sync_resource, name):
            patcher.patch(sync_resource, name, sync_wrapper)
        if hasattr(async_resource, name):
            patcher.patch(async_resource, name, async_wrapper)


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

    Runs once per HTTP attempt, so SDK retries are counted. The body bytes and the URL object
    are immutable and already built by the SDK, so keeping references costs nothing;
    fingerprinting happens on the exporter thread. Never breaks request building: any failure
    here is ours and swallowed.
    """
    request = wrapped(*args, **kwargs)
    try:
        try:
            body = request.content
        except Exception:  # a streamed/unread body: no fingerprint, the call is still recorded
            body = None
        # The URL object is immutable; it becomes text on the exporter thread (str() costs ~1 µs).
        capture_request(body if isinstance(body, bytes) else None, request.url)
    except Exception as exc:
        _safety.internal_error("capture_request", exc)
    return request


def number(kwargs: Mapping[str, Any], key: str) -> int | float | None:
    """A numeric request parameter from ``kwargs`` (``None`` when absent, ``NOT_GIVEN`` or not a number)."""
    value = kwargs.get(key)
    if value is None or value is True or value is False:
        return None
    return value if isinstance(value, _NUMBERS) else None


_NUMBERS = (int, float)  # a tuple: isinstance is cheaper with it than with ``int | float``


class ClientFacts(NamedTuple):
    """What every call through one SDK client shares, worked out once per client and base URL."""

    provider: str
    """``gen_ai.provider.name``: who serves and bills the client's calls."""
    deployment: str | None
    """The Azure OpenAI deployment the base URL is bound to, else ``None``."""
    server: Mapping[str, Any]
    """``server.address`` and ``server.port``: one mapping shared by the client's calls, never mutated."""


def server_attributes(url: Any) -> Mapping[str, Any]:
    """``server.address`` (and ``server.port`` when explicit) of an SDK's base URL object, read-only."""
    attributes: dict[str, Any] = {sc.SERVER_ADDRESS: url.host}
    if url.port is not None:
        attributes[sc.SERVER_PORT] = url.port
    return MappingProxyType(attributes)


class ClientFactsCache:
    """:class:`ClientFacts` per client, keyed by the identity of its base URL object.

    ``describe(client, base_url)`` works the facts out on a miss. They depend only on the base
    URL and the client's class, and an entry holds its URL object (so its id cannot be reused
    while cached) and is checked against the class: an entry is never stale. Setting a
    client's ``base_url`` gives it a new URL object, hence new facts. Bounded: a program that
    makes a client per request just starts over every :attr:`MAX_ENTRIES` clients.
    """

    MAX_ENTRIES = 64

    def __init__(self, describe: Callable[[Any, Any], ClientFacts]) -> None:
        self._describe = describe
        self._entries: dict[int, tuple[Any, type, ClientFacts]] = {}

    def get(self, client: Any) -> ClientFacts:
        """The facts for ``client`` (an SDK client with a ``base_url``)."""
        url = client.base_url
        entry = self._entries.get(id(url))
        if entry is not None and entry[0] is url and entry[1] is type(client):
            return entry[2]
        facts = self._describe(client, url)
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[id(url)] = (url, type(client), facts)
        return facts
