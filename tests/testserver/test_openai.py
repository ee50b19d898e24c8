"""The OpenAI SDK (sync and async, plain and streaming) against the test server."""

from __future__ import annotations

import json
import math
from typing import Any

import openai
import pytest

from agentprof.testserver import RecordedExchange, ScriptedReply, TestServer

from .helpers import GPT, user


def test_openai_completion_usage_matches_ground_truth(server: TestServer, openai_client: openai.OpenAI) -> None:
    prompt = "Say hello [[reply:Hello world!]]"
    completion = openai_client.chat.completions.create(model=GPT, messages=user(prompt))
    assert completion.object == "chat.completion"
    assert completion.model == GPT
    assert completion.choices[0].message.content == "Hello world!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == math.ceil(len(prompt) / 4)
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 3
    [exchange] = server.requests
    assert exchange == RecordedExchange(
        api="openai",
        path="/v1/chat/completions",
        model=GPT,
        stream=False,
        status=200,
        usage=completion.usage.model_dump(exclude_none=True),
        request_body={"model": GPT, "messages": user(prompt)},
        output_text="Hello world!",
        time=1000.0,
    )
    assert exchange.usage is not None
    assert exchange.usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}


def test_default_reply_is_deterministic_and_context_grows_tokens(openai_client: openai.OpenAI) -> None:
    first = openai_client.chat.completions.create(model=GPT, messages=user("What is 2 + 2?"))
    again = openai_client.chat.completions.create(model=GPT, messages=user("What is 2 + 2?"))
    other = openai_client.chat.completions.create(model=GPT, messages=user("What is 3 + 3?"))
    longer = openai_client.chat.completions.create(
        model=GPT, messages=[*user("What is 2 + 2?"), {"role": "assistant", "content": "4"}, *user("And 3 + 3?")]
    )
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert str(first.choices[0].message.content).startswith("Acknowledged: ")
    assert first.usage is not None and longer.usage is not None
    assert longer.usage.prompt_tokens > first.usage.prompt_tokens


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_stream(server: TestServer, openai_client: openai.OpenAI, include_usage: bool) -> None:
    stream = openai_client.chat.completions.create(
        model=GPT,
        messages=user("[[reply:one two three four five]] [[chunks:4]]"),
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    with stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 4
    assert "".join(pieces) == "one two three four five"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    [exchange] = server.requests
    assert exchange.stream and exchange.output_text == "one two three four five"
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert exchange.usage == chunks[-1].usage.model_dump(exclude_none=True)
        assert exchange.usage["completion_tokens"] == math.ceil(len("one two three four five") / 4)
    else:
        assert all(c.usage is None for c in chunks)
        assert exchange.usage is None


def test_openai_tool_call(server: TestServer, openai_client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = openai_client.chat.completions.create(
        model=GPT, messages=user('[[tool:get_weather {"city": "Paris", "days": [[1]]}]]'), tools=tools
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": [[1]]}
    assert server.requests[0].usage == completion.usage.model_dump(exclude_none=True)  # type: ignore[union-attr]


def test_openai_streamed_tool_call_through_stream_helper(openai_client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with openai_client.chat.completions.stream(
        model=GPT, messages=user('[[reply:Let me check.]] [[tool:lookup {"q": "x"}]] [[chunks:3]]'), tools=tools
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert final.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == [
        ("lookup", {"q": "x"})
    ]


def test_scripted_tool_call_without_tools_is_a_bad_request(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="defines no tools"):
        openai_client.chat.completions.create(model=GPT, messages=user("[[tool:get_weather]]"))


def test_openai_reasoning_output_tokens_and_length(openai_client: openai.OpenAI) -> None:
    reasoned = openai_client.chat.completions.create(model=GPT, messages=user("[[reply:abcd]] [[reasoning:40]]"))
    assert reasoned.usage is not None and reasoned.usage.completion_tokens_details is not None
    assert reasoned.usage.completion_tokens_details.reasoning_tokens == 40
    assert reasoned.usage.completion_tokens == 41
    forced = openai_client.chat.completions.create(model=GPT, messages=user("[[output_tokens:77]]"))
    assert forced.usage is not None and forced.usage.completion_tokens == 77
    cut = openai_client.chat.completions.create(model=GPT, messages=user("[[reply:" + "x" * 100 + "]]"), max_tokens=5)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "x" * 20
    assert cut.usage is not None and cut.usage.completion_tokens == 5


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, openai.InternalServerError), (429, openai.RateLimitError), (503, openai.InternalServerError)],
)
def test_openai_errors(server: TestServer, openai_client: openai.OpenAI, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        openai_client.chat.completions.create(model=GPT, messages=user(f"[[status:{status}]]"))
    assert isinstance(caught.value, openai.APIStatusError)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.request_id is not None
    [exchange] = server.requests
    assert (exchange.status, exchange.usage) == (status, None)


def test_openai_retries_against_scripted_failures(server: TestServer) -> None:
    server.enqueue(
        ScriptedReply(status=500, retry_after_ms=1),
        ScriptedReply(status=429, retry_after_ms=1),
        ScriptedReply(text="finally"),
    )
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=2) as client:
        completion = client.chat.completions.create(model=GPT, messages=user("[[reply:ignored]]"))
    assert completion.choices[0].message.content == "finally"
    assert [exchange.status for exchange in server.requests] == [500, 429, 200]


def test_openai_stream_error_raises_mid_stream(server: TestServer, openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model=GPT, messages=user("[[reply:abcdefghijkl]] [[chunks:6]] [[stream_error]]"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError), stream:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert 0 < len("".join(received)) < 12
    [exchange] = server.requests
    assert exchange.output_text == "".join(received)
    assert exchange.usage is None


async def test_async_openai_stream(server: TestServer, async_openai_client: openai.AsyncOpenAI) -> None:
    stream = await async_openai_client.chat.completions.create(
        model=GPT, messages=user("[[reply:async works]]"), stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    async with stream:
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            usage = chunk.usage or usage
    assert text == "async works"
    assert usage is not None and server.requests[0].usage == usage.model_dump(exclude_none=True)
