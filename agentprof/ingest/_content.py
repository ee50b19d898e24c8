"""Message content on received spans, rebuilt as a chat request body for fingerprinting.

Live calls are fingerprinted from the request bytes the SDK sent; a received span has only what
its instrumentation recorded. Where that includes the messages (OTel ``gen_ai.input.messages``
with parts, OpenLLMetry's flattened ``gen_ai.prompt.{i}.*``, OpenInference's
``llm.input_messages.{i}.message.*``, MLflow/Langfuse inputs), they are put back into a
Chat-Completions-shaped body (``model``, ``messages``, ``tools``) fingerprinted as
:func:`agentprof._fingerprint.fingerprint_request` would (:mod:`._fingerprints` does it without
serialising the body), so the cache rules see repeated prefixes in ingested data too.
Fingerprints are comparable among ingested calls, not with live ones (the bytes differ).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_INDEXED = re.compile(r"^(gen_ai\.prompt|gen_ai\.completion|llm\.input_messages|llm\.output_messages)\.(\d+)\.(.+)$")


def request_body(attributes: Mapping[str, Any], model: str | None) -> bytes | None:
    """A chat request body rebuilt from recorded content; ``None`` when there is none."""
    messages = input_messages(attributes)
    if not messages:
        return None
    body: dict[str, Any] = {"model": model or "", "messages": messages}
    tools = attributes.get("gen_ai.tool.definitions")
    if isinstance(tools, list) and tools:
        body["tools"] = tools
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def output_text(attributes: Mapping[str, Any]) -> str | None:
    """The call's output text, when recorded."""
    output = attributes.get("gen_ai.output.messages")
    if isinstance(output, list):
        return "".join(_text_of_parts(message) for message in output if isinstance(message, dict))
    indexed = _indexed(attributes, "gen_ai.completion", "llm.output_messages")
    if indexed:
        return "".join(str(message.get("content") or "") for message in indexed)
    for key in ("mlflow.spanOutputs", "langfuse.observation.output"):
        value = attributes.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return None


def input_messages(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's messages (a system instruction first) as chat messages; empty when none were recorded."""
    messages: list[dict[str, Any]] = []
    system = attributes.get("gen_ai.system_instructions")
    if isinstance(system, list) and system:
        messages.append({"role": "system", "content": _join_parts(system)})
    elif isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    recorded = attributes.get("gen_ai.input.messages")
    if isinstance(recorded, list):
        for message in recorded:
            if isinstance(message, dict):
                messages.append(_from_parts(message))
        return messages
    indexed = _indexed(attributes, "gen_ai.prompt", "llm.input_messages")
    if indexed:
        return messages + indexed
    for key in ("mlflow.spanInputs", "langfuse.observation.input"):
        value = attributes.get(key)
        if isinstance(value, dict):
            value = value.get("messages")
        if isinstance(value, list) and all(isinstance(item, dict) and "role" in item for item in value):
            return messages + [dict(item) for item in value]
    return messages if recorded is not None else []


def _from_parts(message: dict[str, Any]) -> dict[str, Any]:
    """An OTel ``ChatMessage`` (role + parts) as a chat message; plain chat messages pass through."""
    parts = message.get("parts")
    if not isinstance(parts, list):
        return dict(message)
    result: dict[str, Any] = {"role": message.get("role", "")}
    texts = [part for part in parts if isinstance(part, dict) and part.get("type") == "text"]
    if len(texts) == len(parts):
        result["content"] = "".join(str(part.get("content", "")) for part in texts)
    else:
        result["content"] = parts
    return result


def _join_parts(parts: list[Any]) -> str:
    return "".join(str(part.get("content", "")) for part in parts if isinstance(part, dict))


def _text_of_parts(message: dict[str, Any]) -> str:
    parts = message.get("parts")
    if isinstance(parts, list):
        return "".join(
            str(part.get("content", "")) for part in parts if isinstance(part, dict) and part.get("type") == "text"
        )
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _indexed(attributes: Mapping[str, Any], first: str, second: str) -> list[dict[str, Any]]:
    """Flattened ``<prefix>.{i}.<field>`` attributes as a list of messages, in index order.

    The messages under ``first`` if there are any, else those under ``second``: both are
    collected in one pass over the keys (most spans have neither).
    """
    found: dict[str, dict[int, dict[str, Any]]] = {}
    prefixes = (first + ".", second + ".")
    for key in attributes:
        if not key.startswith(prefixes):
            continue
        match = _INDEXED.match(key)
        if match is None or match.group(1) not in (first, second):
            continue
        field = match.group(3)
        if field.startswith("message."):  # OpenInference nests fields under "message."
            field = field[len("message.") :]
        found.setdefault(match.group(1), {}).setdefault(int(match.group(2)), {})[field] = attributes[key]
    by_index = found.get(first) or found.get(second)
    if not by_index:
        return []
    return [_nest(by_index[index]) for index in sorted(by_index)]


def _nest(fields: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    for field, value in sorted(fields.items()):
        if field in ("role", "content", "name", "tool_call_id"):
            message[field] = value
        else:
            message.setdefault("extra", {})[field] = value
    return message
