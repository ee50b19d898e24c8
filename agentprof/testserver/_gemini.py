"""The Gemini API wire format (``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``).

Shapes follow generativelanguage.googleapis.com, field for field where the ``google-genai`` SDK or
agentprof reads them: ``GenerateContentResponse`` objects with ``candidates`` (a ``model`` content
of ``text`` and ``functionCall`` parts, ``finishReason`` ``STOP`` or ``MAX_TOKENS``),
``usageMetadata``, ``modelVersion`` and ``responseId``. Usage follows Google's semantics:
``promptTokenCount`` *includes* ``cachedContentTokenCount``, ``candidatesTokenCount`` *excludes*
``thoughtsTokenCount`` (scripted with ``[[reasoning:N]]``), and ``totalTokenCount`` is their sum;
the cache and thoughts counts are sent only when non-zero, as the real API does. Streams are SSE
``data:`` lines, each a whole ``GenerateContentResponse`` carrying the running usage of the request
(prompt and thoughts up front, candidates growing), the last one with the final usage and the
``finishReason``; there is no ``[DONE]`` sentinel. Errors are ``{"error": {"code", "message",
"status"}}`` with Google's canonical status names.

Unlike the other APIs the model and the stream flag are in the path, not the body, so a provider
instance is bound to one request's path by :func:`provider_for_path`. The API version segment may
be ``v1beta`` (what the REST docs show) or ``v1`` / ``v1alpha`` (what SDK versions default to).

Implicit caching (Gemini 2.5+) is simulated with the server's automatic prefix-cache rules (the
OpenAI ones: prompts of at least 1,024 tokens, hits rounded down to 128 tokens; Gemini's real
minimum is model-dependent and its granularity finer). Not modelled: explicit ``cachedContent``
resources, built-in tools (``toolUsePromptTokenCount``), thought summaries (``includeThoughts``),
multiple candidates, and the JSON-array stream returned without ``alt=sse``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from agentprof.testserver._cache import InputUsage, PromptCacheSimulator
from agentprof.testserver._provider import ParsedRequest, Provider, RequestError, SseEvent, encode_sse
from agentprof.testserver._provider import trailing_user_text as _trailing_user_text
from agentprof.testserver._script import PlannedReply, split_chunks
from agentprof.testserver._tokens import PromptBlock, canonical_json, layout, tokens_for_chars

_ROUTE = re.compile(
    r"/(?:v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)"
)

_STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def provider_for_path(path: str) -> GeminiProvider | None:
    """The provider bound to a ``generateContent`` / ``streamGenerateContent`` path; ``None`` for other paths."""
    match = _ROUTE.fullmatch(path)
    if match is None:
        return None
    return GeminiProvider(match["model"], stream=match["method"] == "streamGenerateContent")


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value, depth first (a function response may nest its result anywhere)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _part_text(part: Any) -> str:
    """Where directives are read: text parts and function responses (to script agent loops through tools)."""
    if not isinstance(part, Mapping):
        return ""
    if "text" in part:
        return str(part["text"])
    response = part.get("functionResponse")
    if isinstance(response, Mapping):
        return "\n".join(_strings(response.get("response")))
    return ""


def _parts(content: Any) -> list[Any]:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return parts if isinstance(parts, list) else []


def _part_chars(part: Any) -> int:
    """Characters of text one part contributes to the token count (never JSON structure)."""
    if not isinstance(part, Mapping):
        return len(canonical_json(part))
    if "text" in part:
        return len(str(part["text"]))
    for key, payload in (("functionCall", "args"), ("functionResponse", "response")):
        call = part.get(key)
        if isinstance(call, Mapping):
            return len(str(call.get("name", ""))) + len(canonical_json(call.get(payload, {})))
    # Inline data, files, code execution ...: their serialised size is a stable, if crude, proxy.
    return len(canonical_json({k: v for k, v in part.items() if k != "thoughtSignature"}))


def _declaration_chars(declaration: Mapping[str, Any]) -> int:
    """Name, description and schemas (``parameters``, or ``parameters_json_schema`` as the SDK sends for functions)."""
    schemas = {key: value for key, value in declaration.items() if key not in ("name", "description")}
    return (
        len(str(declaration.get("name", "")))
        + len(str(declaration.get("description", "")))
        + len(canonical_json(schemas))
    )


def gemini_blocks(body: Mapping[str, Any]) -> list[PromptBlock]:
    """Flatten a request into cache units: each function declaration (or other tool), the system, each content."""
    blocks: list[PromptBlock] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, Mapping):
            continue
        for declaration in tool.get("functionDeclarations") or []:
            if isinstance(declaration, Mapping):
                blocks.append(PromptBlock("tool:" + canonical_json(declaration), _declaration_chars(declaration)))
        others = {key: value for key, value in tool.items() if key != "functionDeclarations"}
        if others:  # googleSearch, codeExecution, ...: no text of their own to speak of
            blocks.append(PromptBlock("tool:" + canonical_json(others), len(canonical_json(others))))
    system = body.get("systemInstruction")
    if system:
        chars = sum(_part_chars(part) for part in _parts(system)) if isinstance(system, Mapping) else len(str(system))
        blocks.append(PromptBlock("system:" + canonical_json(system), chars))
    for content in body.get("contents") or []:
        if isinstance(content, Mapping):
            chars = sum(_part_chars(part) for part in _parts(content))
            blocks.append(PromptBlock("content:" + canonical_json(content), chars))
    return blocks


def _as_turn(content: Any) -> Mapping[str, Any]:
    """A content in the shape :func:`trailing_user_text` reads: Gemini's ``model`` role is the assistant."""
    role = content.get("role") if isinstance(content, Mapping) else None
    return {"role": "assistant" if role == "model" else "user", "parts": _parts(content)}


