"""Cloud platforms that serve the same two wire formats under their own paths.

* Azure OpenAI: ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``,
  a Chat Completions body. The deployment stands in for the model when the body names none.
* AWS Bedrock (InvokeModel): ``POST /model/{model_id}/invoke``, an Anthropic Messages body
  with ``anthropic_version`` instead of ``model``. The reply is a Messages object whose
  ``model`` is Anthropic's name (``claude-3-5-sonnet-20241022``), not the Bedrock id.
  ``/invoke-with-response-stream`` streams the Messages events in AWS event-stream framing (one
  binary message per event, CRC-checked, the event's JSON base64-encoded in a ``chunk``), as
  the SDK's decoder (botocore's) reads them.
* Google Vertex AI: ``POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict``
  (``:streamRawPredict`` for SSE, with ``stream`` kept in the body), a Messages body with
  ``anthropic_version``; the reply names the model Anthropic's way (``@`` becomes ``-``).

Each exchange is recorded with the model from the path, as the platform bills it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import struct
import zlib
from typing import Any
from urllib.parse import unquote

from agentprof.testserver._anthropic import AnthropicProvider
from agentprof.testserver._cache import InputUsage
from agentprof.testserver._openai import OpenAIProvider
from agentprof.testserver._provider import ParsedRequest, Provider, RequestError, SseEvent
from agentprof.testserver._script import PlannedReply

_AZURE_CHAT = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions$")
_BEDROCK_INVOKE = re.compile(r"^/model/(?P<model>[^/]+)/invoke(?P<stream>-with-response-stream)?$")
_VERTEX_PREDICT = re.compile(
    r"^/v1/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+):(?:rawPredict|streamRawPredict)$"
)
# `us.anthropic.claude-3-5-haiku-20241022-v1:0` -> `claude-3-5-haiku-20241022`.
_BEDROCK_ID = re.compile(r"^(?:[a-z]+\.)?anthropic\.(?P<name>claude-.+?)(?:-v\d+(?::\d+)?)?$")


def bedrock_response_model(model_id: str) -> str:
    """The model name Bedrock's Anthropic replies carry for a Bedrock model id (the id if unrecognised)."""
    match = _BEDROCK_ID.match(model_id)
    return match.group("name") if match else model_id


def vertex_response_model(model_id: str) -> str:
    """The model name Vertex's Anthropic replies carry: ``claude-sonnet-4@20250514`` -> ``claude-sonnet-4-20250514``."""
    return model_id.replace("@", "-")


class AzureOpenAIProvider(OpenAIProvider):
    """Chat Completions addressed to a deployment: the deployment is the model when the body has none."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def parse(self, body: Any) -> ParsedRequest:
        """Parse as Chat Completions, filling ``model`` from the deployment."""
        if isinstance(body, dict) and not body.get("model"):
            body = {**body, "model": self.deployment}
        return super().parse(body)


class PlatformAnthropicProvider(AnthropicProvider):
    """Anthropic Messages on a cloud platform: model from the path, ``anthropic_version`` in the body."""

    def __init__(self, model_id: str, response_model: str) -> None:
        self.model_id = model_id
        self.response_model = response_model

    def parse(self, body: Any, *, require_max_tokens: bool = True) -> ParsedRequest:
        """Validate the platform body (``anthropic_version`` required, no ``model``) and parse it."""
        if not isinstance(body, dict):
            raise RequestError("The request body must be a JSON object.")
        if not isinstance(body.get("anthropic_version"), str):
            raise RequestError("anthropic_version: Field required")
        return super().parse({**body, "model": self.model_id}, require_max_tokens=require_max_tokens)

    def response_body(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> dict[str, Any]:
        """A ``message`` object naming the model as the platform does."""
        return {**super().response_body(request, reply, inputs, response_id, created), "model": self.response_model}

    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """The Messages event sequence, with the platform's model name in ``message_start``."""
        renamed = dataclasses.replace(request, model=self.response_model)
        return super().stream_events(renamed, reply, inputs, response_id, created)


def _event_stream_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


_CHUNK_HEADERS = (
    _event_stream_header(":event-type", "chunk")
    + _event_stream_header(":content-type", "application/json")
    + _event_stream_header(":message-type", "event")
)


def event_stream_chunk(event_json: bytes) -> bytes:
    """One AWS event-stream message carrying ``event_json`` as Bedrock's ``chunk`` event.

    Layout: total length and headers length (big-endian u32), the CRC-32 of those 8 bytes, the
    headers, the payload ``{"bytes": base64(event)}``, and the CRC-32 of everything before it.
    """
    payload = json.dumps({"bytes": base64.b64encode(event_json).decode()}).encode()
    prelude = struct.pack(">II", 12 + len(_CHUNK_HEADERS) + len(payload) + 4, len(_CHUNK_HEADERS))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + _CHUNK_HEADERS + payload
    return message + struct.pack(">I", zlib.crc32(message))


class BedrockStreamProvider(PlatformAnthropicProvider):
    """``invoke-with-response-stream``: the Messages events in AWS event-stream framing.

    The SDK takes ``stream`` out of the body and calls this path instead, so every request here
    streams.
    """

    stream_content_type = "application/vnd.amazon.eventstream"

    def parse(self, body: Any, *, require_max_tokens: bool = True) -> ParsedRequest:
        """Parse as a platform Messages body; the path, not the body, says it streams."""
        return dataclasses.replace(super().parse(body, require_max_tokens=require_max_tokens), stream=True)

    def stream_events(
        self, request: ParsedRequest, reply: PlannedReply, inputs: InputUsage, response_id: str, created: int
    ) -> list[SseEvent]:
        """Each SSE event's JSON re-framed as one event-stream message."""
        framed = []
        for event in super().stream_events(request, reply, inputs, response_id, created):
            data = next(line for line in event.data.split(b"\n") if line.startswith(b"data: "))[len(b"data: ") :]
            framed.append(event._replace(data=event_stream_chunk(data)))
        return framed


def provider_for_path(path: str) -> Provider | None:
    """The provider serving a platform path (Azure, Bedrock, Vertex), or ``None`` for other paths."""
    if match := _AZURE_CHAT.match(path):
        return AzureOpenAIProvider(unquote(match.group("deployment")))
    if match := _BEDROCK_INVOKE.match(path):
        model_id = unquote(match.group("model"))
        platform = BedrockStreamProvider if match.group("stream") else PlatformAnthropicProvider
        return platform(model_id, bedrock_response_model(model_id))
    if match := _VERTEX_PREDICT.match(path):
        model_id = unquote(match.group("model"))
        return PlatformAnthropicProvider(model_id, vertex_response_model(model_id))
    return None
