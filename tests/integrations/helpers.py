"""Helpers for the integration tests: messages and ground-truth usage computed independently."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

ANTHROPIC_MODEL = "claude-haiku-4-5"
OPENAI_MODEL = "gpt-4o"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def openai_truth(usage: dict[str, Any]) -> dict[str, int]:
    """The canonical numbers for an OpenAI usage dict, computed independently of the integration."""
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "cache_read_tokens": prompt_details.get("cached_tokens") or 0,
        "reasoning_tokens": completion_details.get("reasoning_tokens") or 0,
    }


def anthropic_truth(usage: dict[str, Any]) -> dict[str, Any]:
    """Canonical numbers for an Anthropic usage dict: input includes cache reads and writes."""
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    creation = usage.get("cache_creation") or {}
    return {
        "input_tokens": usage["input_tokens"] + read + write,
        "output_tokens": usage["output_tokens"],
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "cache_write_5m_tokens": creation.get("ephemeral_5m_input_tokens"),
        "cache_write_1h_tokens": creation.get("ephemeral_1h_input_tokens"),
    }


def usage_of(row: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    return {key: row.get(key) for key in keys}


def of_kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The spool rows of one kind (``task``, ``step``, ``model_call``)."""
    return [row for row in rows if row["kind"] == kind]


def steps_by_path(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Step rows keyed by their ``outer/inner`` path (each path recorded once)."""
    steps = of_kind(rows, "step")
    by_path = {row["step_path"]: row for row in steps}
    assert len(by_path) == len(steps), "a step was recorded twice"
    return by_path


def call_places(rows: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """``(task, step, step path)`` of every model call, in order."""
    return [(row["task_name"], row["step_name"], row["step_path"]) for row in of_kind(rows, "model_call")]


def assert_openai_calls_match_server(rows: list[dict[str, Any]], requests: list[Any], model: str) -> None:
    """Every HTTP request recorded exactly once, with the server's tokens and genai-prices' own cost."""
    from genai_prices import Usage, calc_price

    calls = of_kind(rows, "model_call")
    assert len(calls) == len(requests)
    for row, exchange in zip(calls, requests, strict=True):
        truth = openai_truth(exchange.usage or {})
        assert usage_of(row, truth) == truth
        usage = Usage(
            input_tokens=truth["input_tokens"],
            output_tokens=truth["output_tokens"],
            cache_read_tokens=truth["cache_read_tokens"],
        )
        expected = calc_price(usage, model, provider_id="openai").total_price
        assert abs(Decimal(str(row["cost_usd"])) - expected) <= expected * Decimal("1e-9")


def sent_bodies(requests: list[Any]) -> list[str]:
    """The request bodies a server saw, with its per-request tool call ids made comparable."""
    import json
    import re

    return [re.sub(r"call_agentprof\d+", "call_X", json.dumps(r.request_body, sort_keys=True)) for r in requests]
