"""The Anthropic SDK (sync and async, create and the stream helper) against the test server."""

from __future__ import annotations

import json
import math
from typing import Any

import anthropic
import httpx2
import pytest

from agentprof.testserver import TestServer

from .helpers import CLAUDE, post, user


def test_anthropic_message_usage_matches_ground_truth(
    server: TestServer, anthropic_client: anthropic.Anthropic
) -> None:
    prompt = "Hi there [[reply:General Kenobi]] [[reasoning:10]]"
    message = anthropic_client.messages.create(model=CLAUDE, max_tokens=100, system="Be brief.", messages=user(prompt))
    assert message.type == "message" and message.role == "assistant" and message.model == CLAUDE
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "General Kenobi"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == math.ceil((len("Be brief.") + len(prompt)) / 4)
    assert message.usage.output_tokens == math.ceil(len("General Kenobi") / 4) + 10
    assert message.usage.service_tier == "standard"
    [exchange] = server.requests
    assert (exchange.api, exchange.path, exchange.model, exchange.stream) == (
        "anthropic",
        "/v1/messages",
        CLAUDE,
        False,
    )
    assert exchange.usage == message.usage.model_dump(exclude_none=True)
    assert exchange.output_text == "General Kenobi"


def test_anthropic_stream_event_sequence(server: TestServer, anthropic_client: anthropic.Anthropic) -> None:
    stream = anthropic_client.messages.create(
        model=CLAUDE, max_tokens=100, messages=user("[[reply:streamed text]] [[chunks:3]]"), stream=True
    )
    with stream:
        events = list(stream)
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK swallows the ping
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and start.message.usage.output_tokens == 1
    assert delta.type == "message_delta" and delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == math.ceil(len("streamed text") / 4)
    usage = server.requests[0].usage
    assert usage is not None
    assert usage["input_tokens"] == start.message.usage.input_tokens
    assert usage["output_tokens"] == delta.usage.output_tokens


def test_anthropic_stream_helper(server: TestServer, anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.stream(
        model=CLAUDE, max_tokens=100, messages=user("[[reply:Hello there friend]] [[chunks:3]]")
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Hello ", "there ", "friend"]
    assert final.content[0].text == "Hello there friend"  # type: ignore[union-attr]
    assert server.requests[0].usage == final.usage.model_dump(exclude_none=True)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_use(server: TestServer, anthropic_client: anthropic.Anthropic, stream: bool) -> None:
    tools: Any = [{"name": "search", "description": "Search.", "input_schema": {"type": "object"}}]
    messages = user('[[reply:Searching.]] [[tool:search {"query": "otel genai", "limit": 3}]]')
    message: anthropic.types.Message
    if stream:
        with anthropic_client.messages.stream(model=CLAUDE, max_tokens=100, messages=messages, tools=tools) as s:
            message = s.get_final_message()
    else:
        message = anthropic_client.messages.create(model=CLAUDE, max_tokens=100, messages=messages, tools=tools)
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    tool_use = message.content[1]
    assert tool_use.type == "tool_use" and tool_use.name == "search"
    assert tool_use.input == {"query": "otel genai", "limit": 3}
    assert tool_use.id.startswith("toolu_")
    assert server.requests[0].usage == message.usage.model_dump(exclude_none=True)


def test_anthropic_agent_loop_reads_directives_from_tool_results(anthropic_client: anthropic.Anthropic) -> None:
    tools: Any = [{"name": "search", "input_schema": {"type": "object"}}]
    first = anthropic_client.messages.create(model=CLAUDE, max_tokens=50, messages=user("[[tool:search]]"), tools=tools)
    tool_use = first.content[0]
    assert tool_use.type == "tool_use"
    follow_up: Any = [
        *user("[[tool:search]]"),
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "found [[reply:All done]]"}],
        },
    ]
    second = anthropic_client.messages.create(model=CLAUDE, max_tokens=50, messages=follow_up, tools=tools)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "All done"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_errors(
    server: TestServer, anthropic_client: anthropic.Anthropic, status: int, error: type[Exception], kind: str
) -> None:
    with pytest.raises(error) as caught:
        anthropic_client.messages.create(model=CLAUDE, max_tokens=10, messages=user(f"[[status:{status}]]"))
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.status_code == status
    assert caught.value.body == {"type": "error", "error": {"type": kind, "message": f"Scripted error: HTTP {status}"}}
    assert server.requests[0].status == status


def test_anthropic_missing_max_tokens_is_a_bad_request(server: TestServer) -> None:
    status, body = post(server.url + "/v1/messages", json.dumps({"model": CLAUDE, "messages": user("x")}).encode())
    assert status == 400
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }


def test_anthropic_stream_error_raises(server: TestServer, anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        with anthropic_client.messages.stream(
            model=CLAUDE, max_tokens=100, messages=user("[[chunks:8]] [[stream_error]]")
        ) as stream:
            stream.get_final_message()
    usage = server.requests[0].usage
    assert usage is not None and usage["output_tokens"] == 1  # only message_start's usage reached the client


async def test_async_anthropic_stream_helper(
    server: TestServer, async_anthropic_client: anthropic.AsyncAnthropic
) -> None:
    async with async_anthropic_client.messages.stream(
        model=CLAUDE, max_tokens=100, messages=user("[[reply:async claude]]")
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "async claude"
    assert server.requests[0].usage == final.usage.model_dump(exclude_none=True)


def test_anthropic_count_tokens(anthropic_client: anthropic.Anthropic) -> None:
    counted = anthropic_client.messages.count_tokens(model=CLAUDE, messages=user("12345678"))
    assert counted.input_tokens == 2
