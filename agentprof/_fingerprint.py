"""Fingerprints of requests and outputs: what the cache rules need, without storing text.

Runs on the exporter thread over the request body bytes the SDK already serialised. Three
things come out of a request:

* a **request fingerprint**: xxh3-128 of the canonical request (keys sorted, transport-only
  fields such as ``stream`` dropped), equal for requests a response cache could have served;
* **prefix fingerprints** at every segment boundary, in the order providers build their cache
  key (tools, then system, then each message), each chained from the previous one and seeded
  with provider and model, with the approximate token position of the boundary (characters of
  canonical JSON / 4: good enough to compare against cache minimums of 1,024+ tokens);
* the number of ``cache_control`` breakpoints (Anthropic prompt caching opt-in).

Chat Completions and Anthropic bodies carry ``messages`` (and Anthropic a top-level ``system``);
OpenAI Responses bodies carry ``instructions`` (the system prompt) and ``input``, a string (one
user message) or a list of items, which take the place of the messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import xxhash

CHARS_PER_TOKEN = 4
# Fields that change how a response is delivered or billed, not what it says.
_TRANSPORT_FIELDS = frozenset({"stream", "stream_options", "metadata", "user", "store", "service_tier"})
_EMBEDDINGS_FIELDS = frozenset({"encoding_format", "dimensions"})


@dataclass(frozen=True, slots=True)
class PrefixBoundary:
    """The cumulative prefix up to and including one segment of the request."""

    hash: str
    tokens: int
    index: int  # message index; -2 for the tool definitions, -1 for a top-level system prompt
    role: str


@dataclass(frozen=True, slots=True)
class RequestFingerprints:
    """Everything the analyses need to know about a request, without its text."""

    request: str
    prefixes: tuple[PrefixBoundary, ...]
    cache_breakpoints: int
    tool_count: int
    response_format: str | None
    tool_choice: str | None
    messages: Any  # the parsed messages, used only when content capture is on


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _count_cache_control(value: Any) -> int:
    if isinstance(value, dict):
        own = 1 if value.get("cache_control") else 0
        return own + sum(_count_cache_control(item) for item in value.values())
    if isinstance(value, list):
        return sum(_count_cache_control(item) for item in value)
    return 0


def fingerprint_request(body: bytes, provider: str) -> RequestFingerprints | None:
    """Fingerprint one serialised request body; ``None`` when it is not a JSON object."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(request, dict):
        return None
    canonical = {key: value for key, value in request.items() if key not in _TRANSPORT_FIELDS}
    request_hash = xxhash.xxh3_128_hexdigest(_canonical(canonical))

    segments: list[tuple[int, str, Any]] = []
    tools = request.get("tools")
    if tools:
        segments.append((-2, "tools", tools))
    system = request.get("system") or request.get("instructions")
    if system:
        segments.append((-1, "system", system))
    messages = request.get("messages")
    if messages is None:
        messages = _responses_input(request)
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            # A Responses item without a role (function_call, function_call_output, ...) goes by its type.
            role = message.get("role", message.get("type", "")) if isinstance(message, dict) else ""
            segments.append((index, str(role), message))

    seed = f"{provider}\x00{request.get('model', '')}".encode()
    running = xxhash.xxh3_64_digest(seed)
    chars = 0
    prefixes: list[PrefixBoundary] = []
    for index, role, segment in segments:
        encoded = _canonical(segment)
        chars += len(encoded)
        running = xxhash.xxh3_64_digest(running + encoded)
        prefixes.append(PrefixBoundary(running.hex(), chars // CHARS_PER_TOKEN, index, role))
    return RequestFingerprints(
        response_format=_response_format(request),
        tool_choice=_tool_choice(request.get("tool_choice")),
        request=request_hash,
        prefixes=tuple(prefixes),
        cache_breakpoints=_count_cache_control(request),
        tool_count=len(tools) if isinstance(tools, list) else 0,
        messages=messages,
    )


def _responses_input(request: dict[str, Any]) -> list[Any] | None:
    """A Responses API ``input`` as messages: a string is one user message, a list of items is kept.

    Embeddings bodies have an ``input`` too (strings or token ids, never items): they must stay
    without prefixes, so a list counts only when its items are objects, and a string only in a
    body without the embeddings-only fields (the SDK always sends ``encoding_format``).
    """
    value = request.get("input")
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return value
    if isinstance(value, str) and not _EMBEDDINGS_FIELDS & request.keys():
        return [{"role": "user", "content": value}]
    return None


def _response_format(request: dict[str, Any]) -> str | None:
    """The requested output format: ``response_format.type``, Responses ``text.format.type``, ``output_format``."""
    text = request.get("text")
    candidates = (
        request.get("response_format"),
        request.get("output_format"),
        text.get("format") if isinstance(text, dict) else None,
    )
    for value in candidates:
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return str(value["type"])
    return None


def _tool_choice(value: Any) -> str | None:
    """``auto`` / ``required`` / ``none``, or the name of a forced tool (both SDK shapes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        function = value.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        name = value.get("name")
        if isinstance(name, str):
            return name
        kind = value.get("type")
        return str(kind) if isinstance(kind, str) else None
    return None


def prefixes_json(prefixes: tuple[PrefixBoundary, ...]) -> str:
    """Serialise prefix boundaries compactly for the store."""
    return json.dumps(
        [{"hash": p.hash, "tokens": p.tokens, "index": p.index, "role": p.role} for p in prefixes],
        separators=(",", ":"),
    )


def output_fingerprint(text: str) -> tuple[str, int]:
    """Return ``(hash, length in characters)`` of an output text."""
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass")), len(text)
