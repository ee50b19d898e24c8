"""The OpenAI integration, through the real SDK over real HTTP to the local model server."""

from __future__ import annotations

import gc
from typing import Any

import openai
import pytest
from openai._base_client import BaseClient
from openai.resources.chat.completions import AsyncCompletions, Completions

from agentprof import _runtime, _safety
from agentprof.integrations import openai as integration
from agentprof.testserver import LocalModelServer
from tests.integrations.conftest import Calls
from tests.integrations.helpers import OPENAI_MODEL, openai_truth, usage_of, user

INCLUDE_USAGE = {"include_usage": True}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def test_plain_call_is_recorded_with_the_servers_usage(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    response = oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[reply:hello there]] [[reasoning:7]]"), temperature=0.5, max_tokens=50
    )

    assert response.choices[0].message.content == "hello there"
    (row,) = calls()
    truth = openai_truth(server.requests[-1].usage or {})
    assert truth["reasoning_tokens"] == 7
    assert usage_of(row, truth) == truth
    assert row["provider"] == "openai"
    assert row["request_model"] == row["response_model"] == OPENAI_MODEL
    assert row["response_id"] == response.id
    assert row["finish_reasons"] == '["stop"]'
    assert row["usage_known"] is True and row["stream"] is False
    assert row["server_address"] == "127.0.0.1"
    assert row["temperature"] == 0.5
    assert row["attempts"] == 1
    assert row["request_fingerprint"]  # the body reached the exporter through the request hook
    assert row["output_chars"] == len("hello there")


def test_cached_prompt_tokens_are_part_of_input_not_added(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    long_prompt = [{"role": "system", "content": "Rules of the house. " * 400}, *user("question")]
    for _ in range(2):
        oai.chat.completions.create(model=OPENAI_MODEL, messages=long_prompt)

    _, second = calls()
    usage = server.requests[-1].usage or {}
    assert usage["prompt_tokens_details"]["cached_tokens"] > 0
    assert second["input_tokens"] == usage["prompt_tokens"]
    assert second["cache_read_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]


def test_stream_read_to_the_end_records_usage_and_ttft(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=user("[[reply:one two three]] [[chunks:3]]"),
        stream=True,
        stream_options=INCLUDE_USAGE,
    )
    assert isinstance(stream, openai.Stream)

    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert chunks[-1].usage is not None
    (row,) = calls()
    truth = openai_truth(server.requests[-1].usage or {})
    assert usage_of(row, truth) == truth
    assert row["stream"] is True and row["stream_complete"] is True and row["usage_known"] is True
    assert row["ttft_ms"] > 0
    assert row["response_id"] == chunks[0].id
    assert row["finish_reasons"] == '["stop"]'
    assert row["output_chars"] == len("one two three")


def test_stream_without_include_usage_is_complete_but_unpriced(oai: openai.OpenAI, calls: Calls) -> None:
    with oai.chat.completions.create(model=OPENAI_MODEL, messages=user("hi"), stream=True) as stream:
        for _ in stream:
            pass

    (row,) = calls()
    assert row["stream_complete"] is True
    assert row["usage_known"] is False
    assert row.get("cost_usd") is None


def test_stream_closed_early_is_incomplete_and_unpriced(oai: openai.OpenAI, calls: Calls) -> None:
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[chunks:5]]"), stream=True, stream_options=INCLUDE_USAGE
    )
    next(stream)
    stream.close()

    with oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[chunks:5]] again"), stream=True, stream_options=INCLUDE_USAGE
    ) as second:
        next(second)

    rows = calls()
    assert len(rows) == 2
    for row in rows:
        assert row["stream_complete"] is False
        assert row["usage_known"] is False
        assert row.get("input_tokens") is None
        assert row.get("cost_usd") is None


def test_stream_error_midway_propagates_unchanged(oai: openai.OpenAI, calls: Calls) -> None:
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[chunks:6]] [[stream_error]]"), stream=True, stream_options=INCLUDE_USAGE
    )
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as raised:  # what the SDK raises on a dropped connection
        for chunk in stream:
            seen.append(chunk)

    assert seen, "the stream broke only after some chunks"
    assert type(raised.value) is openai.APIConnectionError
    (row,) = calls()
    assert row["status"] == "error"
    assert row.get("error_type") == type(raised.value).__name__
    assert row["stream_complete"] is False and row["usage_known"] is False


