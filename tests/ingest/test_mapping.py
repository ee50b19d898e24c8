"""Spans of each instrumentation family, as protobuf requests, mapped to spool rows.

Attribute names come from the research notes (``otel_genai.md`` §1-§2). Every request goes
through the real protobuf encoding and the receiver's decoder.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from agentprof._records import SPOOL_COLUMNS
from agentprof._spool import SpoolWriter
from agentprof.ingest import TraceMapper, decode_protobuf
from agentprof.store import open_store
from tests.ingest.helpers import S, request, sid


def rows_of(spans: list[S], **kwargs: Any) -> list[dict[str, Any]]:
    decoded = decode_protobuf(request(spans, **kwargs).SerializeToString())
    return [{key: row.get(key) for key in SPOOL_COLUMNS} for row in TraceMapper().map_spans(decoded.spans).rows]


def calls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["kind"] == "model_call"]


def tokens(row: dict[str, Any]) -> tuple[int, ...]:
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    return tuple(row[key] for key in keys)


def test_otel_genai_current_names() -> None:
    [call] = rows_of(
        [
            S(
                1,
                None,
                "chat claude-sonnet-4-5",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-5",
                    "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                    "gen_ai.usage.input_tokens": 5000,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 3000,
                    "gen_ai.usage.cache_write.input_tokens": 1000,
                    "gen_ai.usage.reasoning.output_tokens": 120,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.response.id": "msg_1",
                    "gen_ai.request.stream": True,
                    "gen_ai.response.time_to_first_chunk": 0.25,
                    "server.address": "api.anthropic.com",
                },
            )
        ]
    )
    assert tokens(call) == (5000, 300, 3000, 1000, 120)
    assert (call["provider"], call["task_name"], call["step_name"]) == ("anthropic", "(untracked)", "(untracked)")
    assert call["stream"] is True and call["ttft_ms"] == 250.0 and json.loads(call["finish_reasons"]) == ["stop"]
    assert call["priced"] is True and Decimal(call["cost_usd"]) > 0 and call["price_source"] == "genai-prices"


def test_otel_genai_legacy_names() -> None:
    [call] = rows_of(
        [
            S(
                1,
                None,
                "chat gpt-4o",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "OpenAI",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.prompt_tokens": 800,
                    "gen_ai.usage.completion_tokens": 50,
                    "gen_ai.usage.cache_creation.input_tokens": 0,
                },
            )
        ]
    )
    assert tokens(call) == (800, 50, 0, 0, 0) and call["provider"] == "openai" and call["priced"] is True


def test_openinference_agent_chain_and_llm_with_messages() -> None:
    llm = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.token_count.prompt": 1200,
        "llm.token_count.completion": 80,
        "llm.token_count.total": 1280,
        "llm.token_count.prompt_details.cache_read": 1024,
        "llm.token_count.completion_details.reasoning": 0,
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You are terse.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "hello",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "hi",
        "llm.cost.total": 0.5,
    }
    rows = rows_of(
        [
            S(1, None, "Agent", {"openinference.span.kind": "AGENT", "agent.name": "triage"}),
            S(2, 1, "RunnableSequence", {"openinference.span.kind": "CHAIN"}),
            S(3, 2, "ChatOpenAI", llm),
            S(4, 2, "search", {"openinference.span.kind": "TOOL", "tool.name": "web_search"}),
        ],
        scope="openinference.instrumentation.langchain",
    )
    kinds = [(row["kind"], row["task_name"], row["step_name"], row["step_kind"]) for row in rows]
    assert kinds == [
        ("task", "triage", None, None),
        ("step", "triage", "RunnableSequence", "step"),
        ("model_call", "triage", "RunnableSequence", "step"),
        ("step", "triage", "web_search", "tool"),
    ]
    call = rows[2]
    assert tokens(call) == (1200, 80, 1024, 0, 0) and call["request_model"] == "gpt-4o-mini"
    assert call["price_source"] == "genai-prices"  # our own price, not the provided 0.5
    assert call["request_fingerprint"] and len(json.loads(call["prefix_fingerprints"])) == 2
    assert call["output_chars"] == 2 and call.get("input_messages") is None  # content itself is not stored


def test_openllmetry_legacy_workflow_task_and_flattened_prompts() -> None:
    rows = rows_of(
        [
            S(1, None, "plan_trip.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "plan_trip"}),
            S(2, 1, "pick_city.task", {"traceloop.span.kind": "task", "traceloop.entity.name": "pick_city"}),
            S(
                3,
                2,
                "openai.chat",
                {
                    "llm.request.type": "chat",
                    "gen_ai.system": "OpenAI",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.prompt_tokens": 400,
                    "gen_ai.usage.completion_tokens": 40,
                    "gen_ai.usage.cache_read_input_tokens": 128,
                    "llm.usage.total_tokens": 440,
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": "Where to?",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "Lisbon",
                },
            ),
        ]
    )
    [call] = calls(rows)
    assert tokens(call) == (400, 40, 128, 0, 0) and call["provider"] == "openai"
    assert (call["task_name"], call["step_name"], call["step_path"]) == ("plan_trip", "pick_city", "pick_city")
    assert call["request_fingerprint"] and call["output_chars"] == len("Lisbon")


def test_openllmetry_current_reasoning_tokens() -> None:
    [call] = rows_of(
        [
            S(
                1,
                None,
                "openai.chat",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "o3-mini",
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 900,
                    "gen_ai.usage.reasoning_tokens": 700,
                    "gen_ai.usage.total_tokens": 1000,
                    "gen_ai.is_streaming": False,
                },
            )
        ]
    )
    assert tokens(call) == (100, 900, 0, 0, 700) and call["stream"] is False


def test_pydantic_ai_aggregate_and_nested_sdk_span_count_once() -> None:
    usage = {"gen_ai.usage.input_tokens": 2000, "gen_ai.usage.output_tokens": 200}
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    rows = rows_of(
        [
            S(
                1,
                None,
                "invoke_agent weather",
                {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather", "model_name": "gpt-4o"}
                | usage,  # pydantic-ai v1 repeats its children's usage on the agent run
            ),
            S(
                2,
                1,
                "chat gpt-4o",
                chat
                | usage
                | {
                    "operation.cost": 0.007,
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                    ),
                },
            ),
            S(3, 2, "chat gpt-4o", chat | usage | {"gen_ai.response.id": "chatcmpl-1"}),  # the SDK's own span
            S(4, 3, "POST", {"http.request.method": "POST"}),
            S(
                5,
                1,
                "execute_tool get_weather",
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
            ),
        ],
        scope="pydantic-ai",
    )
    [call] = calls(rows)
    assert call["span_id"] == sid(3) and call["parent_span_id"] == sid(1)  # innermost kept, re-parented
    assert tokens(call)[:2] == (2000, 200) and call["task_name"] == "weather" and call["step_name"] == "(task)"
    assert call["request_fingerprint"]  # the wrapper's content still fingerprints the call
    assert {row["span_id"] for row in rows} == {sid(1), sid(3), sid(5)}


def test_an_outer_llm_span_with_usage_wins_over_inner_spans_without() -> None:
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
    rows = rows_of(
        [
            S(1, None, "chain", {}),
            S(2, 1, "chat gpt-4o", chat | {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1}),
            S(3, 2, "openai.chat", chat),
        ]
    )
    [call] = calls(rows)
    assert call["span_id"] == sid(2) and call["input_tokens"] == 10


def test_an_unpriced_model_uses_the_provided_cost() -> None:
    [call] = rows_of(
        [
            S(
                1,
                None,
                "chat house-model",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "acme",
                    "gen_ai.request.model": "house-model-7",
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 5,
                    "operation.cost": 0.0125,
                },
            )
        ],
        scope="logfire",
    )
    assert call["priced"] is True and Decimal(call["cost_usd"]) == Decimal("0.0125")
    assert call["price_source"] == "provided" and call["unpriced_reason"] is None


def test_openlit_json_messages_share_a_prefix() -> None:
    system = [{"type": "text", "content": "You are a helpful travel agent. " * 20}]

    def call(n: int, question: str) -> S:
        messages = [{"role": "user", "parts": [{"type": "text", "content": question}]}]
        return S(
            n,
            1,
            "chat gpt-4o",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 300,
                "gen_ai.usage.output_tokens": 20,
                "gen_ai.usage.cost": 0.001,
                "gen_ai.client.token.usage": 320,
                "gen_ai.system_instructions": json.dumps(system),
                "gen_ai.input.messages": json.dumps(messages),
            },
        )

    first, second = calls(rows_of([S(1, None, "app", {}), call(2, "Lisbon?"), call(3, "Porto?")]))
    prefixes = [json.loads(row["prefix_fingerprints"]) for row in (first, second)]
    assert prefixes[0][0] == prefixes[1][0] and prefixes[0][1] != prefixes[1][1]  # same system, other question
    assert first["request_fingerprint"] != second["request_fingerprint"]
    assert first["task_name"] == "app"


def test_mlflow_json_encoded_values() -> None:
    rows = rows_of(
        [
            S(1, None, "agent", {"mlflow.spanType": json.dumps("AGENT")}),
            S(
                2,
                1,
                "ChatOpenAI",
                {
                    "mlflow.spanType": json.dumps("CHAT_MODEL"),
                    "mlflow.llm.model": json.dumps("gpt-4o"),
                    "mlflow.llm.provider": json.dumps("openai"),
                    "mlflow.chat.tokenUsage": json.dumps(
                        {"input_tokens": 700, "output_tokens": 70, "total_tokens": 770}
                    ),
                    "mlflow.spanInputs": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
                    "mlflow.spanOutputs": json.dumps("hello"),
                },
            ),
        ]
    )
    [call] = calls(rows)
    assert tokens(call)[:2] == (700, 70) and call["request_model"] == "gpt-4o" and call["provider"] == "openai"
    assert call["task_name"] == "agent" and call["request_fingerprint"] and call["output_chars"] == 5


def test_langfuse_generation_with_usage_details() -> None:
    [call] = rows_of(
        [
            S(
                1,
                None,
                "generation",
                {
                    "langfuse.observation.type": "generation",
                    "langfuse.observation.model.name": "gpt-4o",
                    "langfuse.observation.usage_details": json.dumps({"input": 90, "output": 9}),
                },
            )
        ]
    )
    assert tokens(call)[:2] == (90, 9)


def test_the_usage_fallback_skips_aggregates() -> None:
    usage = {"model": "x", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 50}
    rows = rows_of([S(1, None, "run", usage), S(2, 1, "llm", usage | {"gen_ai.usage.output_tokens": 5})])
    [call] = calls(rows)
    assert call["span_id"] == sid(2) and rows[0]["kind"] == "task"


def test_anthropic_exclusive_input_is_made_inclusive() -> None:
    [call] = rows_of(
        [
            S(
                1,
                None,
                "anthropic.chat",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "Anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-5",
                    "gen_ai.usage.input_tokens": 10,  # raw Anthropic count, without the cache
                    "gen_ai.usage.output_tokens": 5,
                    "gen_ai.usage.cache_read_input_tokens": 2000,
                },
            )
        ]
    )
    assert tokens(call)[:3] == (2010, 5, 2000)


def test_unknown_usage_is_unpriced_not_zero() -> None:
    [call] = rows_of([S(1, None, "chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})])
    assert call["usage_known"] is False and call["priced"] is False and call["cost_usd"] is None


def test_a_provider_that_is_not_a_string_is_dropped_not_a_crash() -> None:
    # Found by test_fuzz: an agentprof span received with a list for gen_ai.system raised TypeError.
    attributes = {"agentprof.kind": "model_call", "gen_ai.system": ["openai"], "gen_ai.request.model": "gpt-4o"}
    [call] = rows_of([S(1, None, "chat gpt-4o", attributes)])
    assert call["provider"] is None and call["request_model"] == "gpt-4o" and call["priced"] is False


def test_agentprof_spans_bring_their_fingerprints_and_wrong_types_are_ignored() -> None:
    # What the OTLP tee adds to agentprof's own model-call spans (agentprof._otlp.with_analysis).
    attributes = {
        "agentprof.kind": "model_call",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "agentprof.request.fingerprint": "f" * 32,
        "agentprof.request.prefix_fingerprints": '[{"hash":"ab","tokens":3,"index":0,"role":"user"}]',
        "agentprof.request.tool_count": 2,
        "agentprof.request.tool_choice": "auto",
        "agentprof.output.hash": ["not", "a", "hash"],  # another type: ignored
        "agentprof.output.chars": True,  # a bool is not a count
    }
    [call] = rows_of([S(1, None, "chat gpt-4o", attributes)])
    assert (call["request_fingerprint"], call["tool_count"], call["tool_choice"]) == ("f" * 32, 2, "auto")
    assert json.loads(call["prefix_fingerprints"])[0]["hash"] == "ab"
    assert call["output_hash"] is None and call["output_chars"] is None and call["response_format"] is None


def test_error_status_and_resource_pid() -> None:
    rows = rows_of(
        [S(1, None, "agent run", {"agent_name": "a"}, error=True)], resource={"process.pid": 4242}, service="api"
    )
    assert (rows[0]["status"], rows[0]["pid"], rows[0]["service_name"], rows[0]["task_name"]) == (
        "error",
        4242,
        "api",
        "a",
    )


def test_rows_load_into_a_real_store(tmp_path: Path) -> None:
    rows = rows_of(
        [
            S(1, None, "invoke_agent a", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}),
            S(
                2,
                1,
                "chat gpt-4o",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1_000_000,
                    "gen_ai.usage.output_tokens": 0,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.request.temperature": 0.2,
                },
            ),
        ]
    )
    SpoolWriter(tmp_path / "store" / "spool").write_segment(rows)
    with open_store(str(tmp_path / "store")) as store, store.engine.connect() as conn:
        total = conn.execute(text("SELECT sum(cost_usd), count(*) FROM model_calls WHERE task_name = 'a'")).one()
        tasks = conn.execute(text("SELECT name FROM tasks")).scalars().all()
    assert total[1] == 1 and total[0] == Decimal("2.5") and tasks == ["a"]  # gpt-4o: $2.50 per M input
