"""The OpenAI Responses API integration, through the real SDK over real HTTP to the local model server."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.lib.streaming.responses import AsyncResponseStream, ResponseStream
from openai.resources.responses import AsyncResponses, Responses
from openai.types.responses import ResponseFailedEvent
from pydantic import BaseModel

from agentprof import _runtime, _safety
from agentprof.integrations import openai as integration
from agentprof.integrations import openai_responses
from agentprof.testserver import LocalModelServer, ScriptedReply
from tests.integrations.conftest import Calls
from tests.integrations.helpers import OPENAI_MODEL, usage_of

WEATHER: Any = [
    {
        "type": "function",
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
TOOL_PROMPT = '[[tool:weather {"city": "Paris"}]]'


def truth(usage: dict[str, Any] | None) -> dict[str, int]:
    """Canonical numbers for a Responses usage dict, computed independently of the integration."""
    assert usage is not None
    return {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "cache_read_tokens": usage["input_tokens_details"]["cached_tokens"],
        "cache_write_tokens": usage["input_tokens_details"]["cache_write_tokens"],
        "reasoning_tokens": usage["output_tokens_details"]["reasoning_tokens"],
    }


def assert_unpriced_incomplete(row: dict[str, Any]) -> None:
    assert row["stream"] is True and row["stream_complete"] is False
    assert row["usage_known"] is False
    assert row.get("input_tokens") is None and row.get("output_tokens") is None
    assert row.get("cost_usd") is None


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Keep the collector off, so a span that ends did not end through garbage collection."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


# --- non-streamed ---------------------------------------------------------------------------


def test_plain_create_is_recorded_with_the_servers_usage(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    response = oai.responses.create(
        model=OPENAI_MODEL,
        instructions="Be brief.",
        input="[[reply:hello there]] [[reasoning:7]]",
        temperature=0.5,
        max_output_tokens=50,
    )

    assert response.output_text == "hello there"
    (row,) = calls()
    expected = truth(server.requests[-1].usage)
    assert expected["reasoning_tokens"] == 7 and expected["output_tokens"] == 7 + 3
    assert usage_of(row, expected) == expected
    assert row["provider"] == "openai" and row["operation"] == "chat"
    assert row["request_model"] == row["response_model"] == OPENAI_MODEL
    assert row["response_id"] == response.id
    assert row["finish_reasons"] == '["completed"]'
    assert row["usage_known"] is True and row["stream"] is False and row["status"] == "ok"
    assert row["server_address"] == "127.0.0.1"
    assert row["temperature"] == 0.5
    assert row["attempts"] == 1
    assert row["cost_usd"] is not None and float(row["cost_usd"]) > 0
    assert row["request_fingerprint"]  # the body reached the exporter through the request hook
    assert [p["role"] for p in json.loads(row["prefix_fingerprints"])] == ["system", "user"]
    assert row["output_chars"] == len("hello there")  # the reasoning item is not the answer


def test_cached_input_tokens_are_part_of_input_not_added(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    rules = "Rules of the house. " * 400
    for question in ("first question", "second question"):
        oai.responses.create(model=OPENAI_MODEL, instructions=rules, input=question)

    _, second = calls()
    usage = server.requests[-1].usage or {}
    assert usage["input_tokens_details"]["cached_tokens"] > 0
    assert second["input_tokens"] == usage["input_tokens"]
    assert second["cache_read_tokens"] == usage["input_tokens_details"]["cached_tokens"]


def test_tool_call_loop_records_each_call(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    items: list[Any] = [{"role": "user", "content": TOOL_PROMPT}]
    first = oai.responses.create(model=OPENAI_MODEL, input=items, tools=WEATHER)
    call = first.output[0]
    assert call.type == "function_call"
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny [[reply:It is sunny.]]"})
    final = oai.responses.create(model=OPENAI_MODEL, input=items, tools=WEATHER)

    assert final.output_text == "It is sunny."
    rows = calls()
    assert [row["finish_reasons"] for row in rows] == ['["tool_calls"]', '["completed"]']
    assert rows[0]["tool_count"] == 1
    assert rows[0]["output_chars"] == len('\n[tool:weather] {"city": "Paris"}')
    for row, exchange in zip(rows, server.requests, strict=True):
        assert usage_of(row, truth(exchange.usage)) == truth(exchange.usage)
    first_prefixes, second_prefixes = (json.loads(row["prefix_fingerprints"]) for row in rows)
    assert second_prefixes[: len(first_prefixes)] == first_prefixes  # the loop extends the cached prefix
    assert [p["role"] for p in second_prefixes] == ["tools", "user", "function_call", "function_call_output"]


def test_incomplete_response_records_the_incomplete_reason_and_its_usage(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    long_reply = "[[reply:" + "x" * 100 + "]]"
    plain = oai.responses.create(model=OPENAI_MODEL, input=long_reply, max_output_tokens=5)
    events = list(oai.responses.create(model=OPENAI_MODEL, input=long_reply, max_output_tokens=5, stream=True))

    assert plain.status == "incomplete" and events[-1].type == "response.incomplete"
    rows = calls()
    for row, exchange in zip(rows, server.requests, strict=True):
        assert row["finish_reasons"] == '["max_output_tokens"]'
        assert row["usage_known"] is True
        assert usage_of(row, truth(exchange.usage)) == truth(exchange.usage)
    assert rows[1]["stream_complete"] is True  # read to the end: incomplete is the model's, not the reader's


def test_parse_is_recorded_once(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    class City(BaseModel):
        name: str

    parsed = oai.responses.parse(model=OPENAI_MODEL, input='[[reply:{"name": "Paris"}]]', text_format=City)

    assert parsed.output_parsed == City(name="Paris")
    (row,) = calls()
    assert len(server.requests) == 1
    assert usage_of(row, truth(server.requests[-1].usage)) == truth(server.requests[-1].usage)
    assert row["response_format"] == "json_schema"
    assert row["response_id"] == parsed.id and row["stream"] is False


def test_with_raw_response_is_recorded_once(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    raw = oai.responses.with_raw_response.create(model=OPENAI_MODEL, input="[[reply:raw]]")

    parsed = raw.parse()
    assert parsed.output_text == "raw" and raw.parse() is parsed
    (row,) = calls()
    assert usage_of(row, truth(server.requests[-1].usage)) == truth(server.requests[-1].usage)


def test_with_streaming_response_works_and_is_recorded_unpriced(oai: openai.OpenAI, calls: Calls) -> None:
    with oai.responses.with_streaming_response.create(model=OPENAI_MODEL, input="[[reply:streamed raw]]") as response:
        parsed = response.parse()

    assert parsed.output_text == "streamed raw"
    (row,) = calls()  # the body was unread when create returned: recorded, usage unknown (never $0)
    assert row["usage_known"] is False and row["status"] == "ok"


def _rate_limited(client: openai.OpenAI) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as raised:
        client.responses.create(model=OPENAI_MODEL, input="[[status:429]]")
    return raised.value


def test_http_error_is_raised_unchanged_and_recorded(oai: openai.OpenAI, calls: Calls) -> None:
    instrumented_error = _rate_limited(oai)
    integration.uninstrument()
    plain_error = _rate_limited(oai)
    integration.instrument()

    assert type(instrumented_error) is type(plain_error) is openai.RateLimitError
    assert str(instrumented_error) == str(plain_error)
    assert instrumented_error.body == plain_error.body
    (row,) = calls()
    assert row["status"] == "error" and row.get("error_type") == "RateLimitError"
    assert row["usage_known"] is False and row.get("cost_usd") is None


def test_retries_are_counted_as_attempts(server: LocalModelServer, calls: Calls) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=2) as client:
        server.enqueue(*[ScriptedReply(status=500, retry_after_ms=1)] * 2)
        response = client.responses.create(model=OPENAI_MODEL, input="[[reply:third time]]")

    assert response.output_text == "third time"
    (row,) = calls()
    assert len(server.requests) == 3
    assert row["attempts"] == 3 and row["status"] == "ok"
    assert usage_of(row, truth(server.requests[-1].usage)) == truth(server.requests[-1].usage)


# --- create(stream=True) ----------------------------------------------------------------------


def test_stream_read_to_the_end_records_usage_and_ttft(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    stream = oai.responses.create(model=OPENAI_MODEL, input="[[reply:one two three]] [[chunks:3]]", stream=True)
    assert isinstance(stream, openai.Stream)

    events = list(stream)

    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three"
    assert events[-1].type == "response.completed"
    (row,) = calls()
    assert usage_of(row, truth(server.requests[-1].usage)) == truth(server.requests[-1].usage)
    assert row["stream"] is True and row["stream_complete"] is True and row["usage_known"] is True
    assert row["ttft_ms"] > 0
    assert row["response_id"] == events[0].response.id  # type: ignore[union-attr]
    assert row["response_model"] == OPENAI_MODEL
    assert row["finish_reasons"] == '["completed"]'
    assert row["output_chars"] == len("one two three")
    assert row["cost_usd"] is not None


@pytest.mark.parametrize(
    "prompt", ["[[reply:one two three]]", TOOL_PROMPT, f"[[reply:Checking.]] {TOOL_PROMPT} [[reasoning:5]]"]
)
def test_a_streamed_answer_hashes_like_the_same_answer_not_streamed(
    oai: openai.OpenAI, calls: Calls, prompt: str
) -> None:
    oai.responses.create(model=OPENAI_MODEL, input=prompt, tools=WEATHER)
    for _ in oai.responses.create(model=OPENAI_MODEL, input=prompt, tools=WEATHER, stream=True):
        pass
    with oai.responses.stream(model=OPENAI_MODEL, input=prompt, tools=WEATHER) as helper:
        helper.until_done()

    plain, streamed, helped = calls()
    assert plain["output_hash"] is not None and plain["output_chars"] > 0
    for row in (streamed, helped):
        assert (row["output_hash"], row["output_chars"]) == (plain["output_hash"], plain["output_chars"])
        assert row["finish_reasons"] == plain["finish_reasons"]


def test_stream_closed_early_is_incomplete_and_unpriced(oai: openai.OpenAI, calls: Calls, no_gc: None) -> None:
    stream = oai.responses.create(model=OPENAI_MODEL, input="[[chunks:5]]", stream=True)
    next(stream)
    stream.close()
    with oai.responses.create(model=OPENAI_MODEL, input="[[chunks:5]] again", stream=True) as second:
        next(second)

    rows = calls()
    assert len(rows) == 2
    for row in rows:
        assert_unpriced_incomplete(row)
        assert row["ttft_ms"] > 0


def test_stream_error_midway_propagates_unchanged(oai: openai.OpenAI, calls: Calls) -> None:
    def broken_stream() -> tuple[BaseException, list[Any]]:
        stream = oai.responses.create(
            model=OPENAI_MODEL, input="[[reply:abcdefghijkl]] [[chunks:6]] [[stream_error]]", stream=True
        )
        seen: list[Any] = []
        with pytest.raises(openai.APIConnectionError) as raised:
            for event in stream:
                seen.append(event)
        return raised.value, seen

    instrumented_error, seen = broken_stream()
    integration.uninstrument()
    plain_error, plain_seen = broken_stream()
    integration.instrument()

    assert seen, "the stream broke only after some events"
    assert [e.type for e in seen] == [e.type for e in plain_seen]
    assert type(instrumented_error) is type(plain_error) is openai.APIConnectionError
    assert type(instrumented_error.__cause__) is type(plain_error.__cause__)
    (row,) = calls()
    assert row["status"] == "error" and row.get("error_type") == "APIConnectionError"
    assert row["stream_complete"] is False and row["usage_known"] is False and row.get("cost_usd") is None


def test_abandoned_stream_is_ended_when_collected(oai: openai.OpenAI, calls: Calls) -> None:
    stream = oai.responses.create(model=OPENAI_MODEL, input="[[chunks:5]]", stream=True)
    next(stream)
    del stream
    gc.collect()

    (row,) = calls()
    assert_unpriced_incomplete(row)


# --- the .stream() helper ---------------------------------------------------------------------


def test_stream_helper_is_recorded_exactly_once(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    with oai.responses.stream(model=OPENAI_MODEL, input=f"[[reply:helper]] {TOOL_PROMPT}", tools=WEATHER) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()

    assert text == final.output_text == "helper"
    (row,) = calls()
    assert len(server.requests) == 1
    assert usage_of(row, truth(server.requests[-1].usage)) == truth(server.requests[-1].usage)
    assert row["stream"] is True and row["stream_complete"] is True and row["ttft_ms"] > 0
    assert row["response_id"] == final.id and row["finish_reasons"] == '["tool_calls"]'


def test_stream_helper_left_early_ends_its_span_at_once(oai: openai.OpenAI, calls: Calls, no_gc: None) -> None:
    with oai.responses.stream(model=OPENAI_MODEL, input="[[chunks:5]]") as stream:
        next(iter(stream))

    (row,) = calls()  # ended by the helper's close, not by a garbage collection
    assert_unpriced_incomplete(row)


def test_stream_helper_closed_after_the_last_event_is_complete(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls, no_gc: None
) -> None:
    with oai.responses.stream(model=OPENAI_MODEL, input="[[reply:all of it]]") as stream:
        for event in stream:
            if event.type == "response.completed":
                break  # the terminal event was seen: nothing was lost by leaving now

    (row,) = calls()
    assert row["stream_complete"] is True and row["usage_known"] is True
    assert usage_of(row, truth(server.requests[-1].usage)) == truth(server.requests[-1].usage)


# --- async --------------------------------------------------------------------------------------


async def test_async_create_stream_and_helper(aoai: openai.AsyncOpenAI, server: LocalModelServer, calls: Calls) -> None:
    response = await aoai.responses.create(model=OPENAI_MODEL, input="[[reply:async hi]]")
    stream = await aoai.responses.create(model=OPENAI_MODEL, input="[[reply:async stream]]", stream=True)
    assert isinstance(stream, openai.AsyncStream)
    async with stream:
        text = "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])
    async with aoai.responses.stream(model=OPENAI_MODEL, input="[[reply:async helper]]") as helper:
        final = await helper.get_final_response()
    parsed = await aoai.responses.parse(model=OPENAI_MODEL, input="[[reply:async parse]]")

    assert (response.output_text, text, final.output_text) == ("async hi", "async stream", "async helper")
    assert parsed.output_text == "async parse"
    rows = calls()
    assert len(rows) == len(server.requests) == 4
    for row, exchange in zip(rows, server.requests, strict=True):
        assert usage_of(row, truth(exchange.usage)) == truth(exchange.usage)
        assert row["usage_known"] is True and row["finish_reasons"] == '["completed"]'
    assert [row["stream"] for row in rows] == [False, True, True, False]
    for row in rows[1:3]:
        assert row["stream_complete"] is True and row["ttft_ms"] > 0


async def test_async_streams_left_early(aoai: openai.AsyncOpenAI, calls: Calls, no_gc: None) -> None:
    stream = await aoai.responses.create(model=OPENAI_MODEL, input="[[chunks:5]]", stream=True)
    await stream.__anext__()
    await stream.close()
    async with aoai.responses.stream(model=OPENAI_MODEL, input="[[chunks:5]] helper") as helper:
        await helper.__anext__()

    rows = calls()
    assert len(rows) == 2
    for row in rows:
        assert_unpriced_incomplete(row)


# --- terminal events the server cannot script ---------------------------------------------------


def test_a_failed_response_event_ends_the_stream_with_its_usage(oai: openai.OpenAI) -> None:
    """``response.failed`` carries a response (with usage when tokens were billed): it is the end."""
    events = list(oai.responses.create(model=OPENAI_MODEL, input="[[reply:partial]] [[reasoning:4]]", stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    failed = ResponseFailedEvent(
        type="response.failed",
        sequence_number=completed.sequence_number,
        response=completed.response.model_copy(update={"status": "failed"}),
    )
    state = openai_responses.ResponseEventsState()

    for event in [*events[:-1], failed]:
        state.record_chunk(event)

    assert state.saw_end and state.reason == "failed"
    assert openai_responses.canonical_usage(state.usage) == openai_responses.canonical_usage(completed.response.usage)
    assert openai_responses.streamed_text(state.items) == "partial"


# --- transparency and safety ----------------------------------------------------------------------


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        skip = {"id", "item_id", "call_id", "created_at", "completed_at"}
        return {key: _without_ids(item) for key, item in value.items() if key not in skip}
    if isinstance(value, list):
        return [_without_ids(item) for item in value]
    return value


def test_results_identical_with_and_without_instrumentation(oai: openai.OpenAI, calls: Calls) -> None:
    prompt = f"same [[reply:Checking.]] {TOOL_PROMPT} [[reasoning:3]] [[chunks:4]]"

    def run() -> tuple[Any, ...]:
        plain = oai.responses.create(model=OPENAI_MODEL, input=prompt, tools=WEATHER)
        stream = oai.responses.create(model=OPENAI_MODEL, input=prompt, tools=WEATHER, stream=True)
        events = [(type(event), _without_ids(event.model_dump(warnings=False))) for event in stream]
        with oai.responses.stream(model=OPENAI_MODEL, input=prompt, tools=WEATHER) as helper:
            helper_events = [(type(event), _without_ids(event.model_dump(warnings=False))) for event in helper]
            final = helper.get_final_response()
        return (
            _without_ids(plain.model_dump(warnings=False)),
            events,
            helper_events,
            _without_ids(final.model_dump(warnings=False)),
        )

    with_agentprof = run()
    integration.uninstrument()
    without = run()
    integration.instrument()

    assert with_agentprof == without
    assert len(calls()) == 3


def test_internal_failures_never_reach_the_user(
    oai: openai.OpenAI, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPROF_RAISE_INTERNAL_ERRORS", "0")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(openai_responses, "canonical_usage", broken)
    monkeypatch.setattr(openai_responses.ResponseEventsState, "record_chunk", broken)
    monkeypatch.setattr("agentprof.integrations._patching.capture_request", broken)

    response = oai.responses.create(model=OPENAI_MODEL, input="[[reply:still fine]]")
    stream = oai.responses.create(model=OPENAI_MODEL, input="[[reply:streamed fine]]", stream=True)
    text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    with oai.responses.stream(model=OPENAI_MODEL, input="[[reply:helper fine]]") as helper:
        final = helper.get_final_response()

    assert (response.output_text, text, final.output_text) == ("still fine", "streamed fine", "helper fine")
    counters = _safety.counters()
    assert counters["internal_errors.capture_request"] == 3
    assert counters["internal_errors.stream.chunk"] > 0
    assert counters["internal_errors.on_result"] == 1
    plain, streamed, helped = calls()  # all still recorded, with what could be read
    assert plain["usage_known"] is False and plain["status"] == "ok"
    assert streamed["stream_complete"] is True and helped["stream_complete"] is True


def test_instrument_is_idempotent_and_uninstrument_restores(
    oai: openai.OpenAI, server: LocalModelServer, profiled: _runtime.Runtime, calls: Calls
) -> None:
    integration.uninstrument()
    targets = [
        (Responses, "create"),
        (AsyncResponses, "create"),
        (Responses, "parse"),
        (AsyncResponses, "parse"),
        (ResponseStream, "close"),
        (AsyncResponseStream, "close"),
    ]
    originals = [owner.__dict__[name] for owner, name in targets]
    assert not openai_responses.is_instrumented()

    integration.instrument()
    integration.instrument()
    assert openai_responses.is_instrumented()
    assert Responses.create.__wrapped__ is originals[0]
    oai.responses.create(model=OPENAI_MODEL, input="once")
    assert len(calls()) == 1

    integration.uninstrument()
    assert [owner.__dict__[name] for owner, name in targets] == originals
    assert not openai_responses.is_instrumented()
    oai.responses.create(model=OPENAI_MODEL, input="not recorded")
    assert len(calls()) == 1
    assert len(server.requests) == 2
    integration.instrument()
