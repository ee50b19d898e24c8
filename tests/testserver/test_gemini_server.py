"""The Gemini API wire format, through the real google-genai SDK (sync and async) and raw HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from agentprof.testserver import TestServer

from .helpers import post

GEMINI = "gemini-2.5-flash"


def _client(server: TestServer, api_version: str | None = None) -> genai.Client:
    options = types.HttpOptions(base_url=server.url, api_version=api_version)
    return genai.Client(api_key="test", http_options=options)


@pytest.fixture
def gemini(server: TestServer) -> Iterator[genai.Client]:
    with _client(server) as client:
        yield client


@pytest.fixture
async def async_gemini(server: TestServer) -> AsyncIterator[genai.client.AsyncClient]:
    client = _client(server)
    async with client.aio as aio:
        yield aio
    client.close()


def _usage(response: types.GenerateContentResponse) -> dict[str, Any]:
    """The response's usage as the API spelled it on the wire."""
    assert response.usage_metadata is not None
    return response.usage_metadata.model_dump(by_alias=True, exclude_none=True, mode="json")


def test_generate_content_usage_matches_ground_truth(server: TestServer, gemini: genai.Client) -> None:
    prompt = "Hi there [[reply:General Kenobi]] [[reasoning:10]]"
    config = types.GenerateContentConfig(system_instruction="Be brief.")
    response = gemini.models.generate_content(model=GEMINI, contents=prompt, config=config)

    assert response.text == "General Kenobi"
    assert response.model_version == GEMINI and response.response_id
    (candidate,) = response.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None and candidate.content.role == "model"
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == math.ceil((len("Be brief.") + len(prompt)) / 4)
    assert usage.candidates_token_count == math.ceil(len("General Kenobi") / 4)  # thoughts are not candidates
    assert usage.thoughts_token_count == 10
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + 10
    assert usage.cached_content_token_count is None  # only sent when non-zero, as the API does
    [exchange] = server.requests
    assert (exchange.api, exchange.path, exchange.model, exchange.stream, exchange.status) == (
        "gemini",
        f"/v1/models/{GEMINI}:generateContent",
        GEMINI,
        False,
        200,
    )
    assert exchange.usage == _usage(response)
    assert exchange.output_text == "General Kenobi"
    assert exchange.request_body["systemInstruction"]["parts"] == [{"text": "Be brief."}]


def test_stream_chunks_carry_running_usage_and_the_last_one_finishes(server: TestServer, gemini: genai.Client) -> None:
    chunks = list(
        gemini.models.generate_content_stream(
            model=f"models/{GEMINI}", contents="[[reply:Hello there friend]] [[chunks:3]] [[reasoning:4]]"
        )
    )

    assert [chunk.text for chunk in chunks] == ["Hello ", "there ", "friend"]
    reasons = [chunk.candidates[0].finish_reason for chunk in chunks if chunk.candidates]
    assert reasons == [None, None, types.FinishReason.STOP]
    running = [chunk.usage_metadata.candidates_token_count for chunk in chunks if chunk.usage_metadata]
    assert running == [2, 3, math.ceil(len("Hello there friend") / 4)]
    assert all(chunk.usage_metadata and chunk.usage_metadata.thoughts_token_count == 4 for chunk in chunks)
    [exchange] = server.requests
    assert exchange.path == f"/v1/models/{GEMINI}:streamGenerateContent" and exchange.stream is True
    assert exchange.model == GEMINI
    assert exchange.usage == _usage(chunks[-1])
    assert exchange.output_text == "Hello there friend"


@pytest.mark.parametrize("stream", [False, True])
def test_function_calls(server: TestServer, gemini: genai.Client, stream: bool) -> None:
    tool = types.Tool(
        function_declarations=[types.FunctionDeclaration(name="search", description="Search.", parameters={})]
    )
    config = types.GenerateContentConfig(tools=[tool])
    prompt = '[[reply:Searching.]] [[tool:search {"query": "otel genai", "limit": 3}]]'
    if stream:
        chunks = list(gemini.models.generate_content_stream(model=GEMINI, contents=prompt, config=config))
        parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts]  # type: ignore[index, union-attr]
        last = chunks[-1]
    else:
        last = gemini.models.generate_content(model=GEMINI, contents=prompt, config=config)
        parts = last.candidates[0].content.parts  # type: ignore[index, union-attr, assignment]
    assert "".join(part.text for part in parts if part.text) == "Searching."
    calls = [part.function_call for part in parts if part.function_call]
    assert [(call.name, call.args) for call in calls] == [("search", {"query": "otel genai", "limit": 3})]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert server.requests[0].usage == _usage(last)
    assert server.requests[0].usage["candidatesTokenCount"] == math.ceil(  # type: ignore[index]
        (len("Searching.") + len("search") + len(json.dumps({"query": "otel genai", "limit": 3}))) / 4
    )


