"""The google-genai (Gemini) integration, through the real SDK over real HTTP to the local model server."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import httpx2
import pytest
from google import genai
from google.genai import errors, types
from google.genai._api_client import BaseApiClient
from google.genai.models import AsyncModels, Models

from agentprof import _instrument, _runtime, _safety
from agentprof.integrations import google_genai as integration
from agentprof.testserver import LocalModelServer, RecordedExchange, ScriptedReply

MODEL = "gemini-2.5-flash"
SYSTEM = "You are a meticulous assistant for the agentprof test suite. " * 80  # > 1,024 tokens: cacheable
TOOL = types.Tool(
    function_declarations=[types.FunctionDeclaration(name="search", description="Search.", parameters={})]
)
PATCHED = [
    (BaseApiClient, "_request_once"),
    (BaseApiClient, "_async_request_once"),
    (Models, "_generate_content"),
    (Models, "_generate_content_stream"),
    (AsyncModels, "_generate_content"),
    (AsyncModels, "_generate_content_stream"),
]

Rows = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer() as running:
        yield running


@pytest.fixture
def instrumented(profiled: _runtime.Runtime) -> Iterator[_runtime.Runtime]:
    """agentprof configured in ``tmp_path`` with google-genai instrumented; undone afterwards."""
    integration.instrument()
    yield profiled
    integration.uninstrument()


@pytest.fixture
def calls(instrumented: _runtime.Runtime, spool_rows: Rows) -> Rows:
    """Flush and return the recorded model calls, in start order."""
    return lambda: [row for row in spool_rows() if row["kind"] == "model_call"]


def _client(server: LocalModelServer, **options: Any) -> genai.Client:
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url, **options))


@pytest.fixture
def gemini(server: LocalModelServer) -> Iterator[genai.Client]:
    with _client(server) as client:
        yield client


@pytest.fixture
async def agemini(server: LocalModelServer) -> AsyncIterator[genai.client.AsyncClient]:
    client = _client(server)
    async with client.aio as aio:
        yield aio
    client.close()


def truth(usage: dict[str, Any] | None) -> dict[str, int]:
    """Canonical numbers for a wire ``usageMetadata``, computed independently of the integration."""
    assert usage is not None
    thoughts = usage.get("thoughtsTokenCount", 0)
    return {
        "input_tokens": usage["promptTokenCount"] + usage.get("toolUsePromptTokenCount", 0),
        "output_tokens": usage["candidatesTokenCount"] + thoughts,
        "cache_read_tokens": usage.get("cachedContentTokenCount", 0),
        "cache_write_tokens": 0,
        "reasoning_tokens": thoughts,
    }


def usage_of(row: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: row.get(key) for key in expected}


def genai_prices_cost(exchange: RecordedExchange, row: dict[str, Any]) -> Decimal:
    """What genai-prices itself charges for the server's ground-truth response, at the call's time."""
    response = {"usageMetadata": exchange.usage, "modelVersion": exchange.model}
    extracted = genai_prices.extract_usage(response, provider_id="google")
    when = datetime.fromtimestamp(row["start_time_ns"] / 1e9, tz=UTC)
    return Decimal(extracted.calc_price(genai_request_timestamp=when).total_price)


def assert_matches(row: dict[str, Any], exchange: RecordedExchange) -> None:
    expected = truth(exchange.usage)
    assert usage_of(row, expected) == expected
    assert row["usage_known"] is True and row["priced"] is True
    assert Decimal(row["cost_usd"]) == genai_prices_cost(exchange, row) > 0


def test_canonical_usage_counts_what_genai_prices_counts() -> None:
    """Every usage field the test server does not send (tool-use prompt tokens) mapped as genai-prices maps it."""
    wire = {
        "promptTokenCount": 1200,
        "cachedContentTokenCount": 1024,
        "toolUsePromptTokenCount": 300,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 70,
        "totalTokenCount": 1620,
    }
    response = types.GenerateContentResponse.model_validate({"usage_metadata": wire})
    usage = integration.canonical_usage(response.usage_metadata)
    expected = genai_prices.extract_usage({"usageMetadata": wire, "modelVersion": MODEL}, provider_id="google").usage

    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens) == (expected.input_tokens, expected.cache_read_tokens)
    assert (usage.output_tokens, usage.reasoning_tokens) == (expected.output_tokens, expected.output_reasoning_tokens)
    assert usage.input_tokens + usage.output_tokens == wire["totalTokenCount"]
    assert integration.canonical_usage(None) is None


# --- non-streamed calls --------------------------------------------------------------------------


def test_plain_call_is_recorded_with_canonical_usage_and_priced(
    gemini: genai.Client, server: LocalModelServer, calls: Rows
) -> None:
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", temperature=0.25, max_output_tokens=64, top_p=0.5
    )
    response = gemini.models.generate_content(model=MODEL, contents="[[reply:hello]] [[reasoning:7]]", config=config)

    assert response.text == "hello"
    (row,) = calls()
    (exchange,) = server.requests
    assert_matches(row, exchange)
    assert row["reasoning_tokens"] == 7 and row["output_tokens"] == 7 + 2
    assert (row["provider"], row["operation"], row["stream"]) == ("gcp.gemini", "generate_content", False)
    assert (row["request_model"], row["response_model"]) == (MODEL, response.model_version)
    assert (row["priced_provider"], row["priced_model"]) == ("google", MODEL)
    assert row["response_id"] == response.response_id
    assert row["finish_reasons"] == '["STOP"]'
    assert (row["temperature"], row["server_address"], row["attempts"], row["status"]) == (
        0.25,
        "127.0.0.1",
        1,
        "ok",
    )
    assert row["request_fingerprint"] and row["output_chars"] == len("hello")
    assert json.loads(row["raw_usage"])["thoughts_token_count"] == 7


def test_a_models_prefixed_name_is_priced_and_fingerprinted_like_the_bare_one(
    gemini: genai.Client, server: LocalModelServer, calls: Rows
) -> None:
    gemini.models.generate_content(model=MODEL, contents="same question")
    gemini.models.generate_content(model=f"models/{MODEL}", contents="same question")
    gemini.models.generate_content(model="gemini-2.5-pro", contents="same question")

    bare, prefixed, pro = calls()
    assert prefixed["request_model"] == f"models/{MODEL}" and prefixed["priced_model"] == MODEL
    assert_matches(prefixed, server.requests[1])
    assert prefixed["request_fingerprint"] == bare["request_fingerprint"]  # the model comes from the URL
    assert pro["request_fingerprint"] != bare["request_fingerprint"]
    assert Decimal(pro["cost_usd"]) > Decimal(bare["cost_usd"])


def test_implicit_cache_reads_are_recorded_inside_input_and_priced_as_reads(
    gemini: genai.Client, server: LocalModelServer, calls: Rows
) -> None:
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    gemini.models.generate_content(model=MODEL, contents="question one", config=config)
    gemini.models.generate_content(model=MODEL, contents="question two", config=config)

    first, second = calls()
    for row, exchange in zip((first, second), server.requests, strict=True):
        assert_matches(row, exchange)
    assert first["cache_read_tokens"] == 0
    assert second["cache_read_tokens"] == server.requests[1].usage["cachedContentTokenCount"] >= 1024  # type: ignore[index]
    assert second["input_tokens"] == first["input_tokens"]  # the cache is a part of input, not an addition
    assert Decimal(second["cost_usd"]) < Decimal(first["cost_usd"])
    first_prefix = json.loads(first["prefix_fingerprints"])[0]
    assert first_prefix["role"] == "system" and first_prefix == json.loads(second["prefix_fingerprints"])[0]


def test_request_options_map_to_tool_choice_response_format_and_tool_count(gemini: genai.Client, calls: Rows) -> None:
    config = types.GenerateContentConfig(
        tools=[TOOL],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode="ANY", allowed_function_names=["search"])
        ),
        response_mime_type="application/json",
        response_schema={"type": "object"},
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    gemini.models.generate_content(model=MODEL, contents="[[reply:{}]]", config=config)
    gemini.models.generate_content(model=MODEL, contents="plain")

    forced, plain = calls()
    assert (forced["tool_choice"], forced["response_format"], forced["tool_count"]) == ("search", "json_schema", 1)
    assert (plain["tool_choice"], plain["response_format"], plain["tool_count"]) == (None, None, 0)


def test_http_error_is_raised_unchanged_and_recorded(gemini: genai.Client, calls: Rows) -> None:
    def error() -> errors.APIError:
        with pytest.raises(errors.APIError) as raised:
            gemini.models.generate_content(model=MODEL, contents="[[status:429]]")
        return raised.value

    instrumented_error = error()
    integration.uninstrument()
    plain_error = error()
    integration.instrument()

    assert type(instrumented_error) is type(plain_error) is errors.ClientError
    assert (str(instrumented_error), instrumented_error.details) == (str(plain_error), plain_error.details)
    (row,) = calls()
    assert (row["status"], row["error_type"], row["usage_known"], row["cost_usd"]) == (
        "error",
        "ClientError",
        False,
        None,
    )


def test_sdk_retries_are_one_span_with_their_attempts_counted(server: LocalModelServer, calls: Rows) -> None:
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0, max_delay=0, jitter=0, http_status_codes=[503])
    server.enqueue(ScriptedReply(status=503), ScriptedReply(text="after a retry"))
    with _client(server, retry_options=retry) as client:
        response = client.models.generate_content(model=MODEL, contents="retry me")

    assert response.text == "after a retry"
    assert [exchange.status for exchange in server.requests] == [503, 200]
    (row,) = calls()
    assert row["attempts"] == 2 and row["status"] == "ok"
    assert_matches(row, server.requests[1])


def test_automatic_function_calling_records_each_request(
    gemini: genai.Client, server: LocalModelServer, calls: Rows
) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return f"{city} [[reply:done]]"

    response = gemini.models.generate_content(
        model=MODEL, contents='[[tool:lookup {"city": "Oslo"}]]', config=types.GenerateContentConfig(tools=[lookup])
    )

    assert response.text == "done"
    first, second = calls()
    for row, exchange in zip((first, second), server.requests, strict=True):
        assert_matches(row, exchange)
    assert first["output_chars"] == len('\n[tool:lookup] {"city":"Oslo"}') and second["output_chars"] == len("done")
    assert first["tool_count"] == second["tool_count"] == 1
    # Contents are messages to the fingerprinter: the follow-up extends the first request's prefix.
    first_prefixes, second_prefixes = (json.loads(row["prefix_fingerprints"]) for row in (first, second))
    assert [p["role"] for p in second_prefixes] == ["tools", "user", "model", "user"]
    assert second_prefixes[: len(first_prefixes)] == first_prefixes


def test_chat_turns_are_recorded_once_each(gemini: genai.Client, server: LocalModelServer, calls: Rows) -> None:
    chat = gemini.chats.create(model=MODEL)
    chat.send_message("[[reply:one]]")
    chat.send_message("[[reply:two]]")

    rows = calls()
    assert len(rows) == len(server.requests) == 2
    for row, exchange in zip(rows, server.requests, strict=True):
        assert_matches(row, exchange)
    assert rows[1]["input_tokens"] > rows[0]["input_tokens"]


# --- streams -------------------------------------------------------------------------------------


def test_stream_read_to_the_end(gemini: genai.Client, server: LocalModelServer, calls: Rows) -> None:
    chunks = list(
        gemini.models.generate_content_stream(
            model=MODEL, contents="[[reply:streamed words]] [[chunks:4]] [[reasoning:5]]"
        )
    )

    assert "".join(chunk.text or "" for chunk in chunks) == "streamed words"
    (row,) = calls()
    (exchange,) = server.requests
    assert_matches(row, exchange)
    assert row["stream"] is True and row["stream_complete"] is True and row["ttft_ms"] > 0
    assert row["reasoning_tokens"] == 5 and row["finish_reasons"] == '["STOP"]'
    assert row["response_model"] == MODEL and row["response_id"] == chunks[0].response_id
    assert row["output_chars"] == len("streamed words") and row["request_fingerprint"]


def test_stream_closed_right_after_its_last_chunk_is_complete(
    gemini: genai.Client, server: LocalModelServer, calls: Rows
) -> None:
    stream = gemini.models.generate_content_stream(model=MODEL, contents="[[reply:ab]] [[chunks:2]]")
    next(stream)
    next(stream)  # carries the finish reason and the final usage
    stream.close()  # type: ignore[attr-defined]  # a generator, typed as an Iterator

    (row,) = calls()
    assert row["stream_complete"] is True
    assert_matches(row, server.requests[0])


def test_streams_closed_early_abandoned_or_broken(gemini: genai.Client, server: LocalModelServer, calls: Rows) -> None:
    closed = gemini.models.generate_content_stream(model=MODEL, contents="[[chunks:5]] one")
    next(closed)
    closed.close()  # type: ignore[attr-defined]
    abandoned = gemini.models.generate_content_stream(model=MODEL, contents="[[chunks:5]] two")
    next(abandoned)
    del abandoned
    gc.collect()
    broken = gemini.models.generate_content_stream(model=MODEL, contents="[[chunks:6]] [[stream_error]] three")
    with pytest.raises(httpx2.RemoteProtocolError):  # what the SDK lets through on a dropped connection
        for _ in broken:
            pass

    rows = calls()
    assert len(rows) == 3
    for row in rows:
        assert (row["stream_complete"], row["usage_known"], row["cost_usd"]) == (False, False, None)
        assert row["ttft_ms"] > 0
    assert (rows[0]["status"], rows[1]["status"]) == ("ok", "ok")
    assert rows[2]["status"] == "error" and rows[2]["error_type"] == "RemoteProtocolError"
    # The chunks did carry running usage: recording it would under-report the call.
    assert all(exchange.usage is not None for exchange in server.requests)


def test_stream_rejected_before_its_first_chunk_is_an_error(gemini: genai.Client, calls: Rows) -> None:
    with pytest.raises(errors.ServerError):
        for _ in gemini.models.generate_content_stream(model=MODEL, contents="[[status:503]]"):
            pass

    (row,) = calls()
    assert (row["stream"], row["status"], row["error_type"], row["usage_known"]) == (
        True,
        "error",
        "ServerError",
        False,
    )
    assert row["request_fingerprint"]  # the request hook ran while the first chunk was pulled


def test_streamed_automatic_function_calling_records_each_request(
    gemini: genai.Client, server: LocalModelServer, calls: Rows
) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return "[[reply:streamed done]]"

    config = types.GenerateContentConfig(tools=[lookup])
    text = "".join(
        chunk.text or ""
        for chunk in gemini.models.generate_content_stream(
            model=MODEL, contents='[[tool:lookup {"city": "x"}]]', config=config
        )
    )

    assert text == "streamed done"
    rows = calls()
    assert len(rows) == len(server.requests) == 2
    for row, exchange in zip(rows, server.requests, strict=True):
        assert row["stream_complete"] is True
        assert_matches(row, exchange)


async def test_async_generate_and_stream(
    agemini: genai.client.AsyncClient, server: LocalModelServer, calls: Rows
) -> None:
    response = await agemini.models.generate_content(model=MODEL, contents="[[reply:async]] [[reasoning:3]]")
    stream = await agemini.models.generate_content_stream(model=MODEL, contents="[[reply:async stream]] [[chunks:3]]")
    texts = [chunk.text async for chunk in stream]

    assert response.text == "async" and "".join(t or "" for t in texts) == "async stream"
    rows = calls()
    assert len(rows) == 2
    for row, exchange in zip(rows, server.requests, strict=True):
        assert_matches(row, exchange)
        assert row["request_fingerprint"]
    assert rows[0]["stream"] is False and rows[0]["reasoning_tokens"] == 3
    assert rows[1]["stream_complete"] is True and rows[1]["ttft_ms"] > 0


async def test_async_streams_closed_early_abandoned_or_broken(agemini: genai.client.AsyncClient, calls: Rows) -> None:
    closed = await agemini.models.generate_content_stream(model=MODEL, contents="[[chunks:5]] one")
    await anext(closed)
    await closed.aclose()  # type: ignore[attr-defined]
    abandoned = await agemini.models.generate_content_stream(model=MODEL, contents="[[chunks:5]] two")
    await anext(abandoned)
    del abandoned
    broken = await agemini.models.generate_content_stream(model=MODEL, contents="[[chunks:6]] [[stream_error]]")
    with pytest.raises(httpx2.RemoteProtocolError):
        async for _ in broken:
            pass
    for _ in range(5):  # the event loop closes dropped async generators in tasks of its own
        gc.collect()
        await asyncio.sleep(0)

    rows = calls()
    assert len(rows) == 3
    for row in rows:
        assert (row["stream_complete"], row["usage_known"], row["cost_usd"]) == (False, False, None)
    assert rows[2]["error_type"] == "RemoteProtocolError"


@pytest.mark.parametrize("prompt", ["[[reply:one two three]]", '[[reply:calling]] [[tool:search {"q": "x"}]]'])
def test_a_streamed_answer_hashes_like_the_same_answer_not_streamed(
    gemini: genai.Client, calls: Rows, prompt: str
) -> None:
    config = types.GenerateContentConfig(tools=[TOOL])
    gemini.models.generate_content(model=MODEL, contents=prompt, config=config)
    for _ in gemini.models.generate_content_stream(model=MODEL, contents=prompt, config=config):
        pass

    plain, streamed = calls()
    assert plain["output_hash"] is not None and plain["output_chars"] > 0
    assert (streamed["output_hash"], streamed["output_chars"]) == (plain["output_hash"], plain["output_chars"])
    assert streamed["request_fingerprint"] == plain["request_fingerprint"]  # the stream flag is in the URL only


# --- safety: the user's program sees exactly what it would without agentprof ---------------------


def _dump(response: types.GenerateContentResponse) -> dict[str, Any]:
    """A response without what differs between two identical calls (ids, the HTTP date header)."""
    data = response.model_dump(exclude={"sdk_http_response", "response_id"})
    for candidate in data.get("candidates") or ():
        for part in candidate["content"]["parts"]:
            if part.get("function_call"):
                part["function_call"].pop("id")
    return data


def test_results_identical_with_and_without_instrumentation(gemini: genai.Client, calls: Rows) -> None:
    config = types.GenerateContentConfig(tools=[TOOL])

    def run() -> list[Any]:
        response = gemini.models.generate_content(model=MODEL, contents='same [[tool:search {"q": 1}]]', config=config)
        chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="same [[chunks:3]]"))
        assert all(type(chunk) is types.GenerateContentResponse for chunk in chunks)
        return [_dump(response), [_dump(chunk) for chunk in chunks]]

    with_agentprof = run()
    integration.uninstrument()
    without = run()
    integration.instrument()

    assert with_agentprof == without
    assert len(calls()) == 2


def test_internal_failures_never_reach_the_user(
    gemini: genai.Client, calls: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPROF_RAISE_INTERNAL_ERRORS", "0")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(integration, "canonical_usage", broken)
    monkeypatch.setattr(integration, "fingerprint_body", broken)

    response = gemini.models.generate_content(model=MODEL, contents="[[reply:fine]]")
    text = "".join(
        chunk.text or "" for chunk in gemini.models.generate_content_stream(model=MODEL, contents="[[reply:also fine]]")
    )

    assert response.text == "fine" and text == "also fine"
    counters = _safety.counters()
    assert counters["internal_errors.google_genai.capture_request"] == 2
    assert counters["internal_errors.on_result"] == 1
    assert counters["internal_errors.stream.finish"] == 1
    plain, streamed = calls()  # both calls kept, usage unknown (unpriced, never $0)
    assert (plain["usage_known"], plain.get("cost_usd"), plain.get("request_fingerprint")) == (False, None, None)
    assert (streamed["usage_known"], streamed["stream_complete"]) == (False, True)


# --- patching and the SDK registry ---------------------------------------------------------------


def test_instrument_is_idempotent_and_uninstrument_restores(
    gemini: genai.Client, profiled: _runtime.Runtime, calls: Rows
) -> None:
    integration.uninstrument()
    assert not integration.is_instrumented()
    originals = [owner.__dict__[name] for owner, name in PATCHED]

    integration.instrument()
    integration.instrument()
    assert integration.is_instrumented()
    for _ in gemini.models.generate_content_stream(model=MODEL, contents="once"):
        pass
    assert len(calls()) == 1

    integration.uninstrument()
    assert [owner.__dict__[name] for owner, name in PATCHED] == originals
    gemini.models.generate_content(model=MODEL, contents="not recorded")
    assert len(calls()) == 1
    integration.instrument()


def test_agentprof_instrument_finds_the_sdk_by_its_dotted_name(profiled: _runtime.Runtime) -> None:
    assert _instrument.SUPPORTED_SDKS["google.genai"] == "agentprof.integrations.google_genai"
    assert _instrument._installed("google.genai")
    assert not _instrument._installed("no_such_sdk_parent.genai")  # find_spec raises here, not None
    try:
        assert "google.genai" in _instrument.instrument()
        assert integration.is_instrumented()
    finally:
        _instrument.uninstrument()
    assert not integration.is_instrumented()
