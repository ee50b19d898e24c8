"""Every way agents reach OpenAI and Anthropic models, recorded and priced under the provider that bills.

Real SDK clients over real HTTP to the local model server: Azure OpenAI (deployment paths with
``api-version``), an OpenAI-compatible self-hosted model priced by a user price, Anthropic on
AWS Bedrock (``/model/{id}/invoke``) and Google Vertex AI (``:rawPredict`` / ``:streamRawPredict``),
and an Anthropic tool loop with ``cache_control`` breakpoints. Costs are compared with what
genai-prices itself charges for the server's ground-truth usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import genai_prices
import openai
import pytest

from agentprof.testserver import LocalModelServer
from tests.integrations.conftest import Calls
from tests.integrations.helpers import ANTHROPIC_MODEL, anthropic_truth, openai_truth, usage_of, user

AZURE_API_VERSION = "2024-10-21"
BEDROCK_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_MODEL = "claude-haiku-4-5@20251001"
SYSTEM = "You are a meticulous assistant for the agentprof provider-variant tests. " * 8
TOOLS: list[Any] = [
    {"name": "lookup", "description": "Look a thing up.", "input_schema": {"type": "object"}},
    {
        "name": "fetch",
        "description": "Fetch a page by URL. " * 6,
        "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral"},  # breakpoint 1: every tool definition
    },
]


@pytest.fixture
def server() -> Iterator[LocalModelServer]:
    """The local server with a low cache minimum for every model id these tests use."""
    low = {ANTHROPIC_MODEL: 32, BEDROCK_MODEL: 32, VERTEX_MODEL: 32}
    with LocalModelServer(anthropic_min_cacheable_tokens=low) as running:
        yield running


def _when(row: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(row["start_time_ns"] / 1e9, tz=UTC)


def openai_price(usage: dict[str, Any], model: str, provider_id: str, row: dict[str, Any]) -> Decimal:
    """genai-prices' own price for an OpenAI-format ground-truth usage."""
    extracted = genai_prices.extract_usage({"model": "gpt-4o", "usage": usage}, provider_id="openai", api_flavor="chat")
    return Decimal(
        genai_prices.calc_price(
            extracted.usage, model, provider_id=provider_id, genai_request_timestamp=_when(row)
        ).total_price
    )


def anthropic_price(usage: dict[str, Any], model: str, provider_id: str, row: dict[str, Any]) -> Decimal:
    """genai-prices' own price for an Anthropic-format ground-truth usage, at the call's time."""
    # Only the usage block is read here; the model is looked up below, under the billing provider.
    extracted = genai_prices.extract_usage({"model": ANTHROPIC_MODEL, "usage": usage}, provider_id="anthropic")
    return Decimal(
        genai_prices.calc_price(
            extracted.usage, model, provider_id=provider_id, genai_request_timestamp=_when(row)
        ).total_price
    )


# --- Azure OpenAI ---------------------------------------------------------------------


def test_azure_client_bound_to_a_deployment(server: LocalModelServer, calls: Calls) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=server.url,
        azure_deployment="prod-gpt4o",
        api_key="test",
        api_version=AZURE_API_VERSION,
        max_retries=0,
    )
    with client:
        completion = client.chat.completions.create(model="gpt-4o", messages=user("[[reply:from azure]]"))

    assert completion.choices[0].message.content == "from azure"
    (exchange,) = server.requests
    assert exchange.path == "/openai/deployments/prod-gpt4o/chat/completions"
    (row,) = calls()
    truth = openai_truth(exchange.usage or {})
    assert usage_of(row, truth) == truth
    assert (row["provider"], row["request_model"], row["response_model"]) == ("azure.ai.openai", "gpt-4o", "gpt-4o")
    assert (row["priced"], row["priced_provider"]) == (True, "azure")
    assert Decimal(row["cost_usd"]) == openai_price(exchange.usage or {}, "gpt-4o", "azure", row) > 0


