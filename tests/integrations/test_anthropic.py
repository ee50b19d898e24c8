"""The Anthropic integration, through the real SDK over real HTTP to the local model server."""

from __future__ import annotations

import gc
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic._base_client import BaseClient
from anthropic.resources.messages import AsyncMessages, Messages

from agentprof import _runtime, _safety
from agentprof.integrations import anthropic as integration
from agentprof.testserver import LocalModelServer
from tests.integrations.conftest import Calls
from tests.integrations.helpers import ANTHROPIC_MODEL, anthropic_truth, usage_of, user

SYSTEM = "You are a meticulous assistant for the agentprof test suite. " * 8
TOOL = {"name": "lookup", "description": "Look a thing up.", "input_schema": {"type": "object"}}


def _cached_system(ttl_first: str, ttl_second: str) -> list[dict[str, Any]]:
    """Two system blocks, each a cache breakpoint, with the given TTLs (1h must come first)."""
    return [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": ttl_first}},
        {"type": "text", "text": SYSTEM.upper(), "cache_control": {"type": "ephemeral", "ttl": ttl_second}},
    ]


def test_plain_call_is_recorded_with_canonical_usage(
    ant: anthropic.Anthropic, server: LocalModelServer, calls: Calls
) -> None:
    message = ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:hello]]"))

    assert message.content[0].text == "hello"  # type: ignore[union-attr]
    (row,) = calls()
    truth = anthropic_truth(server.requests[-1].usage or {})
    assert usage_of(row, truth) == truth
    assert row["provider"] == "anthropic"
    assert row["response_model"] == ANTHROPIC_MODEL
    assert row["response_id"] == message.id
    assert row["finish_reasons"] == '["end_turn"]'
    assert row["request_fingerprint"]


def test_cache_reads_and_writes_are_added_to_input(
    ant: anthropic.Anthropic, server: LocalModelServer, calls: Calls
) -> None:
    for _ in range(2):
        ant.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, system=_cached_system("1h", "5m"), messages=user("question")
        )

    write, read = calls()
    write_truth, read_truth = (exchange.usage or {} for exchange in server.requests)
    assert write_truth["cache_creation_input_tokens"] > 0
    assert write_truth["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    assert write_truth["cache_creation"]["ephemeral_5m_input_tokens"] > 0
    assert read_truth["cache_read_input_tokens"] > 0
    for row, truth in ((write, write_truth), (read, read_truth)):
        expected = anthropic_truth(truth)
        assert usage_of(row, expected) == expected
        assert row["input_tokens"] == (
            truth["input_tokens"] + truth["cache_read_input_tokens"] + truth["cache_creation_input_tokens"]
        )
    assert write["cache_write_5m_tokens"] + write["cache_write_1h_tokens"] == write["cache_write_tokens"]


def test_create_stream_read_to_the_end(ant: anthropic.Anthropic, server: LocalModelServer, calls: Calls) -> None:
    stream = ant.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=64,
        system=_cached_system("5m", "5m"),
        messages=user("[[reply:streamed words]] [[chunks:4]] [[reasoning:5]]"),
        stream=True,
    )
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)

    assert [event.type for event in events][-1] == "message_stop"
    (row,) = calls()
    truth = anthropic_truth(server.requests[-1].usage or {})
    assert truth["cache_write_tokens"] > 0
    assert usage_of(row, truth) == truth
    assert row["stream_complete"] is True and row["ttft_ms"] > 0
    assert row["finish_reasons"] == '["end_turn"]'
    assert row["output_chars"] == len("streamed words")


def test_stream_helper_text_stream_and_final_message_record_once(
    ant: anthropic.Anthropic, server: LocalModelServer, calls: Calls
) -> None:
    with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:a b c]] [[chunks:3]]")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()

    assert text == "a b c"
    (row,) = calls()
    assert row["stream"] is True and row["stream_complete"] is True
    assert row["input_tokens"] == final.usage.input_tokens
    assert row["output_tokens"] == final.usage.output_tokens
    assert usage_of(row, anthropic_truth(server.requests[-1].usage or {})) == anthropic_truth(
        server.requests[-1].usage or {}
    )
    assert row["ttft_ms"] > 0


async def test_async_create_stream_and_helper(
    aant: anthropic.AsyncAnthropic, server: LocalModelServer, calls: Calls
) -> None:
    message = await aant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:async]]"))
    stream = await aant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("s1"), stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    async with stream:
        kinds = [event.type async for event in stream]
    async with aant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:x y]]")) as helper:
        final = await helper.get_final_message()

    assert message.content[0].text == "async"  # type: ignore[union-attr]
    assert kinds[-1] == "message_stop"
    assert final.content[0].text == "x y"  # type: ignore[union-attr]
    rows = calls()
    assert len(rows) == 3
    for row, exchange in zip(rows, server.requests, strict=True):
        truth = anthropic_truth(exchange.usage or {})
        assert usage_of(row, truth) == truth
    assert rows[1]["stream_complete"] is rows[2]["stream_complete"] is True


def test_streams_closed_early_abandoned_or_broken(ant: anthropic.Anthropic, calls: Calls) -> None:
    with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[chunks:5]] one")) as s:
        next(iter(s))
    abandoned = ant.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[chunks:5]] two"), stream=True
    )
    next(abandoned)
    del abandoned
    gc.collect()
    broken = ant.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[chunks:6]] [[stream_error]]"), stream=True
    )
    with pytest.raises(httpx2.RemoteProtocolError):  # what the SDK lets through on a dropped connection
        for _ in broken:
            pass

    closed, collected, failed = calls()
    for row in (closed, collected, failed):
        assert row["stream_complete"] is False and row["usage_known"] is False
    assert failed["status"] == "error" and failed["error_type"] == "RemoteProtocolError"