def _turn_text(turn: Mapping[str, Any]) -> str:
    return "\n".join(_part_text(part) for part in turn["parts"])


class GeminiProvider(Provider):
    """generateContent: requests, usage, replies, streams and errors, for the model and method in one path.

    Args:
        model: The model named in the path (``gemini-2.5-flash``), echoed as ``modelVersion``.
        stream: Whether the path is ``:streamGenerateContent``.
    """

    api = "gemini"
    request_id_header = "x-request-id"
    tool_id_prefix = "fc_agentprof"
    response_id_prefix = "resp_agentprof"

    def __init__(self, model: str, *, stream: bool) -> None:
        self.model = model
        self.stream = stream

    def parse(self, body: Any) -> ParsedRequest:
        """Validate a ``GenerateContentRequest`` body."""
        if not isinstance(body, Mapping):
            raise RequestError("Invalid JSON payload received. The request body must be a JSON object.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise RequestError("* GenerateContentRequest.contents: contents is not specified")
        config = body.get("generationConfig")
        max_tokens = config.get("maxOutputTokens") if isinstance(config, Mapping) else None
        return ParsedRequest(
            body=body,
            model=self.model,
            stream=self.stream,
            max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
            has_tools=any(isinstance(t, Mapping) and t.get("functionDeclarations") for t in body.get("tools") or []),
            script_text=_trailing_user_text([_as_turn(content) for content in contents], _turn_text),
            prompt=layout(f"gemini:{self.model}", gemini_blocks(body)),
        )

    def input_usage(self, request: ParsedRequest, cache: PromptCacheSimulator) -> InputUsage:
        """Count the prompt and apply implicit (automatic prefix) caching."""
        return cache.openai(request.prompt)

    def usage(self, inputs: InputUsage, reply: PlannedReply) -> dict[str, Any]:
        """``usageMetadata`` of a finished reply."""
        return self._usage(inputs, reply, reply.output_tokens)

    @staticmethod
    def _usage(inputs: InputUsage, reply: PlannedReply, candidates: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": inputs.total,
            "candidatesTokenCount": candidates,
            "totalTokenCount": inputs.total + candidates + reply.reasoning_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": inputs.total}],
        }
        if reply.reasoning_tokens:
            usage["thoughtsTokenCount"] = reply.reasoning_tokens
        if inputs.cache_read:
            usage["cachedContentTokenCount"] = inputs.cache_read
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": inputs.cache_read}]
        return usage

    @staticmethod
    def _finish_reason(reply: PlannedReply) -> str:
        return "MAX_TOKENS" if reply.truncated else "STOP"  # function calls end with STOP too

    @staticmethod
    def _tool_parts(reply: PlannedReply) -> list[dict[str, Any]]:
        return [
            {"functionCall": {"id": call.id, "name": call.name, "args": json.loads(call.arguments_json)}}
            for call in reply.tool_calls
        ]

    def _response(
        self, parts: list[dict[str, Any]], usage: dict[str, Any], response_id: str, finish_reason: str | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish_reason is not None:
            candidate["finishReason"] = finish_reason
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": response_id,
        }

    def response_body(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> dict[str, Any]:
        """A ``GenerateContentResponse``: one candidate, a text part (unless only calling tools), function calls."""
        parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text or not reply.tool_calls else []
        parts.extend(self._tool_parts(reply))
        return self._response(parts, self.usage(inputs, reply), response_id, self._finish_reason(reply))

    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """A chunk per text piece, then one per function call; the last has ``finishReason`` and the final usage."""
        pieces: list[tuple[dict[str, Any], str, int]] = [
            ({"text": piece}, piece, len(piece)) for piece in split_chunks(reply.text, reply.chunks)
        ]
        for call, part in zip(reply.tool_calls, self._tool_parts(reply), strict=True):
            pieces.append((part, "", len(call.name) + len(call.arguments_json)))
        if not pieces:
            pieces.append(({"text": ""}, "", 0))
        events: list[SseEvent] = []
        sent_chars = 0
        for index, (part, text, chars) in enumerate(pieces):
            last = index == len(pieces) - 1
            sent_chars += chars
            candidates = reply.output_tokens if last else min(reply.output_tokens, tokens_for_chars(sent_chars))
            usage = self._usage(inputs, reply, candidates)
            chunk = self._response([part], usage, response_id, self._finish_reason(reply) if last else None)
            events.append(SseEvent(encode_sse(chunk), text=text, usage=usage))
        return events

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """``{"error": {"code", "message", "status"}}`` with Google's canonical status name."""
        name = _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": name}}
