"""Deterministic token accounting for the test server.

A real tokenizer would make the numbers depend on a model vocabulary and a
dependency; tests need numbers they can predict by hand instead. So a token is
four characters of *text*: ``tokens = ceil(chars / 4)`` (at least 1 for a whole
prompt or reply). Only the text a model would read counts (message text, tool
call names and arguments, tool definitions), never JSON structure such as
``"type"`` keys or ``cache_control`` markers, so adding a cache breakpoint never
changes the token count.

Each request is flattened into an ordered list of :class:`PromptBlock` (the unit
a prompt cache can match on), with a running hash of the prefix ending at every
block. Both provider modules build their blocks here so the cache simulator can
stay provider-neutral.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
"""How many characters make one token, for prompts and replies alike."""


def tokens_for_chars(chars: int) -> int:
    """Return ``ceil(chars / 4)``: the token count of ``chars`` characters (0 for 0)."""
    return -(-chars // CHARS_PER_TOKEN)


def canonical_json(value: Any) -> str:
    """Serialise ``value`` the same way every time, so equal content hashes and counts equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class PromptBlock:
    """One cacheable unit of a prompt.

    Attributes:
        material: Canonical text identifying the block (its section, role and content, without
            ``cache_control``); two blocks with the same material are the same to the cache.
        chars: How many characters of text the block contributes to the token count.
        cache_control: The block's ``cache_control`` object (Anthropic), or None.
    """

    material: str
    chars: int
    cache_control: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PromptLayout:
    """A flattened prompt: its blocks, cumulative sizes and cumulative prefix hashes.

    ``prefix_chars[i]`` and ``prefix_hashes[i]`` describe the prefix ending with block ``i``
    (inclusive). The hash is seeded with the model, so two models never share a cache entry.
    """

    blocks: tuple[PromptBlock, ...]
    prefix_chars: tuple[int, ...]
    prefix_hashes: tuple[bytes, ...]

    @property
    def total_tokens(self) -> int:
        """Input tokens of the whole prompt (at least 1, as a real API never bills 0)."""
        return max(1, tokens_for_chars(self.prefix_chars[-1] if self.prefix_chars else 0))

    def prefix_tokens(self, index: int) -> int:
        """Tokens of the prefix ending with block ``index`` (inclusive); 0 for ``index < 0``."""
        return tokens_for_chars(self.prefix_chars[index]) if index >= 0 else 0


def layout(model: str, blocks: Iterable[PromptBlock]) -> PromptLayout:
    """Compute cumulative sizes and hashes for ``blocks`` of a request to ``model``."""
    running = hashlib.blake2b(model.encode(), digest_size=16)
    frozen_blocks = tuple(blocks)
    chars: list[int] = []
    hashes: list[bytes] = []
    total = 0
    for block in frozen_blocks:
        encoded = block.material.encode()
        # Length-prefix each block so that block boundaries are part of the identity.
        running.update(len(encoded).to_bytes(8, "big"))
        running.update(encoded)
        total += block.chars
        chars.append(total)
        hashes.append(running.copy().digest())
    return PromptLayout(frozen_blocks, tuple(chars), tuple(hashes))


def _without_cache_control(block: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in block.items() if key != "cache_control"}


def anthropic_content_chars(block: Any) -> int:
    """Characters of text in one Anthropic content block (or a plain string)."""
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, Mapping):
        return len(canonical_json(block))
    kind = block.get("type")
    if kind == "text":
        return len(str(block.get("text", "")))
    if kind == "tool_use":
        return len(str(block.get("name", ""))) + len(canonical_json(block.get("input", {})))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return sum(anthropic_content_chars(item) for item in content)
        return len(str(content))
    if kind == "thinking":
        return len(str(block.get("thinking", "")))
    if kind == "redacted_thinking":
        return len(str(block.get("data", "")))
    # Images, documents and anything newer: their serialised size is a stable, if crude, proxy.
    return len(canonical_json(_without_cache_control(block)))


def anthropic_tool_chars(tool: Mapping[str, Any]) -> int:
    """Characters of a tool definition: name, description and input schema."""
    if "input_schema" not in tool:  # server tools (web search, ...) have no schema
        return len(canonical_json(_without_cache_control(tool)))
    return (
        len(str(tool.get("name", "")))
        + len(str(tool.get("description", "")))
        + len(canonical_json(tool.get("input_schema", {})))
    )


def anthropic_blocks(body: Mapping[str, Any]) -> list[PromptBlock]:
    """Flatten an Anthropic Messages request in cache order: tools, then system, then messages."""
    blocks: list[PromptBlock] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping):
            material = "tool:" + canonical_json(_without_cache_control(tool))
            blocks.append(PromptBlock(material, anthropic_tool_chars(tool), tool.get("cache_control")))
    system = body.get("system")
    if isinstance(system, str) and system:
        blocks.append(PromptBlock("system:" + canonical_json(system), len(system)))
    elif isinstance(system, list):
        for item in system:
            cache_control = item.get("cache_control") if isinstance(item, Mapping) else None
            content = _without_cache_control(item) if isinstance(item, Mapping) else item
            blocks.append(
                PromptBlock("system:" + canonical_json(content), anthropic_content_chars(item), cache_control)
            )
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role", ""))
        content = message.get("content", "")
        items = content if isinstance(content, list) else [content]
        for item in items:
            cache_control = item.get("cache_control") if isinstance(item, Mapping) else None
            plain = _without_cache_control(item) if isinstance(item, Mapping) else item
            material = f"message:{role}:" + canonical_json(plain)
            blocks.append(PromptBlock(material, anthropic_content_chars(item), cache_control))
    return blocks


def openai_message_chars(message: Mapping[str, Any]) -> int:
    """Characters of text in one Chat Completions message, including its tool calls."""
    chars = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                chars += len(str(part.get("text", "")))
            elif isinstance(part, Mapping) and part.get("type") == "refusal":
                chars += len(str(part.get("refusal", "")))
            else:
                chars += len(canonical_json(part))
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        chars += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")))
    return chars


def openai_tool_chars(tool: Mapping[str, Any]) -> int:
    """Characters of a Chat Completions tool definition: name, description and parameters."""
    function = tool.get("function")
    if not isinstance(function, Mapping):
        return len(canonical_json(tool))
    return (
        len(str(function.get("name", "")))
        + len(str(function.get("description", "")))
        + len(canonical_json(function.get("parameters", {})))
    )


def openai_blocks(body: Mapping[str, Any]) -> list[PromptBlock]:
    """Flatten a Chat Completions request into cache units: each tool definition, then each whole message."""
    blocks = [
        PromptBlock("tool:" + canonical_json(tool), openai_tool_chars(tool))
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
    ]
    blocks.extend(
        PromptBlock("message:" + canonical_json(message), openai_message_chars(message))
        for message in body.get("messages") or []
        if isinstance(message, Mapping)
    )
    return blocks