def test_http_error_is_raised_unchanged_and_recorded(ant: anthropic.Anthropic, calls: Calls) -> None:
    def error() -> anthropic.APIStatusError:
        with pytest.raises(anthropic.APIStatusError) as raised:
            ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[status:529]]"))
        return raised.value

    instrumented_error = error()
    integration.uninstrument()
    plain_error = error()
    integration.instrument()

    assert type(instrumented_error) is type(plain_error) is anthropic.OverloadedError
    assert str(instrumented_error) == str(plain_error)
    (row,) = calls()
    assert row["error_type"] == "OverloadedError" and row["usage_known"] is False


def test_tool_use_loop_records_each_call(ant: anthropic.Anthropic, calls: Calls) -> None:
    messages: list[Any] = user('[[tool:lookup {"q": "x"}]]')
    first = ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=messages, tools=[TOOL])
    tool_use = first.content[-1]
    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "[[reply:done]]"}]}  # type: ignore[union-attr]
    )
    final = ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=messages, tools=[TOOL])

    assert final.content[0].text == "done"  # type: ignore[union-attr]
    assert [row["finish_reasons"] for row in calls()] == ['["tool_use"]', '["end_turn"]']


async def test_with_raw_response_sync_and_async(
    ant: anthropic.Anthropic, aant: anthropic.AsyncAnthropic, server: LocalModelServer, calls: Calls
) -> None:
    raw = ant.messages.with_raw_response.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:r]]"))
    araw = await aant.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:ar]]")
    )

    assert raw.parse().content[0].text == "r"  # type: ignore[union-attr]
    assert (await araw.parse()).content[0].text == "ar"  # type: ignore[union-attr]
    rows = calls()
    assert len(rows) == 2
    for row, exchange in zip(rows, server.requests, strict=True):
        truth = anthropic_truth(exchange.usage or {})
        assert usage_of(row, truth) == truth


def test_instrument_is_idempotent_and_uninstrument_restores(
    ant: anthropic.Anthropic, profiled: _runtime.Runtime, calls: Calls
) -> None:
    integration.uninstrument()
    names = [(Messages, "create"), (AsyncMessages, "create"), (Messages, "stream"), (AsyncMessages, "stream")]
    originals = [owner.__dict__[name] for owner, name in names] + [BaseClient.__dict__["_build_request"]]

    integration.instrument()
    integration.instrument()
    with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("once")) as s:
        s.until_done()
    assert len(calls()) == 1

    integration.uninstrument()
    assert [owner.__dict__[name] for owner, name in names] + [BaseClient.__dict__["_build_request"]] == originals
    assert Messages.create is originals[0]
    ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("not recorded"))
    assert len(calls()) == 1
    integration.instrument()


def test_results_identical_with_and_without_instrumentation(ant: anthropic.Anthropic, calls: Calls) -> None:
    def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        message = ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("same"), tools=[TOOL])
        with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("same [[chunks:3]]")) as s:
            events = [event.model_dump() for event in s]
        dump = message.model_dump()
        dump.pop("id")
        for event in events:
            if event["type"] in ("message_start", "message_stop"):
                event["message"].pop("id")
        return dump, events

    with_agentprof = run()
    integration.uninstrument()
    without = run()
    integration.instrument()

    assert with_agentprof == without
    assert len(calls()) == 2


def test_internal_failures_never_reach_the_user(
    ant: anthropic.Anthropic, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPROF_RAISE_INTERNAL_ERRORS", "0")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(integration, "canonical_usage", broken)
    monkeypatch.setattr(integration, "deferred_sync_call", broken)

    message = ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:fine]]"))
    with ant.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:also fine]]")) as s:
        text = s.get_final_text()

    assert message.content[0].text == "fine"  # type: ignore[union-attr]
    assert text == "also fine"
    (row,) = calls()  # the helper's stream went unrecorded; the plain call is kept, usage unknown
    assert row["usage_known"] is False
    counters = _safety.counters()
    assert counters["internal_errors.usage_from"] == 1  # usage is read on the exporter thread
    assert counters["internal_errors.anthropic.stream_helper"] == 1


@pytest.mark.parametrize("prompt", ["[[reply:one two three]]", '[[tool:lookup {"q": "x"}]]'])
def test_a_streamed_answer_hashes_like_the_same_answer_not_streamed(
    ant: anthropic.Anthropic, calls: Calls, prompt: str
) -> None:
    ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user(prompt), tools=[TOOL])
    with ant.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=64, messages=user(prompt), tools=[TOOL], stream=True
    ) as stream:
        for _ in stream:
            pass
    plain, streamed = calls()
    assert plain["output_hash"] is not None and plain["output_chars"] > 0
    assert (streamed["output_hash"], streamed["output_chars"]) == (plain["output_hash"], plain["output_chars"])


def test_a_client_whose_base_url_changes_is_attributed_anew(
    ant: anthropic.Anthropic, server: LocalModelServer, calls: Calls
) -> None:
    # The server a client calls is worked out once per base URL, never left stale when it changes.
    ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:before]]"))
    before = integration._clients.get(ant)
    assert integration._clients.get(ant) is before  # worked out once
    with LocalModelServer() as other:
        ant.base_url = other.anthropic_base_url
        ant.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=user("[[reply:after]]"))
        after = integration._clients.get(ant)
    assert before.server["server.port"] == server.port and after.server["server.port"] == other.port
    assert before.provider == after.provider == "anthropic"
    assert [row["status"] for row in calls()] == ["ok", "ok"]