async def test_async_azure_stream_with_deployment_as_model_and_a_user_price(
    server: LocalModelServer, calls: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``azure_deployment`` the SDK puts the model (a deployment name) in the path; a user price prices it."""
    (tmp_path / "pyproject.toml").write_text('[tool.agentprof.prices."azure/team-mini"]\ninput = 0.5\noutput = 2\n')
    monkeypatch.chdir(tmp_path)
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=server.url, api_key="test", api_version=AZURE_API_VERSION, max_retries=0
    )
    async with client:
        stream = await client.chat.completions.create(
            model="team-mini",
            messages=user("[[reply:a b c]] [[chunks:3]]"),
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    assert text == "a b c"
    (exchange,) = server.requests
    assert exchange.path == "/openai/deployments/team-mini/chat/completions"
    (row,) = calls()
    usage = exchange.usage or {}
    assert usage_of(row, openai_truth(usage)) == openai_truth(usage)
    assert (row["provider"], row["request_model"], row["stream_complete"]) == ("azure.ai.openai", "team-mini", True)
    expected = (Decimal("0.5") * usage["prompt_tokens"] + Decimal(2) * usage["completion_tokens"]) / 1_000_000
    assert (row["price_source"], Decimal(row["cost_usd"])) == ("user", expected)


# --- OpenAI-compatible self-hosted servers ---------------------------------------------


def test_openai_compatible_local_model_priced_by_a_user_price(
    server: LocalModelServer, calls: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM/Ollama style: a local base URL keeps the SDK's provider; the model's user price decides the cost."""
    (tmp_path / "pyproject.toml").write_text('[tool.agentprof.prices."my-llama"]\ninput = 0.2\noutput = 0.6\n')
    monkeypatch.chdir(tmp_path)
    with openai.OpenAI(base_url=server.openai_base_url, api_key="unused", max_retries=0) as client:
        client.chat.completions.create(model="my-llama", messages=user("[[reply:local answer]]"))

    (row,) = calls()
    usage = server.requests[0].usage or {}
    assert usage_of(row, openai_truth(usage)) == openai_truth(usage)
    assert (row["provider"], row["request_model"], row["server_address"]) == ("openai", "my-llama", "127.0.0.1")
    expected = (Decimal("0.2") * usage["prompt_tokens"] + Decimal("0.6") * usage["completion_tokens"]) / 1_000_000
    assert (row["priced"], row["price_source"], Decimal(row["cost_usd"])) == (True, "user", expected)


def test_openai_compatible_local_model_without_a_price_is_unpriced(server: LocalModelServer, calls: Calls) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="unused", max_retries=0) as client:
        client.chat.completions.create(model="my-llama", messages=user("hi"))

    (row,) = calls()
    assert (row["usage_known"], row["priced"], row["cost_usd"]) == (True, False, None)
    assert "unknown model" in row["unpriced_reason"]


# --- Anthropic on AWS Bedrock -----------------------------------------------------------


def _bedrock(server: LocalModelServer) -> anthropic.AnthropicBedrock:
    # A Bedrock API key (bearer token) instead of SigV4: the same request path, no boto3 needed.
    return anthropic.AnthropicBedrock(api_key="test", aws_region="us-east-1", base_url=server.url, max_retries=0)


