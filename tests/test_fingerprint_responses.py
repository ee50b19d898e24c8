"""Request fingerprints of OpenAI Responses API bodies: ``instructions`` and ``input`` as system and messages."""

from __future__ import annotations

import json
from typing import Any

from agentprof._fingerprint import RequestFingerprints, fingerprint_request

RULES = "Rules of the house. " * 50


def fingerprint(body: dict[str, Any], provider: str = "openai") -> RequestFingerprints:
    result = fingerprint_request(json.dumps(body).encode(), provider)
    assert result is not None
    return result


def test_string_input_is_one_user_message_after_the_instructions() -> None:
    result = fingerprint({"model": "gpt-4o", "instructions": RULES, "input": "hello"})

    assert [(p.index, p.role) for p in result.prefixes] == [(-1, "system"), (0, "user")]
    assert result.messages == [{"role": "user", "content": "hello"}]
    assert result.prefixes[0].tokens == len(json.dumps(RULES)) // 4


def test_responses_and_chat_bodies_with_the_same_prompt_share_prefix_hashes() -> None:
    responses = fingerprint({"model": "gpt-4o", "instructions": RULES, "input": "hello"})
    system_and_messages = fingerprint(
        {"model": "gpt-4o", "system": RULES, "messages": [{"role": "user", "content": "hello"}]}
    )

    assert [p.hash for p in responses.prefixes] == [p.hash for p in system_and_messages.prefixes]
    assert responses.request != system_and_messages.request  # different bodies, different exact-cache keys


def test_item_list_input_keeps_roles_and_names_role_less_items_by_type() -> None:
    items = [
        {"role": "developer", "content": RULES},
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    tools = [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]
    result = fingerprint({"model": "gpt-4o", "input": items, "tools": tools, "tool_choice": "required"})

    assert [(p.index, p.role) for p in result.prefixes] == [
        (-2, "tools"),
        (0, "developer"),
        (1, "user"),
        (2, "function_call"),
        (3, "function_call_output"),
    ]
    assert result.tool_count == 1 and result.tool_choice == "required"
    assert result.messages == items


def test_an_agent_loop_extends_the_previous_prefix_chain() -> None:
    first = [{"role": "user", "content": "weather?"}]
    second = [*first, {"type": "function_call", "call_id": "c", "name": "weather", "arguments": "{}"}]
    before = fingerprint({"model": "gpt-4o", "instructions": RULES, "input": first})
    after = fingerprint({"model": "gpt-4o", "instructions": RULES, "input": second})

    assert [p.hash for p in after.prefixes[: len(before.prefixes)]] == [p.hash for p in before.prefixes]
    assert len(after.prefixes) == len(before.prefixes) + 1


def test_stream_flag_is_transport_and_text_format_is_the_response_format() -> None:
    schema = {"format": {"type": "json_schema", "name": "city", "schema": {"type": "object"}}}
    plain = fingerprint({"model": "gpt-4o", "input": "hi", "text": schema})
    streamed = fingerprint({"model": "gpt-4o", "input": "hi", "text": schema, "stream": True})

    assert plain.request == streamed.request
    assert plain.response_format == "json_schema"
    assert fingerprint({"model": "gpt-4o", "input": "hi"}).response_format is None


def test_embeddings_bodies_still_have_no_prefixes() -> None:
    for body in (
        {"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"},
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        {"model": "text-embedding-3-small", "input": [[1, 2, 3]]},
        {"model": "text-embedding-3-small", "input": "hello", "dimensions": 8},
    ):
        result = fingerprint(body)
        assert result.prefixes == () and result.messages is None, body


def test_chat_and_anthropic_bodies_are_unchanged_by_the_responses_shape() -> None:
    chat = fingerprint({"model": "gpt-4o", "messages": [{"role": "system", "content": RULES}], "input": "ignored"})
    anthropic = fingerprint(
        {"model": "claude", "system": RULES, "messages": [{"role": "user", "content": "hi"}]}, "anthropic"
    )

    assert [(p.index, p.role) for p in chat.prefixes] == [(0, "system")]
    assert [(p.index, p.role) for p in anthropic.prefixes] == [(-1, "system"), (0, "user")]
