"""The OpenAI Responses API (``/v1/responses``) of the test server, through the real SDK and raw HTTP."""

from __future__ import annotations

import json
import math
import urllib.request
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from agentprof.testserver import RecordedExchange, TestServer

from .helpers import GPT, post

WEATHER: Any = [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]
TEXT_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 3,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def _without_ids(value: Any) -> Any:
    """``value`` without the per-request ids and timestamps, to compare two answers to one prompt."""
    if isinstance(value, dict):
        skip = {"id", "item_id", "call_id", "created_at", "completed_at", "sequence_number"}
        return {key: _without_ids(item) for key, item in value.items() if key not in skip}
    if isinstance(value, list):
        return [_without_ids(item) for item in value]
    return value


def test_plain_response_and_recorded_ground_truth(server: TestServer, openai_client: openai.OpenAI) -> None:
    instructions, prompt = "Be brief.", "Say hello [[reply:Hello world!]]"
    response = openai_client.responses.create(model=GPT, instructions=instructions, input=prompt)

    assert (response.object, response.status, response.model) == ("response", "completed", GPT)
    assert response.id.startswith("resp_") and response.incomplete_details is None and response.error is None
    assert response.output_text == "Hello world!"
    assert response.instructions == instructions
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == math.ceil((len(instructions) + len(prompt)) / 4)
    assert usage.output_tokens == 3 and usage.total_tokens == usage.input_tokens + 3
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    [exchange] = server.requests
    assert exchange == RecordedExchange(
        api="openai",
        path="/v1/responses",
        model=GPT,
        stream=False,
        status=200,
        usage=usage.model_dump(exclude_none=True),
        request_body={"model": GPT, "instructions": instructions, "input": prompt},
        output_text="Hello world!",
        time=1000.0,
    )


def test_reasoning_is_an_output_item_and_part_of_output_tokens(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model=GPT, input="[[reply:abcd]] [[reasoning:40]]")

    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 40
    assert response.usage.output_tokens == 41
    assert response.output_text == "abcd"


def test_cached_tokens_are_included_in_input_tokens(server: TestServer, openai_client: openai.OpenAI) -> None:
    rules = "Rules of the house. " * 400
    first = openai_client.responses.create(model=GPT, instructions=rules, input="question one")
    second = openai_client.responses.create(model=GPT, instructions=rules, input="question two")

    assert first.usage is not None and second.usage is not None
    assert first.usage.input_tokens_details.cached_tokens == 0
    cached = second.usage.input_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    assert second.usage.input_tokens == math.ceil((len(rules) + len("question two")) / 4)  # cached inside
    assert second.usage.input_tokens > cached


def test_max_output_tokens_makes_an_incomplete_response(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model=GPT, input="[[reply:" + "x" * 100 + "]]", max_output_tokens=5)

    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "x" * 20
    assert response.usage is not None and response.usage.output_tokens == 5


def test_tool_calls_are_function_call_items(server: TestServer, openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(
        model=GPT, input='[[reply:Let me check.]] [[tool:weather {"city": "Paris"}]]', tools=WEATHER
    )

    message, call = response.output
    assert message.type == "message" and response.output_text == "Let me check."
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments), call.status) == ("weather", {"city": "Paris"}, "completed")
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")
    assert response.tools[0].type == "function"


def test_stream_event_sequence_matches_the_plain_response(server: TestServer, openai_client: openai.OpenAI) -> None:
    prompt = '[[reply:one two three]] [[tool:weather {"city": "Paris"}]] [[chunks:3]]'
    plain = openai_client.responses.create(model=GPT, input=prompt, tools=WEATHER)
    with openai_client.responses.create(model=GPT, input=prompt, tools=WEATHER, stream=True) as stream:
        events = list(stream)

    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        *TEXT_EVENTS,
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * 3,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    created, final = events[0], events[-1]
    assert created.type == "response.created" and final.type == "response.completed"
    assert created.response.status == "in_progress" and created.response.usage is None
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three"
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"city": "Paris"}
    assert _without_ids(final.response.model_dump()) == _without_ids(plain.model_dump())
    assert final.response.usage is not None
    streamed_exchange = server.requests[-1]
    assert streamed_exchange.stream and streamed_exchange.output_text == "one two three"
    assert streamed_exchange.usage == final.response.usage.model_dump(exclude_none=True)