def test_abandoned_stream_is_ended_when_collected(oai: openai.OpenAI, calls: Calls) -> None:
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[chunks:5]]"), stream=True, stream_options=INCLUDE_USAGE
    )
    next(stream)
    del stream
    gc.collect()

    (row,) = calls()
    assert row["stream_complete"] is False
    assert row["usage_known"] is False


def test_a_for_loop_left_early_ends_the_span_when_the_stream_is_dropped(oai: openai.OpenAI, calls: Calls) -> None:
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[chunks:5]]"), stream=True, stream_options=INCLUDE_USAGE
    )
    collecting = gc.isenabled()
    gc.disable()  # freed by reference counting: the loop's iterator must not keep the stream alive
    try:
        for _ in stream:
            break
        del stream
        (row,) = calls()
    finally:
        if collecting:
            gc.enable()
    assert row["stream_complete"] is False and row["usage_known"] is False


def test_next_and_a_for_loop_can_share_a_stream(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=user("[[reply:one two three]] [[chunks:4]]"),
        stream=True,
        stream_options=INCLUDE_USAGE,
    )
    assert iter(stream) is not stream and isinstance(stream, openai.Stream)
    chunks = [next(stream)]
    chunks += list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "one two three"
    assert chunks[-1].usage is not None  # the usage chunk came through, last
    (row,) = calls()
    truth = openai_truth(server.requests[0].usage or {})
    assert usage_of(row, truth) == truth
    assert row["stream_complete"] is True and row["ttft_ms"] > 0


async def test_async_plain_and_stream(aoai: openai.AsyncOpenAI, server: LocalModelServer, calls: Calls) -> None:
    response = await aoai.chat.completions.create(model=OPENAI_MODEL, messages=user("[[reply:async hi]]"))
    stream = await aoai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[reply:async stream]]"), stream=True, stream_options=INCLUDE_USAGE
    )
    assert isinstance(stream, openai.AsyncStream)
    async with stream:
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert response.choices[0].message.content == "async hi"
    assert text == "async stream"
    plain, streamed = calls()
    for row, exchange in zip((plain, streamed), server.requests, strict=True):
        truth = openai_truth(exchange.usage or {})
        assert usage_of(row, truth) == truth
        assert row["usage_known"] is True
    assert streamed["stream_complete"] is True and streamed["ttft_ms"] > 0


async def test_async_stream_closed_early(aoai: openai.AsyncOpenAI, calls: Calls) -> None:
    stream = await aoai.chat.completions.create(
        model=OPENAI_MODEL, messages=user("[[chunks:5]]"), stream=True, stream_options=INCLUDE_USAGE
    )
    await stream.__anext__()
    await stream.close()

    (row,) = calls()
    assert row["stream_complete"] is False and row["usage_known"] is False


def _error_of(client: openai.OpenAI) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=OPENAI_MODEL, messages=user("[[status:429]]"))
    return raised.value


def test_http_error_is_raised_unchanged_and_recorded(oai: openai.OpenAI, calls: Calls) -> None:
    instrumented_error = _error_of(oai)
    integration.uninstrument()
    plain_error = _error_of(oai)
    integration.instrument()

    assert type(instrumented_error) is type(plain_error) is openai.RateLimitError
    assert str(instrumented_error) == str(plain_error)
    (row,) = calls()
    assert row["status"] == "error"
    assert row.get("error_type") == "RateLimitError"
    assert row["usage_known"] is False


def test_retries_are_counted_as_attempts(server: LocalModelServer, calls: Calls) -> None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=2)
    try:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=OPENAI_MODEL, messages=user("[[status:500]] [[retry_after_ms:1]]"))
    finally:
        client.close()

    (row,) = calls()
    assert len(server.requests) == 3
    assert row["attempts"] == 3


