"""The generic patcher and stream proxies, with stand-ins where the SDKs cannot force a case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import wrapt

from agentprof import _runtime
from agentprof._calls import ModelCall, start_call
from agentprof.integrations._patching import (
    Patcher,
    async_call_wrapper,
    sync_call_wrapper,
)
from agentprof.integrations._streams import StreamState, proxy_stream
from tests.integrations.conftest import Calls


class Resource:
    def create(self, **kwargs: Any) -> Any:
        raise kwargs["error"]

    async def acreate(self, **kwargs: Any) -> Any:
        raise kwargs["error"]


def _start(instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
    return start_call("test", "m")


def _never(call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    raise AssertionError("not reached")


class Counting(StreamState):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def record_chunk(self, chunk: Any) -> None:
        self.seen.append(chunk)

    def finish(self, call: ModelCall) -> None:
        from agentprof._calls import finish_call

        finish_call(call, stream_complete=True)


class Exploding:
    """A stream that yields two chunks, then raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.chunks: Iterator[Any] = iter([object(), object()])
        self.error = error
        self.closed = False

    def __next__(self) -> Any:
        for chunk in self.chunks:
            return chunk
        raise self.error

    def close(self) -> None:
        self.closed = True


async def test_user_exceptions_propagate_as_the_same_object(profiled: _runtime.Runtime, calls: Calls) -> None:
    error = ValueError("from the SDK")
    sync_wrapped = wrapt.FunctionWrapper(Resource.create, sync_call_wrapper(_start, _never))
    async_wrapped = wrapt.FunctionWrapper(Resource.acreate, async_call_wrapper(_start, _never))

    with pytest.raises(ValueError) as raised:
        sync_wrapped(Resource(), error=error)
    assert raised.value is error
    with pytest.raises(ValueError) as araised:
        await async_wrapped(Resource(), error=error)
    assert araised.value is error
    assert [row["error_type"] for row in calls()] == ["ValueError", "ValueError"]


def test_stream_error_is_the_same_object_and_chunks_pass_through(profiled: _runtime.Runtime, calls: Calls) -> None:
    error = KeyError("mid-stream")
    raw = Exploding(error)
    call = start_call("test", "m", stream=True)
    assert call is not None
    state = Counting()
    proxy = proxy_stream(raw, call, state, is_async=False)

    first, second = next(proxy), next(proxy)
    with pytest.raises(KeyError) as raised:
        next(proxy)

    assert raised.value is error
    assert state.seen == [first, second]
    assert isinstance(proxy, Exploding)
    (row,) = calls()
    assert row["error_type"] == "KeyError" and row["stream_complete"] is False
    proxy.close()  # after the end: closes the SDK stream, records nothing more
    assert raw.closed
    assert len(calls()) == 1


def test_unpatch_leaves_a_later_wrapper_in_place_and_disables_ours() -> None:
    class Target:
        def method(self) -> str:
            return "original"

    original = Target.__dict__["method"]
    patcher = Patcher()
    patcher.patch(Target, "method", lambda wrapped, instance, args, kwargs: "ours+" + wrapped(*args, **kwargs))
    patcher.patch(Target, "method", lambda wrapped, instance, args, kwargs: "twice")  # idempotent: ignored
    assert Target().method() == "ours+original"
    wrapt.wrap_function_wrapper(Target, "method", lambda wrapped, instance, args, kwargs: "theirs+" + wrapped())
    assert Target().method() == "theirs+ours+original"

    patcher.unpatch_all()

    assert Target().method() == "theirs+original"
    assert not patcher.is_patched()
    assert Target.__dict__["method"] is not original  # theirs stays
