"""Received calls' fingerprints equal those of the rebuilt request body, however they are computed.

:class:`FingerprintCache` summarises messages without serialising the body and reuses what earlier
calls had; the reference is ``fingerprint_full(request_body(...))``, the parse of the body that the
receiver used to serialise.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentprof._fingerprint_facts import RequestFingerprints, fingerprint_full
from agentprof.ingest import _content
from agentprof.ingest._fingerprints import FingerprintCache
from agentprof.ingest._prepare import JsonCache, prepare
from agentprof.ingest._traces import TraceMapper
from tests.ingest.helpers import S

SYSTEM = [{"type": "text", "content": "You are a careful support agent. " * 40}]
TOOLS = [
    {"type": "function", "name": "search", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
    {"type": "function", "name": "lookup", "cache_control": {"type": "ephemeral"}},
]


def reference(attributes: dict[str, Any], model: str | None, provider: str) -> RequestFingerprints | None:
    body = _content.request_body(attributes, model)
    return None if body is None else fingerprint_full(body, provider)


def same(cache: FingerprintCache, raw: dict[str, Any], model: str | None = "gpt-4o", provider: str = "openai") -> None:
    attributes = prepare(raw, JsonCache())
    got = cache.request_fingerprints(attributes, model, provider)
    want = reference(attributes, model, provider)
    assert got == want
    if want is not None:
        assert got is not None and got.prefixes_json == want.prefixes_json


FAMILIES: list[dict[str, Any]] = [
    {  # OTel GenAI, current: JSON text with parts, tools with a cache_control marker
        "gen_ai.system_instructions": json.dumps(SYSTEM),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "héllo ✓"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "search"}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
            ]
        ),
        "gen_ai.tool.definitions": json.dumps(TOOLS),
    },
    {"gen_ai.system_instructions": "plain text system", "gen_ai.input.messages": "[]"},
    {  # OpenLLMetry, flattened
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "hi",
        "gen_ai.prompt.1.tool_call_id": "x",
    },
    {  # OpenInference, flattened under message.
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "What is 2+2?",
        "llm.input_messages.1.message.role": "assistant",
        "llm.input_messages.1.message.content": "4",
    },
    {"mlflow.spanInputs": json.dumps({"messages": [{"role": "user", "content": "q", "name": "n"}]})},
    {"langfuse.observation.input": json.dumps([{"role": "user", "content": [{"type": "text", "text": "x"}]}])},
    {"gen_ai.input.messages": json.dumps([{"role": "user", "content": "a", "cache_control": {"type": "ephemeral"}}])},
    {"gen_ai.usage.input_tokens": 5},  # no content: no fingerprint
]


def test_every_family_matches_the_rebuilt_body() -> None:
    cache = FingerprintCache()
    for _ in range(2):  # the second round is served from what the first one remembered
        for raw in FAMILIES:
            same(cache, raw)
            same(cache, raw, model=None, provider="")


def test_an_agent_loop_reuses_its_prefix_and_still_matches() -> None:
    cache = FingerprintCache()
    history: list[dict[str, Any]] = []
    for turn in range(12):
        history.append({"role": "user", "parts": [{"type": "text", "content": f"question {turn}"}]})
        raw = {
            "gen_ai.system_instructions": json.dumps(SYSTEM),
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.tool.definitions": json.dumps(TOOLS),
        }
        same(cache, raw)
        same(cache, raw, model="gpt-4o-mini")  # another model: another chain, same messages
        history.append({"role": "assistant", "parts": [{"type": "text", "content": f"answer {turn}"}]})


def test_a_full_cache_is_emptied_and_stays_correct() -> None:
    cache = FingerprintCache(max_chars=3000)
    for turn in range(20):
        messages = [{"role": "user", "content": f"{turn} " + "x" * 700}, {"role": "user", "content": "y"}]
        same(cache, {"gen_ai.input.messages": json.dumps(messages)})
    assert cache._chars <= 3000


texts = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
messages = st.lists(
    st.one_of(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": texts}),
        st.dictionaries(st.sampled_from(["role", "content", "type", "cache_control", "parts"]), json_values),
    ),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(conversations=st.lists(messages, min_size=1, max_size=4), tools=st.none() | st.lists(json_values, max_size=2))
def test_any_messages_match_the_rebuilt_body(conversations: list[list[dict[str, Any]]], tools: Any) -> None:
    cache = FingerprintCache()
    for conversation in conversations:
        raw: dict[str, Any] = {"gen_ai.input.messages": json.dumps(conversation)}
        if tools is not None:
            raw["gen_ai.tool.definitions"] = json.dumps(tools)
        same(cache, raw)
        same(cache, {**raw, "gen_ai.input.messages": json.dumps(conversation + conversation)})


def test_mapped_rows_carry_what_a_body_would_give() -> None:
    call = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 2000,
        "gen_ai.usage.output_tokens": 10,
        **FAMILIES[0],
    }
    from agentprof.ingest import decode_protobuf
    from tests.ingest.helpers import request

    decoded = decode_protobuf(request([S(1, None, "chat claude", call)]).SerializeToString())
    [row] = TraceMapper().map_spans(decoded.spans).rows
    want = reference(prepare(decoded.spans[0].attributes), "claude-sonnet-4-5", "anthropic")
    assert want is not None
    assert (row["request_fingerprint"], row["prefix_fingerprints"]) == (want.request, want.prefixes_json)
    assert (row["cache_breakpoints"], row["tool_count"]) == (want.cache_breakpoints, want.tool_count) == (1, 2)
    assert "response_format" not in row and "tool_choice" not in row