def test_tool_call_loop_records_each_call(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    messages: list[Any] = user('[[tool:weather {"city": "Paris"}]]')
    first = oai.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=[WEATHER_TOOL])
    tool_call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": "sunny [[reply:It is sunny.]]"})
    final = oai.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=[WEATHER_TOOL])

    assert final.choices[0].message.content == "It is sunny."
    rows = calls()
    assert [row["finish_reasons"] for row in rows] == ['["tool_calls"]', '["stop"]']
    assert rows[0]["tool_count"] == 1
    assert rows[0]["output_chars"] > len("weather")  # tool name and arguments are the output
    for row, exchange in zip(rows, server.requests, strict=True):
        truth = openai_truth(exchange.usage or {})
        assert usage_of(row, truth) == truth


def test_with_raw_response_is_recorded_once(oai: openai.OpenAI, server: LocalModelServer, calls: Calls) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=user("[[reply:raw]]"))

    parsed = raw.parse()
    assert parsed.choices[0].message.content == "raw"
    assert raw.parse() is parsed
    (row,) = calls()
    truth = openai_truth(server.requests[-1].usage or {})
    assert usage_of(row, truth) == truth


def test_with_streaming_response_works_and_is_recorded_unpriced(oai: openai.OpenAI, calls: Calls) -> None:
    with oai.chat.completions.with_streaming_response.create(
        model=OPENAI_MODEL, messages=user("[[reply:streamed raw]]")
    ) as response:
        parsed = response.parse()

    assert parsed.choices[0].message.content == "streamed raw"
    (row,) = calls()  # the body was unread when create returned: recorded, usage unknown (never $0)
    assert row["usage_known"] is False and row["status"] == "ok"


def test_stream_helper_and_parse_are_recorded_once(oai: openai.OpenAI, calls: Calls) -> None:
    with oai.chat.completions.stream(
        model=OPENAI_MODEL, messages=user("[[reply:helper]]"), stream_options=INCLUDE_USAGE
    ) as stream:
        final = stream.get_final_completion()
    parsed = oai.chat.completions.parse(model=OPENAI_MODEL, messages=user("[[reply:parsed]]"))

    assert final.choices[0].message.content == "helper"
    assert parsed.choices[0].message.content == "parsed"
    streamed, plain = calls()
    assert streamed["stream_complete"] is True and streamed["usage_known"] is True
    assert plain["stream"] is False and plain["usage_known"] is True


def test_instrument_is_idempotent_and_uninstrument_restores(
    oai: openai.OpenAI, server: LocalModelServer, profiled: _runtime.Runtime, calls: Calls
) -> None:
    integration.uninstrument()
    originals = (Completions.create, AsyncCompletions.create, BaseClient._build_request)
    assert not integration.is_instrumented()

    integration.instrument()
    integration.instrument()
    assert integration.is_instrumented()
    assert Completions.create.__wrapped__ is originals[0]
    oai.chat.completions.create(model=OPENAI_MODEL, messages=user("once"))
    assert len(calls()) == 1

    integration.uninstrument()
    assert (Completions.create, AsyncCompletions.create, BaseClient._build_request) == originals
    assert Completions.create is originals[0]
    oai.chat.completions.create(model=OPENAI_MODEL, messages=user("not recorded"))
    assert len(calls()) == 1
    assert len(server.requests) == 2
    integration.instrument()


def _comparable(dump: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dump.items() if key not in ("id", "created")}


def test_results_identical_with_and_without_instrumentation(oai: openai.OpenAI, calls: Calls) -> None:
    def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        plain = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("same [[reasoning:3]]"), seed=1)
        stream = oai.chat.completions.create(
            model=OPENAI_MODEL, messages=user("same [[chunks:4]]"), stream=True, stream_options=INCLUDE_USAGE
        )
        return _comparable(plain.model_dump()), [_comparable(chunk.model_dump()) for chunk in stream]

    with_agentprof = run()
    integration.uninstrument()
    without = run()
    integration.instrument()

    assert with_agentprof == without
    assert len(calls()) == 2


