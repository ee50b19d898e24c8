"""The OpenAI Chat Completions wire format (``POST /v1/chat/completions``).

Shapes follow what api.openai.com sends, field for field where the SDK or agentprof
reads them: ``chat.completion`` objects, ``chat.completion.chunk`` streams ending in
``data: [DONE]``, the extra ``choices: []`` usage chunk when
``stream_options.include_usage`` is set (with ``"usage": null`` on every other chunk),
and ``{"error": {"message", "type", "param", "code"}}`` error bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentprof.testserver._cache import InputUsage, PromptCacheSimulator
from agentprof.testserver._provider import ParsedRequest, Provider, RequestError, SseEvent, encode_sse
from agentprof.testserver._provider import trailing_user_text as _trailing_user_text
from agentprof.testserver._script import PlannedReply, split_chunks
from agentprof.testserver._tokens import layout, openai_blocks

SYSTEM_FINGERPRINT = "fp_agentprof"

_ERROR_KINDS: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "unknown_url"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


class OpenAIProvider(Provider):
    """Chat Completions: requests, usage, replies, streams and errors."""

    api = "openai"
    request_id_header = "x-request-id"
    tool_id_prefix = "call_agentprof"
    response_id_prefix = "chatcmpl-agentprof"

    def parse(self, body: Any) -> ParsedRequest:
        """Validate a Chat Completions request body."""
        if not isinstance(body, Mapping):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty array.")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        return ParsedRequest(
            body=body,
            model=model,
            stream=bool(body.get("stream")),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            has_tools=bool(body.get("tools")),
            script_text=_trailing_user_text(messages, _message_text),
            prompt=layout(f"openai:{model}", openai_blocks(body)),
        )

    def input_usage(self, request: ParsedRequest, cache: PromptCacheSimulator) -> InputUsage:
        """Count the prompt and apply automatic prefix caching."""
        return cache.openai(request.prompt)

    def usage(self, inputs: InputUsage, reply: PlannedReply) -> dict[str, Any]:
        """Usage with cached tokens inside ``prompt_tokens`` and reasoning inside ``completion_tokens``."""
        completion = reply.total_output_tokens
        return {
            "prompt_tokens": inputs.total,
            "completion_tokens": completion,
            "total_tokens": inputs.total + completion,
            "prompt_tokens_details": {"cached_tokens": inputs.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reply.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(reply: PlannedReply) -> str:
        if reply.tool_calls:
            return "tool_calls"
        return "length" if reply.truncated else "stop"

    def response_body(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> dict[str, Any]:
        """A ``chat.completion`` object."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}
                for call in reply.tool_calls
            ]
        return {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": request.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish_reason(reply)}
            ],
            "usage": self.usage(inputs, reply),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """``chat.completion.chunk`` events: role, content pieces, tool-call deltas, finish, usage, [DONE]."""
        options = request.body.get("stream_options")
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                data["usage"] = None
            return data

        events = [SseEvent(encode_sse(chunk({"role": "assistant", "content": "", "refusal": None})))]
        events.extend(
            SseEvent(encode_sse(chunk({"content": piece})), text=piece)
            for piece in split_chunks(reply.text, reply.chunks)
        )
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(SseEvent(encode_sse(chunk({"tool_calls": [opening]}))))
            events.extend(
                SseEvent(encode_sse(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})))
                for piece in split_chunks(call.arguments_json, reply.chunks)
            )
        events.append(SseEvent(encode_sse(chunk({}, self._finish_reason(reply)))))
        if include_usage:
            usage = self.usage(inputs, reply)
            final = {**chunk({}), "choices": [], "usage": usage}
            events.append(SseEvent(encode_sse(final), usage=usage))
        events.append(SseEvent(encode_sse("[DONE]")))
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}`` with OpenAI's type for the status."""
        kind, code = _ERROR_KINDS.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