def test_bedrock_invoke_is_priced_under_aws_with_the_bedrock_id(server: LocalModelServer, calls: Calls) -> None:
    with _bedrock(server) as client:
        message = client.messages.create(
            model=BEDROCK_MODEL,
            max_tokens=64,
            system=[{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            messages=user("[[reply:from bedrock]]"),
        )

    assert message.content[0].text == "from bedrock"  # type: ignore[union-attr]
    assert message.model == "claude-haiku-4-5-20251001"  # Bedrock answers with Anthropic's name
    (exchange,) = server.requests
    assert exchange.path == f"/model/{BEDROCK_MODEL}/invoke"
    assert isinstance(exchange.request_body["anthropic_version"], str)  # the SDK's version, not a header
    assert "model" not in exchange.request_body
    (row,) = calls()
    truth = anthropic_truth(exchange.usage or {})
    assert truth["cache_write_tokens"] > 0
    assert usage_of(row, truth) == truth
    assert (row["provider"], row["request_model"]) == ("aws.bedrock", BEDROCK_MODEL)
    assert row["response_model"] == "claude-haiku-4-5-20251001"
    assert (row["priced"], row["priced_provider"]) == (True, "aws")
    assert Decimal(row["cost_usd"]) == anthropic_price(exchange.usage or {}, BEDROCK_MODEL, "aws", row) > 0


async def test_async_bedrock_invoke(server: LocalModelServer, calls: Calls) -> None:
    client = anthropic.AsyncAnthropicBedrock(api_key="test", aws_region="eu-west-1", base_url=server.url, max_retries=0)
    async with client:
        await client.messages.create(model=BEDROCK_MODEL, max_tokens=64, messages=user("[[reply:async]]"))

    (row,) = calls()
    truth = anthropic_truth(server.requests[0].usage or {})
    assert usage_of(row, truth) == truth
    assert (row["provider"], row["priced_provider"]) == ("aws.bedrock", "aws")


# --- Anthropic on Google Vertex AI ------------------------------------------------------


def _vertex(server: LocalModelServer) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region="us-east5", project_id="proj", access_token="test", base_url=server.url + "/v1", max_retries=0
    )


def test_vertex_raw_predict_is_priced_under_google(server: LocalModelServer, calls: Calls) -> None:
    with _vertex(server) as client:
        client.messages.create(model=VERTEX_MODEL, max_tokens=64, messages=user("[[reply:from vertex]]"))

    (exchange,) = server.requests
    assert (
        exchange.path == f"/v1/projects/proj/locations/us-east5/publishers/anthropic/models/{VERTEX_MODEL}:rawPredict"
    )
    assert isinstance(exchange.request_body["anthropic_version"], str) and "model" not in exchange.request_body
    (row,) = calls()
    truth = anthropic_truth(exchange.usage or {})
    assert usage_of(row, truth) == truth
    assert (row["provider"], row["request_model"]) == ("gcp.vertex_ai", VERTEX_MODEL)
    assert row["response_model"] == "claude-haiku-4-5-20251001"
    assert (row["priced"], row["priced_provider"]) == (True, "google")
    assert Decimal(row["cost_usd"]) == anthropic_price(exchange.usage or {}, VERTEX_MODEL, "google", row) > 0


def test_vertex_stream_raw_predict(server: LocalModelServer, calls: Calls) -> None:
    with _vertex(server) as client:
        with client.messages.stream(model=VERTEX_MODEL, max_tokens=64, messages=user("[[reply:x y z]]")) as stream:
            text = "".join(stream.text_stream)

    assert text == "x y z"
    (exchange,) = server.requests
    assert exchange.path.endswith(f"/models/{VERTEX_MODEL}:streamRawPredict")
    (row,) = calls()
    truth = anthropic_truth(exchange.usage or {})
    assert usage_of(row, truth) == truth
    assert (row["provider"], row["stream"], row["stream_complete"]) == ("gcp.vertex_ai", True, True)
    assert Decimal(row["cost_usd"]) == anthropic_price(exchange.usage or {}, VERTEX_MODEL, "google", row) > 0


async def test_async_vertex_create_stream(server: LocalModelServer, calls: Calls) -> None:
    client = anthropic.AsyncAnthropicVertex(
        region="europe-west1", project_id="proj", access_token="test", base_url=server.url + "/v1", max_retries=0
    )
    async with client:
        stream = await client.messages.create(model=VERTEX_MODEL, max_tokens=64, messages=user("s"), stream=True)
        kinds = [event.type async for event in stream]

    assert kinds[-1] == "message_stop"
    (row,) = calls()
    assert (row["provider"], row["priced_provider"], row["stream_complete"]) == ("gcp.vertex_ai", "google", True)


# --- Anthropic tool loop with cache_control breakpoints --------------------------------


def test_tool_loop_with_cache_breakpoints_is_priced_with_write_premium_and_read_discount(
    server: LocalModelServer, calls: Calls
) -> None:
    """Tools and system carry breakpoints; each turn reads the cached prefix and writes its new tail."""
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]  # breakpoint 2
    messages: list[Any] = user('[[tool:lookup {"q": "first"}]]')
    replies = ['[[tool:fetch {"url": "https://example.test"}]]', "[[reply:all done]]"]
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as client:
        for step in range(3):
            answer = client.messages.create(
                model=ANTHROPIC_MODEL, max_tokens=64, system=system, tools=TOOLS, messages=messages
            )
            if answer.stop_reason != "tool_use":
                break
            tool_use = answer.content[-1]
            messages.append({"role": "assistant", "content": [block.model_dump() for block in answer.content]})
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": tool_use.id,  # type: ignore[union-attr]
                "content": replies[step],
                "cache_control": {"type": "ephemeral"},  # breakpoint 3: the growing conversation
            }
            messages.append({"role": "user", "content": [result]})

    rows = calls()
    assert [row["finish_reasons"] for row in rows] == ['["tool_use"]', '["tool_use"]', '["end_turn"]']
    assert len(server.requests) == 3
    truths = [exchange.usage or {} for exchange in server.requests]
    assert truths[0]["cache_read_input_tokens"] == 0 and truths[0]["cache_creation_input_tokens"] > 0
    assert all(t["cache_read_input_tokens"] > 0 and t["cache_creation_input_tokens"] > 0 for t in truths[1:])
    for row, usage in zip(rows, truths, strict=True):
        expected = anthropic_truth(usage)
        assert usage_of(row, expected) == expected
        assert row["cache_write_5m_tokens"] == usage["cache_creation_input_tokens"]
        assert row["cache_breakpoints"] >= 2
        cost = Decimal(row["cost_usd"])
        assert cost == anthropic_price(usage, ANTHROPIC_MODEL, "anthropic", row) > 0
        # The same tokens without the cache: writes cost more (premium), reads less (discount).
        plain = {"input_tokens": expected["input_tokens"], "output_tokens": usage["output_tokens"]}
        no_cache = anthropic_price(plain, ANTHROPIC_MODEL, "anthropic", row)
        write_share = Decimal(usage["cache_creation_input_tokens"]) * Decimal("0.25")  # 1.25x on writes
        read_saving = Decimal(usage["cache_read_input_tokens"]) * Decimal("0.9")  # 0.1x on reads
        rate = Decimal(1) / 1_000_000  # claude-haiku-4-5: $1 per million uncached input tokens
        assert cost == no_cache + (write_share - read_saving) * rate