def test_automatic_function_calling_reads_directives_from_function_responses(
    server: TestServer, gemini: genai.Client
) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return f"{city}: [[reply:All done]]"

    config = types.GenerateContentConfig(tools=[lookup])
    response = gemini.models.generate_content(model=GEMINI, contents='[[tool:lookup {"city": "Oslo"}]]', config=config)

    assert response.text == "All done"
    first, second = server.requests
    assert first.output_text == "" and second.output_text == "All done"
    follow_up = second.request_body["contents"]
    assert [content["role"] for content in follow_up] == ["user", "model", "user"]
    assert follow_up[2]["parts"][0]["functionResponse"]["response"] == {"result": "Oslo: [[reply:All done]]"}
    assert second.usage["promptTokenCount"] > first.usage["promptTokenCount"]  # type: ignore[index]


def test_max_output_tokens_cuts_the_reply(gemini: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=2)
    response = gemini.models.generate_content(model=GEMINI, contents="[[reply:one two three four]]", config=config)

    assert response.text == "one two "
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]
    assert response.usage_metadata is not None and response.usage_metadata.candidates_token_count == 2


def test_implicit_cache_reads_are_inside_the_prompt_count(server: TestServer, gemini: genai.Client) -> None:
    system = "You are a meticulous assistant for the agentprof test suite. " * 80  # > 1,024 tokens
    config = types.GenerateContentConfig(system_instruction=system)
    first = gemini.models.generate_content(model=GEMINI, contents="question one", config=config)
    second = gemini.models.generate_content(model=GEMINI, contents="question two", config=config)

    assert first.usage_metadata is not None and second.usage_metadata is not None
    assert first.usage_metadata.cached_content_token_count is None
    cached = second.usage_metadata.cached_content_token_count
    assert cached is not None and cached % 128 == 0 and 1024 <= cached <= math.ceil(len(system) / 4)
    assert second.usage_metadata.prompt_token_count == math.ceil((len(system) + len("question two")) / 4)
    assert server.requests[1].usage == _usage(second)
    assert server.requests[1].usage["cacheTokensDetails"] == [{"modality": "TEXT", "tokenCount": cached}]  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "error", "name"),
    [(429, errors.ClientError, "RESOURCE_EXHAUSTED"), (503, errors.ServerError, "UNAVAILABLE")],
)
def test_errors_in_googles_format(
    server: TestServer, gemini: genai.Client, status: int, error: type[errors.APIError], name: str
) -> None:
    with pytest.raises(error) as caught:
        gemini.models.generate_content(model=GEMINI, contents=f"[[status:{status}]]")

    assert caught.value.code == status and caught.value.status == name
    assert caught.value.details == {
        "error": {"code": status, "message": f"Scripted error: HTTP {status}", "status": name}
    }
    assert (server.requests[0].status, server.requests[0].model, server.requests[0].usage) == (status, GEMINI, None)


def test_stream_error_raises_and_records_what_was_sent(server: TestServer, gemini: genai.Client) -> None:
    seen: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        for chunk in gemini.models.generate_content_stream(
            model=GEMINI, contents="[[reply:abcdefghijkl]] [[chunks:6]] [[stream_error]]"
        ):
            seen.append(chunk.text or "")

    assert seen == ["ab", "cd", "ef"]
    [exchange] = server.requests  # no automatic retry: content had been yielded
    assert exchange.output_text == "abcdef"
    assert exchange.usage is not None and exchange.usage["candidatesTokenCount"] == 2  # the running count sent


def test_v1beta_paths_raw_http_and_bad_requests(server: TestServer) -> None:
    url = f"{server.url}/v1beta/models/{GEMINI}:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "[[reply:raw]]"}]}]}
    status, answer = post(url, json.dumps(body).encode())
    assert status == 200
    assert answer["candidates"][0]["content"] == {"parts": [{"text": "raw"}], "role": "model"}
    assert answer["usageMetadata"]["promptTokenCount"] == math.ceil(len("[[reply:raw]]") / 4)

    status, answer = post(url, json.dumps({"contents": []}).encode())
    assert (status, answer["error"]["status"], answer["error"]["code"]) == (400, "INVALID_ARGUMENT", 400)
    status, answer = post(url, json.dumps({"contents": [{"parts": [{"text": "[[nope:1]]"}]}]}).encode())
    assert status == 400 and answer["error"]["message"] == "unknown directive [[nope:...]]"
    status, _ = post(f"{server.url}/v1beta/models/{GEMINI}:countTokens", b"{}")
    assert status == 404
    assert [exchange.status for exchange in server.requests] == [200, 400, 400]
    assert [exchange.path for exchange in server.requests] == [url.removeprefix(server.url)] * 3


def test_sdk_on_v1beta(server: TestServer) -> None:
    with _client(server, api_version="v1beta") as client:
        assert client.models.generate_content(model=GEMINI, contents="[[reply:beta]]").text == "beta"
    assert server.requests[0].path == f"/v1beta/models/{GEMINI}:generateContent"


async def test_async_generate_and_stream(server: TestServer, async_gemini: genai.client.AsyncClient) -> None:
    response = await async_gemini.models.generate_content(model=GEMINI, contents="[[reply:async gemini]]")
    stream = await async_gemini.models.generate_content_stream(model=GEMINI, contents="[[reply:streamed]] [[chunks:2]]")
    texts = [chunk.text async for chunk in stream]

    assert response.text == "async gemini"
    assert texts == ["stre", "amed"]
    assert [exchange.stream for exchange in server.requests] == [False, True]
    assert server.requests[0].usage == _usage(response)
