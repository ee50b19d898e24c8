"""The OpenAI Responses wire format (``POST /v1/responses``).

Shapes follow what api.openai.com sends, field for field where the SDK or agentprof reads
them: ``response`` objects whose ``output`` lists items (a ``reasoning`` item when reasoning
tokens were scripted, a ``message`` with ``output_text`` parts, ``function_call`` items), usage
as ``input_tokens`` (cached tokens *included*) with ``input_tokens_details`` and
``output_tokens`` (reasoning *included*) with ``output_tokens_details``, both details objects
always present. Streams are the typed event sequence ``response.created``,
``response.in_progress``, per item ``response.output_item.added`` / content part / deltas /
``.done`` events, and a terminal ``response.completed`` (or ``response.incomplete`` when
``max_output_tokens`` cut the reply) carrying the whole response with its usage, every event
numbered by ``sequence_number``. Errors are Chat Completions' ``{"error": {...}}`` bodies.

The request side reads ``instructions`` (the system prompt), ``input`` (a string, or a list of
items: messages, ``function_call`` and ``function_call_output`` items, ...), ``tools`` and
``max_output_tokens``. Not modelled: ``previous_response_id`` / ``conversation`` (the server
keeps no responses, so only the new input is counted), hosted tools, ``background`` mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentprof.testserver._cache import InputUsage
from agentprof.testserver._openai import OpenAIProvider
from agentprof.testserver._provider import ParsedRequest, RequestError, SseEvent, encode_sse
from agentprof.testserver._provider import trailing_user_text as _trailing_user_text
from agentprof.testserver._script import PlannedReply, split_chunks
from agentprof.testserver._tokens import PromptBlock, canonical_json, layout

_TEXT_FIELDS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}


def _part_text(part: Any) -> str | None:
    """The text of a text or refusal content part; ``None`` for anything else (images, files)."""
    if isinstance(part, Mapping):
        field = _TEXT_FIELDS.get(str(part.get("type")))
        if field is not None:
            return str(part.get(field, ""))
    return None


def _parts_text(content: Any) -> str:
    """Text of a message's ``content``: a string, or the text of its text and refusal parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text for part in content if (text := _part_text(part)) is not None)
    return ""


def _item_role(item: Mapping[str, Any]) -> str:
    """Who an input item speaks for: its ``role``, ``"tool"`` for a tool's output, else the model."""
    role = item.get("role")
    if isinstance(role, str):
        return role
    kind = str(item.get("type", ""))
    return "tool" if kind.endswith("_output") else "assistant"  # function_call, reasoning, ...: the model's


def _item_text(item: Mapping[str, Any]) -> str:
    """The text an item carries: a message's content, a tool output (where directives may come back)."""
    return _parts_text(item.get("content", item.get("output")))


def _item_chars(item: Mapping[str, Any]) -> int:
    """Characters of text an input item contributes to the token count."""
    if item.get("type") == "function_call":
        return len(str(item.get("name", ""))) + len(str(item.get("arguments", "")))
    content = item.get("content", item.get("output"))
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        # Images and files count by their serialised size: crude, but stable.
        return sum(
            len(text) if (text := _part_text(part)) is not None else len(canonical_json(part)) for part in content
        )
    return len(canonical_json(item))


def input_items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list) else []


def _tool_chars(tool: Mapping[str, Any]) -> int:
    if tool.get("type") != "function":
        return len(canonical_json(tool))
    return (
        len(str(tool.get("name", "")))
        + len(str(tool.get("description") or ""))
        + len(canonical_json(tool.get("parameters") or {}))
    )


def responses_blocks(body: Mapping[str, Any]) -> list[PromptBlock]:
    """Flatten a Responses request into cache units: each tool, the instructions, then each input item."""
    blocks = [
        PromptBlock("tool:" + canonical_json(tool), _tool_chars(tool))
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
    ]
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        blocks.append(PromptBlock("instructions:" + canonical_json(instructions), len(instructions)))
    blocks.extend(PromptBlock("item:" + canonical_json(item), _item_chars(item)) for item in input_items(body))
    return blocks


