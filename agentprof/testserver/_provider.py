"""The contract between the HTTP server and each provider's wire format.

The server owns HTTP, scripting, timing and recording; a provider only knows how its
API spells requests, usage, replies, stream events and errors. Keeping that split means
the two provider modules read side by side, like logfire's per-provider modules.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from agentprof.testserver._cache import InputUsage, PromptCacheSimulator
from agentprof.testserver._script import PlannedReply
from agentprof.testserver._tokens import PromptLayout


class RequestError(ValueError):
    """The request body is invalid for this API (answered with a 400 in the provider's format)."""


class SseEvent(NamedTuple):
    """One server-sent event, ready to write, and what it tells the client.

    Attributes:
        data: The encoded event (``event:``/``data:`` lines and the blank line).
        text: Reply text this event delivers, so an interrupted stream records what was sent.
        usage: The usage the client knows after this event, when the event carries usage.
    """

    data: bytes
    text: str = ""
    usage: dict[str, Any] | None = None


def encode_sse(data: Any, event: str | None = None) -> bytes:
    """Encode one SSE event; ``data`` is serialised as JSON unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


@dataclass(frozen=True)
class ParsedRequest:
    """The parts of a model request the server needs, independent of the provider.

    Attributes:
        body: The parsed JSON body.
        model: Requested model, echoed in the reply.
        stream: Whether the client asked for SSE.
        max_tokens: Output cap, if any.
        has_tools: Whether tool definitions were sent (required for scripted tool calls).
        script_text: Text of the latest user turn, where directives are read.
        prompt: The flattened prompt for token counting and caching.
    """

    body: Mapping[str, Any]
    model: str
    stream: bool
    max_tokens: int | None
    has_tools: bool
    script_text: str
    prompt: PromptLayout


class Provider(ABC):
    """One API's wire format. Subclasses are stateless; the server holds all state."""

    api: str
    """``"openai"`` or ``"anthropic"``, as recorded in exchanges."""
    request_id_header: str
    """Response header carrying the request id (the SDKs expose it as ``_request_id``)."""
    tool_id_prefix: str
    response_id_prefix: str

    @abstractmethod
    def parse(self, body: Any) -> ParsedRequest:
        """Validate ``body`` and extract what the server needs.

        Raises:
            RequestError: The body is not a valid request for this API.
        """

    @abstractmethod
    def input_usage(self, request: ParsedRequest, cache: PromptCacheSimulator) -> InputUsage:
        """Count input tokens and apply prompt caching (this updates the cache)."""

    @abstractmethod
    def usage(self, inputs: InputUsage, reply: PlannedReply) -> dict[str, Any]:
        """The usage object exactly as this API reports it for a finished reply."""

    @abstractmethod
    def response_body(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> dict[str, Any]:
        """The non-streaming response body."""

    @abstractmethod
    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """The complete SSE event sequence of a streamed response."""

    @abstractmethod
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """An error body in this API's format for HTTP ``status``."""


def trailing_user_text(messages: Any, text_of: Callable[[Mapping[str, Any]], str]) -> str:
    """Text of the latest user turn: the non-assistant messages after the last assistant message.

    Trailing assistant messages (a prefill) are skipped first. ``text_of`` extracts the text
    of one message; keeping it a parameter lets each provider decide what counts as text.
    """
    if not isinstance(messages, list):
        return ""
    items = [m for m in messages if isinstance(m, Mapping)]
    while items and items[-1].get("role") == "assistant":
        items.pop()
    turn: list[str] = []
    for message in reversed(items):
        if message.get("role") == "assistant":
            break
        turn.append(text_of(message))
    return "\n".join(reversed(turn))
