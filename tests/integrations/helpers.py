"""Helpers for the integration tests: messages and ground-truth usage computed independently."""

from __future__ import annotations

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