def test_truncated_stream_ends_with_response_incomplete(server: TestServer, openai_client: openai.OpenAI) -> None:
    stream = openai_client.responses.create(
        model=GPT, input="[[reply:" + "y" * 100 + "]]", max_output_tokens=5, stream=True
    )
    events = list(stream)

    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.usage is not None and final.response.usage.output_tokens == 5
    assert server.requests[-1].usage == final.response.usage.model_dump(exclude_none=True)


def test_stream_helper_accumulates_the_final_response(openai_client: openai.OpenAI) -> None:
    with openai_client.responses.stream(
        model=GPT, input='[[reply:Checking.]] [[tool:weather {"q": 1}]]', tools=WEATHER
    ) as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()

    assert text == final.output_text == "Checking."
    assert [item.type for item in final.output] == ["message", "function_call"]


def test_parse_reads_structured_output(openai_client: openai.OpenAI) -> None:
    class City(BaseModel):
        name: str

    parsed = openai_client.responses.parse(model=GPT, input='[[reply:{"name": "Paris"}]]', text_format=City)

    assert parsed.output_parsed == City(name="Paris")


def test_an_agent_loop_scripts_the_next_reply_from_the_tool_output(
    server: TestServer, openai_client: openai.OpenAI
) -> None:
    items: list[Any] = [{"role": "user", "content": '[[tool:weather {"city": "Paris"}]]'}]
    first = openai_client.responses.create(model=GPT, input=items, tools=WEATHER)
    call = first.output[0]
    assert call.type == "function_call"
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny [[reply:It is sunny.]]"})
    final = openai_client.responses.create(model=GPT, input=items, tools=WEATHER)

    assert final.output_text == "It is sunny."
    assert first.usage is not None and final.usage is not None
    assert final.usage.input_tokens > first.usage.input_tokens


async def test_async_stream(server: TestServer, async_openai_client: openai.AsyncOpenAI) -> None:
    stream = await async_openai_client.responses.create(model=GPT, input="[[reply:async works]]", stream=True)
    events = [event async for event in stream]

    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "async works"
    final = events[-1]
    assert final.type == "response.completed" and final.response.usage is not None
    assert server.requests[0].usage == final.response.usage.model_dump(exclude_none=True)


@pytest.mark.parametrize(("status", "error"), [(429, openai.RateLimitError), (500, openai.InternalServerError)])
def test_errors_use_openais_error_body(
    server: TestServer, openai_client: openai.OpenAI, status: int, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        openai_client.responses.create(model=GPT, input=f"[[status:{status}]]")

    assert isinstance(caught.value, openai.APIStatusError) and caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.request_id is not None
    [exchange] = server.requests
    assert (exchange.path, exchange.status, exchange.usage) == ("/v1/responses", status, None)


def test_invalid_requests_are_400s(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="input"):
        openai_client.responses.create(model=GPT)
    with pytest.raises(openai.BadRequestError, match="defines no tools"):
        openai_client.responses.create(model=GPT, input="[[tool:weather]]")


def test_stream_error_raises_mid_stream_and_records_what_was_sent(
    server: TestServer, openai_client: openai.OpenAI
) -> None:
    stream = openai_client.responses.create(
        model=GPT, input="[[reply:abcdefghijkl]] [[chunks:6]] [[stream_error]]", stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError), stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                received.append(event.delta)

    assert 0 < len("".join(received)) < 12
    [exchange] = server.requests
    assert exchange.output_text == "".join(received)
    assert exchange.usage is None


def test_the_route_without_v1_and_the_raw_sse_framing(server: TestServer) -> None:
    with openai.OpenAI(base_url=server.url, api_key="test", max_retries=0) as client:
        assert client.responses.create(model=GPT, input="[[reply:no v1]]").output_text == "no v1"
    assert server.requests[-1].path == "/responses"

    request = urllib.request.Request(
        server.url + "/v1/responses",
        data=json.dumps({"model": GPT, "input": "[[reply:raw]]", "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        frames = response.read().decode().strip().split("\n\n")
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line == f"event: {json.loads(data_line.removeprefix('data: '))['type']}"
    assert not any("[DONE]" in frame for frame in frames)  # the Responses API has no sentinel


def test_non_json_body_is_an_openai_400(server: TestServer) -> None:
    status, body = post(server.url + "/v1/responses", b"{not json")

    assert status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
