"""Prompt-cache simulation, observed through the real SDKs' parsed usage."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from agentprof.testserver import TestServer

from .helpers import CLAUDE, GPT, FakeClock

SYSTEM = "s" * 5000  # 1250 tokens: above the 1024-token default minimum
QUESTION = "What now?"  # 9 characters


def cached_system(text: str = SYSTEM, **cache_control: Any) -> list[Any]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", **cache_control}}]


def usage_tuple(message: anthropic.types.Message) -> tuple[int, int, int]:
    usage = message.usage
    return usage.input_tokens, usage.cache_creation_input_tokens or 0, usage.cache_read_input_tokens or 0


def ask(client: anthropic.Anthropic, system: Any = None, model: str = CLAUDE, **kwargs: Any) -> anthropic.types.Message:
    message: anthropic.types.Message = client.messages.create(
        model=model,
        max_tokens=20,
        system=cached_system() if system is None else system,
        messages=[{"role": "user", "content": QUESTION}],
        **kwargs,
    )
    return message


def test_anthropic_write_then_read_within_ttl(server: TestServer, anthropic_client: anthropic.Anthropic) -> None:
    total = -(-(len(SYSTEM) + len(QUESTION)) // 4)
    first = ask(anthropic_client)
    assert usage_tuple(first) == (total - 1250, 1250, 0)
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 1250
    second = ask(anthropic_client)
    assert usage_tuple(second) == (total - 1250, 0, 1250)
    assert [exchange.usage for exchange in server.requests] == [
        first.usage.model_dump(exclude_none=True),
        second.usage.model_dump(exclude_none=True),
    ]


def test_anthropic_ttl_expiry_and_refresh(clock: FakeClock, anthropic_client: anthropic.Anthropic) -> None:
    ask(anthropic_client)
    clock.advance(299)
    assert usage_tuple(ask(anthropic_client))[2] == 1250  # hit, which refreshes the 5 minutes
    clock.advance(299)
    assert usage_tuple(ask(anthropic_client))[2] == 1250
    clock.advance(301)
    assert usage_tuple(ask(anthropic_client))[1:] == (1250, 0)  # expired: written again


def test_anthropic_one_hour_ttl(clock: FakeClock, anthropic_client: anthropic.Anthropic) -> None:
    first = ask(anthropic_client, cached_system(ttl="1h"))
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 1250
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 0
    clock.advance(3000)
    assert usage_tuple(ask(anthropic_client, cached_system(ttl="1h")))[2] == 1250
    clock.advance(3601)
    assert usage_tuple(ask(anthropic_client, cached_system(ttl="1h")))[1:] == (1250, 0)


def test_anthropic_below_minimum_caches_nothing(anthropic_client: anthropic.Anthropic) -> None:
    short = cached_system("s" * 4000)  # 1000 tokens < 1024
    for _ in range(2):
        message = ask(anthropic_client, short)
        assert usage_tuple(message) == (-(-(4000 + len(QUESTION)) // 4), 0, 0)


def test_anthropic_minimum_depends_on_the_model(anthropic_client: anthropic.Anthropic) -> None:
    long = cached_system("s" * 10000)  # 2500 tokens: enough for Sonnet, not for Haiku 4.5 or Opus 4.6 (4096)
    assert usage_tuple(ask(anthropic_client, long, model=CLAUDE))[1] == 2500
    assert usage_tuple(ask(anthropic_client, long, model="claude-haiku-4-5"))[1:] == (0, 0)
    assert usage_tuple(ask(anthropic_client, long, model="claude-opus-4-6"))[1:] == (0, 0)


def test_anthropic_cache_is_per_model(anthropic_client: anthropic.Anthropic) -> None:
    ask(anthropic_client)
    assert usage_tuple(ask(anthropic_client, model="claude-opus-4-1"))[1:] == (1250, 0)


def test_anthropic_breakpoints_on_tools_and_system(anthropic_client: anthropic.Anthropic) -> None:
    tools: Any = [
        {
            "name": "search",
            "description": "d" * 4400,
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    tool_tokens = -(-(len("search") + 4400 + len('{"type":"object"}')) // 4)
    prefix_tokens = -(-(len("search") + 4400 + len('{"type":"object"}') + len(SYSTEM)) // 4)
    first = ask(anthropic_client, tools=tools)
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == tool_tokens
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == prefix_tokens - tool_tokens
    changed_system = ask(anthropic_client, cached_system("t" * 5000), tools=tools)
    assert usage_tuple(changed_system)[1:] == (prefix_tokens - tool_tokens, tool_tokens)


def test_anthropic_moving_breakpoint_uses_lookback(anthropic_client: anthropic.Anthropic) -> None:
    def turn(messages: list[Any]) -> anthropic.types.Message:
        return anthropic_client.messages.create(model=CLAUDE, max_tokens=20, messages=messages)

    def cached(text: str) -> Any:
        return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}

    first = turn([{"role": "user", "content": [cached(SYSTEM)]}])
    assert usage_tuple(first) == (0, 1250, 0)
    second = turn(
        [
            {"role": "user", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [cached("more")]},
        ]
    )
    assert usage_tuple(second) == (0, 2, 1250)  # 5006 characters = 1252 tokens, 1250 of them read


def test_anthropic_automatic_caching(anthropic_client: anthropic.Anthropic) -> None:
    system = "s" * 5000
    total = -(-(len(system) + len(QUESTION)) // 4)
    first = ask(anthropic_client, system, cache_control={"type": "ephemeral"})
    assert usage_tuple(first) == (0, total, 0)
    assert usage_tuple(ask(anthropic_client, system, cache_control={"type": "ephemeral"})) == (0, 0, total)


def test_anthropic_too_many_breakpoints(anthropic_client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        ask(anthropic_client, cached_system("a") * 5)


def test_caching_can_be_disabled(clock: FakeClock) -> None:
    with (
        TestServer(prompt_cache=False, clock=clock) as server,
        anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="t", max_retries=0) as client,
        openai.OpenAI(base_url=server.openai_base_url, api_key="t", max_retries=0) as oai,
    ):
        assert usage_tuple(ask(client)) == usage_tuple(ask(client))
        assert usage_tuple(ask(client))[1:] == (0, 0)
        for _ in range(2):
            completion = oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x" * 8000}])
            assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
            assert completion.usage.prompt_tokens_details.cached_tokens == 0


def chat(client: openai.OpenAI, *messages: Any, model: str = GPT) -> tuple[int, int]:
    completion = client.chat.completions.create(model=model, messages=list(messages))
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens or 0


def system(chars: int) -> Any:
    return {"role": "system", "content": "p" * chars}


def question(text: str) -> Any:
    return {"role": "user", "content": text}


def test_openai_prefix_cached_in_128_token_increments(server: TestServer, openai_client: openai.OpenAI) -> None:
    assert chat(openai_client, system(6000), question("q1")) == (1501, 0)
    assert chat(openai_client, system(6000), question("q2")) == (1501, 1408)  # 1500 tokens of system, floored to 128s
    assert chat(openai_client, system(6000), question("q2")) == (1501, 1408)  # identical: 1501 floored is 1408 too
    assert server.requests[-1].usage is not None
    assert server.requests[-1].usage["prompt_tokens_details"]["cached_tokens"] == 1408


def test_openai_matches_whole_leading_messages(openai_client: openai.OpenAI) -> None:
    history = [system(4000), question("a" * 1000), {"role": "assistant", "content": "b" * 1000}]
    chat(openai_client, *history, question("first"))
    # 6000 characters of shared history = 1500 tokens; a changed message ends the match
    assert chat(openai_client, *history, question("second"))[1] == 1408
    assert chat(openai_client, system(4000), question("z" * 1000), question("q"))[1] == 0


def test_openai_short_prompts_and_short_prefixes_are_not_cached(openai_client: openai.OpenAI) -> None:
    for _ in range(2):
        assert chat(openai_client, system(2000), question("q"))[1] == 0  # 501 tokens < 1024
    assert chat(openai_client, system(2000), question("x" * 4000))[1] == 0
    assert chat(openai_client, system(2000), question("y" * 4000))[1] == 0  # shared prefix is only 500 tokens


def test_openai_cache_expires_after_ten_minutes(clock: FakeClock, openai_client: openai.OpenAI) -> None:
    chat(openai_client, system(6000), question("q"))
    clock.advance(599)
    assert chat(openai_client, system(6000), question("q"))[1] == 1408
    clock.advance(599)
    assert chat(openai_client, system(6000), question("q"))[1] == 1408  # the hit refreshed it
    clock.advance(601)
    assert chat(openai_client, system(6000), question("q"))[1] == 0
    assert chat(openai_client, system(6000), question("q"), model="gpt-4.1")[1] == 0  # per model


def test_reset_clears_the_cache(server: TestServer, openai_client: openai.OpenAI) -> None:
    chat(openai_client, system(6000), question("q"))
    server.reset()
    assert chat(openai_client, system(6000), question("q"))[1] == 0