def test_internal_failures_never_reach_the_user(
    oai: openai.OpenAI, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPROF_RAISE_INTERNAL_ERRORS", "0")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(integration, "canonical_usage", broken)
    monkeypatch.setattr(integration.ChatStreamState, "record_chunk", broken)
    monkeypatch.setattr("agentprof.integrations._patching.capture_request", broken)

    response = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("[[reply:still fine]]"))
    stream = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("[[reply:streamed fine]]"), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert response.choices[0].message.content == "still fine"
    assert text == "streamed fine"
    counters = _safety.counters()
    assert counters["internal_errors"] > 0
    assert counters["internal_errors.capture_request"] == 2
    assert counters["internal_errors.stream.chunk"] > 0
    plain, streamed = calls()  # both still recorded, with what could be read
    assert plain["usage_known"] is False
    assert streamed["stream_complete"] is True


@pytest.mark.parametrize("prompt", ["[[reply:one two three]]", '[[tool:weather {"city": "Paris"}]]'])
def test_a_streamed_answer_hashes_like_the_same_answer_not_streamed(
    oai: openai.OpenAI, calls: Calls, prompt: str
) -> None:
    oai.chat.completions.create(model=OPENAI_MODEL, messages=user(prompt), tools=[WEATHER_TOOL])
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=user(prompt),
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    plain, streamed = calls()
    assert plain["output_hash"] is not None and plain["output_chars"] > 0
    assert (streamed["output_hash"], streamed["output_chars"]) == (plain["output_hash"], plain["output_chars"])


def test_stream_helper_left_early_ends_its_span_at_once(oai: openai.OpenAI, calls: Calls) -> None:
    gc.disable()  # the helper holds itself in a cycle: only our close hook may end the span here
    try:
        with oai.chat.completions.stream(
            model=OPENAI_MODEL, messages=user("[[chunks:8]][[reply:a b c d e f g h]]"), stream_options=INCLUDE_USAGE
        ) as stream:
            for _ in stream:
                break
        [row] = calls()
    finally:
        gc.enable()
    assert row["stream_complete"] is False and row["usage_known"] is False and row["cost_usd"] is None


def test_a_client_whose_base_url_changes_is_attributed_anew(
    oai: openai.OpenAI, server: LocalModelServer, calls: Calls
) -> None:
    # Who serves a client is worked out once per base URL, never left stale when it changes.
    oai.chat.completions.create(model=OPENAI_MODEL, messages=user("[[reply:before]]"))
    oai.base_url = f"{server.openai_base_url.rstrip('/')}/openai/deployments/my-deployment"
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model=OPENAI_MODEL, messages=user("[[reply:after]]"))
    before, after = calls()
    assert (before["provider"], before["status"]) == ("openai", "ok")
    assert (after["provider"], after["error_type"]) == ("azure.ai.openai", "NotFoundError")


def test_one_choice_several_choices_and_tool_calls_hash_their_text(
    oai: openai.OpenAI, profiled: _runtime.Runtime, calls: Calls
) -> None:
    from agentprof import _calls
    from agentprof._fingerprint import output_fingerprint

    plain = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("[[reply:one two]]"))
    tool = oai.chat.completions.create(
        model=OPENAI_MODEL, messages=user('[[tool:weather {"city": "Paris"}]]'), tools=[WEATHER_TOOL]
    )
    first = plain.choices[0]
    second = first.model_copy(update={"index": 1, "message": first.message.model_copy(update={"content": "three"})})
    several = plain.model_copy(update={"choices": [first, second]})
    integration.record_completion(_calls.start_call("openai", OPENAI_MODEL), several)  # type: ignore[arg-type]
    rows = calls()
    texts = [integration.completion_text(response) for response in (plain, tool, several)]
    assert [(row["output_hash"], row["output_chars"]) for row in rows] == [output_fingerprint(t) for t in texts]
    assert texts[0] == "one two" and "[tool:weather]" in texts[1] and texts[2] == "one two\nthree"
    assert (rows[0]["finish_reasons"], rows[2]["finish_reasons"]) == ('["stop"]', '["stop", "stop"]')