def test_client_class_names_decide_the_provider_when_the_sdk_does_not_say() -> None:
    from agentprof.integrations.anthropic import provider_for_client_type

    class AnthropicVertex:  # an older SDK's class: no `_gen_ai_provider_name`
        pass

    class MyVertex(AnthropicVertex):
        pass

    assert provider_for_client_type(MyVertex) == "gcp.vertex_ai"
    assert provider_for_client_type(anthropic.AnthropicBedrock) == "aws.bedrock"
    assert provider_for_client_type(anthropic.AsyncAnthropic) == "anthropic"


def test_bedrock_global_inference_profile_is_priced_by_the_requested_id(server: LocalModelServer, calls: Calls) -> None:
    profile = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"  # not the regional price
    with _bedrock(server) as client:
        message = client.messages.create(model=profile, max_tokens=64, messages=user("[[reply:global]]"))
    assert not message.model.startswith("global.")  # the answer names Anthropic's model, not the profile
    (row,) = calls()
    usage = server.requests[0].usage or {}
    assert Decimal(row["cost_usd"]) == anthropic_price(usage, profile, "aws", row) > 0
    regional = anthropic_price(usage, "anthropic.claude-sonnet-4-5-20250929-v1:0", "aws", row)
    assert Decimal(row["cost_usd"]) != regional


def test_bedrock_streams_in_aws_event_stream_framing(server: LocalModelServer, calls: Calls) -> None:
    with _bedrock(server) as client:
        stream = client.messages.create(
            model=BEDROCK_MODEL, max_tokens=64, messages=user("[[chunks:4]][[reply:one two three four]]"), stream=True
        )
        kinds = [event.type for event in stream]
        with client.messages.stream(model=BEDROCK_MODEL, max_tokens=64, messages=user("[[reply:helper]]")) as helper:
            text = helper.get_final_text()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
    assert text == "helper"
    assert [exchange.path for exchange in server.requests] == [
        f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"
    ] * 2
    rows = calls()
    assert len(rows) == 2
    for row, exchange in zip(rows, server.requests, strict=True):
        truth = anthropic_truth(exchange.usage or {})
        assert usage_of(row, truth) == truth
        assert (row["provider"], row["stream"], row["stream_complete"]) == ("aws.bedrock", True, True)
        assert row["ttft_ms"] is not None
        assert Decimal(row["cost_usd"]) == anthropic_price(exchange.usage or {}, BEDROCK_MODEL, "aws", row) > 0


async def test_async_bedrock_stream_closed_early_is_incomplete_and_unpriced(
    server: LocalModelServer, calls: Calls
) -> None:
    client = anthropic.AsyncAnthropicBedrock(api_key="test", aws_region="us-east-1", base_url=server.url, max_retries=0)
    async with client:
        stream = await client.messages.create(
            model=BEDROCK_MODEL, max_tokens=64, messages=user("[[chunks:6]][[reply:a b c d e f]]"), stream=True
        )
        async for _ in stream:
            break
        await stream.close()
    (row,) = calls()
    assert (row["stream_complete"], row["usage_known"], row["cost_usd"]) == (False, False, None)