class OpenAIResponsesProvider(OpenAIProvider):
    """Responses API: requests, usage, replies and streams; errors and prompt caching as Chat Completions."""

    response_id_prefix = "resp_agentprof"

    def parse(self, body: Any) -> ParsedRequest:
        """Validate a Responses request body."""
        if not isinstance(body, Mapping):
            raise RequestError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("Missing required parameter: 'model'.")
        if not isinstance(body.get("input"), str | list):
            raise RequestError("Missing required parameter: 'input'.")
        items = [{"role": _item_role(item), "text": _item_text(item)} for item in input_items(body)]
        max_tokens = body.get("max_output_tokens")
        return ParsedRequest(
            body=body,
            model=model,
            stream=bool(body.get("stream")),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            has_tools=bool(body.get("tools")),
            script_text=_trailing_user_text(items, lambda item: str(item["text"])),
            prompt=layout(f"openai-responses:{model}", responses_blocks(body)),
        )

    def usage(self, inputs: InputUsage, reply: PlannedReply) -> dict[str, Any]:
        """Usage with cached tokens inside ``input_tokens`` and reasoning inside ``output_tokens``."""
        output = reply.total_output_tokens
        return {
            "input_tokens": inputs.total,
            "input_tokens_details": {"cached_tokens": inputs.cache_read, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": inputs.total + output,
        }

    # --- the response object ------------------------------------------------------------

    @staticmethod
    def _ids(response_id: str) -> str:
        return response_id.removeprefix(OpenAIResponsesProvider.response_id_prefix)

    def _skeleton(self, request: ParsedRequest, response_id: str, created: int) -> dict[str, Any]:
        """The response object as ``response.created`` shows it: in progress, no output, no usage."""
        body = request.body
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": "in_progress",
            "background": False,
            "completed_at": None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": request.max_tokens,
            "max_tool_calls": body.get("max_tool_calls"),
            "model": request.model,
            "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": list(body.get("tools") or []),
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def _output(self, reply: PlannedReply, response_id: str) -> list[dict[str, Any]]:
        """The finished output items: reasoning (if any), the message (unless only tools), function calls."""
        suffix = self._ids(response_id)
        items: list[dict[str, Any]] = []
        if reply.reasoning_tokens:
            items.append({"id": f"rs_agentprof{suffix}", "type": "reasoning", "summary": []})
        if reply.text or not reply.tool_calls:
            part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
            items.append(
                {
                    "id": f"msg_agentprof{suffix}",
                    "type": "message",
                    "status": "incomplete" if reply.truncated else "completed",
                    "role": "assistant",
                    "content": [part],
                }
            )
        for index, call in enumerate(reply.tool_calls):
            items.append(
                {
                    "id": f"fc_agentprof{suffix}{index:02d}",
                    "type": "function_call",
                    "status": "completed",
                    "arguments": call.arguments_json,
                    "call_id": call.id,
                    "name": call.name,
                }
            )
        return items

    def response_body(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> dict[str, Any]:
        """A finished ``response`` object: ``completed``, or ``incomplete`` when ``max_output_tokens`` cut it."""
        response = self._skeleton(request, response_id, created)
        response.update(
            status="incomplete" if reply.truncated else "completed",
            completed_at=None if reply.truncated else created,
            incomplete_details={"reason": "max_output_tokens"} if reply.truncated else None,
            output=self._output(reply, response_id),
            usage=self.usage(inputs, reply),
        )
        return response

    # --- the event stream ---------------------------------------------------------------

    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """The typed event sequence, from ``response.created`` to ``response.completed`` / ``.incomplete``."""
        events = _EventSequence()
        skeleton = self._skeleton(request, response_id, created)
        events.add("response.created", {"response": skeleton})
        events.add("response.in_progress", {"response": skeleton})
        for index, item in enumerate(self._output(reply, response_id)):
            if item["type"] == "message":
                _message_events(events, index, item, reply.chunks)
            elif item["type"] == "function_call":
                _function_call_events(events, index, item, reply.chunks)
            else:
                events.add("response.output_item.added", {"output_index": index, "item": item})
                events.add("response.output_item.done", {"output_index": index, "item": item})
        final = self.response_body(request, reply, inputs, response_id, created)
        terminal = "response.incomplete" if reply.truncated else "response.completed"
        events.add(terminal, {"response": final}, usage=final["usage"])
        return events.sent


class _EventSequence:
    """Numbers events by ``sequence_number`` and names each SSE event after its ``type``, as the API does."""

    def __init__(self) -> None:
        self.sent: list[SseEvent] = []

    def add(self, kind: str, fields: Mapping[str, Any], text: str = "", usage: dict[str, Any] | None = None) -> None:
        """Append one event; ``text`` is the reply text it delivers, ``usage`` what it reports."""
        data = {"type": kind, "sequence_number": len(self.sent), **fields}
        self.sent.append(SseEvent(encode_sse(data, event=kind), text=text, usage=usage))


def _message_events(events: _EventSequence, index: int, item: dict[str, Any], chunks: int) -> None:
    (part,) = item["content"]
    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
    events.add(
        "response.output_item.added", {"output_index": index, "item": {**item, "status": "in_progress", "content": []}}
    )
    events.add("response.content_part.added", {**where, "part": {**part, "text": ""}})
    for piece in split_chunks(part["text"], chunks):
        events.add("response.output_text.delta", {**where, "delta": piece, "logprobs": []}, text=piece)
    events.add("response.output_text.done", {**where, "text": part["text"], "logprobs": []})
    events.add("response.content_part.done", {**where, "part": part})
    events.add("response.output_item.done", {"output_index": index, "item": item})


def _function_call_events(events: _EventSequence, index: int, item: dict[str, Any], chunks: int) -> None:
    where = {"item_id": item["id"], "output_index": index}
    opening = {**item, "status": "in_progress", "arguments": ""}
    events.add("response.output_item.added", {"output_index": index, "item": opening})
    for piece in split_chunks(item["arguments"], chunks):
        events.add("response.function_call_arguments.delta", {**where, "delta": piece})
    events.add("response.function_call_arguments.done", {**where, "arguments": item["arguments"]})
    events.add("response.output_item.done", {"output_index": index, "item": item})
