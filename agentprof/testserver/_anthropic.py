"""The Anthropic Messages wire format (``POST /v1/messages``).

Shapes follow api.anthropic.com: ``message`` objects whose ``usage.input_tokens``
*excludes* cache reads and writes, and streams with the real event sequence
(``message_start`` carrying the input and cache usage with ``output_tokens: 1``,
``content_block_start``, a ``ping``, ``content_block_delta`` with ``text_delta`` or
``input_json_delta``, ``content_block_stop``, ``message_delta`` with the stop reason
and the cumulative ``output_tokens``, ``message_stop``). Errors are
``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentprof.testserver._cache import InputUsage, PromptCacheSimulator
from agentprof.testserver._provider import ParsedRequest, Provider, RequestError, SseEvent, encode_sse
from agentprof.testserver._provider import trailing_user_text as _trailing_user_text
from agentprof.testserver._script import PlannedReply, split_chunks
from agentprof.testserver._tokens import anthropic_blocks, layout

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, Mapping):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":  # directives may come back from a tool, to script agent loops
        content = block.get("content", "")
        return "\n".join(_block_text(item) for item in content) if isinstance(content, list) else str(content)
    return ""


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content", "")
    return "\n".join(_block_text(item) for item in content) if isinstance(content, list) else _block_text(content)


class AnthropicProvider(Provider):
    """Messages API: requests, usage, replies, streams and errors."""

    api = "anthropic"
    request_id_header = "request-id"
    tool_id_prefix = "toolu_agentprof"
    response_id_prefix = "msg_agentprof"

    def parse(self, body: Any, *, require_max_tokens: bool = True) -> ParsedRequest:
        """Validate a Messages request body (``count_tokens`` bodies need no ``max_tokens``)."""
        if not isinstance(body, Mapping):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("model: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages: at least one message is required")
        max_tokens = body.get("max_tokens")
        if require_max_tokens and not isinstance(max_tokens, int):
            raise RequestError("max_tokens: Field required")
        return ParsedRequest(
            body=body,
            model=model,
            stream=bool(body.get("stream")),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            has_tools=bool(body.get("tools")),
            script_text=_trailing_user_text(messages, _message_text),
            prompt=layout(f"anthropic:{model}", anthropic_blocks(body)),
        )

    def input_usage(self, request: ParsedRequest, cache: PromptCacheSimulator) -> InputUsage:
        """Count the prompt and apply the cache_control breakpoints."""
        automatic = request.body.get("cache_control")
        return cache.anthropic(
            request.model, request.prompt, automatic=automatic if isinstance(automatic, Mapping) else None
        )

    def usage(self, inputs: InputUsage, reply: PlannedReply) -> dict[str, Any]:
        """Usage with ``input_tokens`` excluding the cache and reasoning inside ``output_tokens``."""
        return self._usage(inputs, reply.total_output_tokens)

    @staticmethod
    def _usage(inputs: InputUsage, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": inputs.uncached,
            "cache_creation_input_tokens": inputs.cache_write_5m + inputs.cache_write_1h,
            "cache_read_input_tokens": inputs.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": inputs.cache_write_5m,
                "ephemeral_1h_input_tokens": inputs.cache_write_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    @staticmethod
    def _stop_reason(reply: PlannedReply) -> str:
        if reply.tool_calls:
            return "tool_use"
        return "max_tokens" if reply.truncated else "end_turn"

    @staticmethod
    def _has_text_block(reply: PlannedReply) -> bool:
        return bool(reply.text) or not reply.tool_calls

    def response_body(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> dict[str, Any]:
        """A ``message`` object with text and tool_use content blocks."""
        content: list[dict[str, Any]] = []
        if self._has_text_block(reply):
            content.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            content.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments_json)}
            )
        return {
            "id": response_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": self.usage(inputs, reply),
        }

    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """The Messages streaming event sequence, with a ``ping`` after the first block start."""
        start_usage = self._usage(inputs, 1)
        message: dict[str, Any] = {
            "id": response_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events = [SseEvent(_event({"type": "message_start", "message": message}), usage=start_usage)]
        for index, (opening, deltas) in enumerate(self._blocks(reply)):
            events.append(SseEvent(_event({"type": "content_block_start", "index": index, "content_block": opening})))
            if index == 0:
                events.append(SseEvent(_event({"type": "ping"})))
            for delta, text in deltas:
                events.append(SseEvent(_event({"type": "content_block_delta", "index": index, "delta": delta}), text))
            events.append(SseEvent(_event({"type": "content_block_stop", "index": index})))
        final_usage = self.usage(inputs, reply)
        delta_event = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
            "usage": {"output_tokens": reply.total_output_tokens},
        }
        events.append(SseEvent(_event(delta_event), usage=final_usage))
        events.append(SseEvent(_event({"type": "message_stop"})))
        return events

    def _blocks(self, reply: PlannedReply) -> list[tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]]:
        """Each content block's opening and its deltas (with the text each delta delivers)."""
        blocks: list[tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]] = []
        if self._has_text_block(reply):
            pieces = split_chunks(reply.text, reply.chunks)
            blocks.append(({"type": "text", "text": ""}, [({"type": "text_delta", "text": p}, p) for p in pieces]))
        for call in reply.tool_calls:
            opening = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            pieces = split_chunks(call.arguments_json, reply.chunks)
            blocks.append((opening, [({"type": "input_json_delta", "partial_json": p}, "") for p in pieces]))
        return blocks

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """``{"type": "error", "error": {"type", "message"}}`` with Anthropic's type for the status."""
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def count_tokens(self, body: Any) -> dict[str, Any]:
        """The ``/v1/messages/count_tokens`` answer: the whole prompt, as the cache never applies there."""
        return {"input_tokens": self.parse(body, require_max_tokens=False).prompt.total_tokens}


def _event(data: dict[str, Any]) -> bytes:
    """Encode ``data`` with its type as the SSE event name, as Anthropic does."""
    return encode_sse(data, str(data["type"]))


def _arguments(arguments_json: str) -> Any:
    return json.loads(arguments_json)
