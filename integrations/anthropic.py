"""Anthropic Messages instrumentation: where to patch and how to read the SDK's objects.

Patched at class level: ``Messages.create`` / ``AsyncMessages.create``, ``Messages.parse`` /
``AsyncMessages.parse`` (they post on their own), ``Messages.stream`` / ``AsyncMessages.stream``
(the helper posts on its own too, when its context manager is entered), plus a hook on
``BaseClient._build_request`` that hands the serialised body and URL to the recording call.

Usage is canonicalised: Anthropic's ``input_tokens`` *excludes* cache reads and writes, so the
canonical total adds ``cache_read_input_tokens`` and ``cache_creation_input_tokens``; the 5m/1h
split of cache writes comes from ``usage.cache_creation``. In a stream, ``message_start``
carries the input side and each ``message_delta`` carries *cumulative* totals, so the last
delta wins (the SDK's own ``accumulate_event`` does the same).

Provider: ``AnthropicBedrock`` and ``AnthropicVertex`` (and their async twins) go through the
same ``Messages`` resource, so the client decides ``gen_ai.provider.name``: ``aws.bedrock`` /
``gcp.vertex_ai`` (the SDK's own ``_gen_ai_provider_name``, else the class name), ``anthropic``
otherwise. The request model is the platform's id (``anthropic.claude-...-v2:0``,
``claude-sonnet-4@20250514``), which is how those providers bill; their replies name the model
Anthropic's way, recorded as the response model.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from anthropic import AsyncStream, Stream
from anthropic._base_client import BaseClient
from anthropic.resources.messages import AsyncMessages, Messages
from anthropic.types import Message

from agentprof import _runtime, _safety
from agentprof import _semconv as sc
from agentprof._calls import ModelCall, finish_call, open_call
from agentprof._usage import CanonicalUsage

from ._patching import (
    ClientFacts,
    ClientFactsCache,
    Patcher,
    build_request_hook,
    deferred_async_call,
    deferred_sync_call,
    number,
    patch_call_methods,
    server_attributes,
)
from ._streams import StreamState, proxy_stream

PROVIDER = "anthropic"
BEDROCK_PROVIDER = "aws.bedrock"
VERTEX_PROVIDER = "gcp.vertex_ai"
_PLATFORM_CLIENTS = {
    "AnthropicBedrock": BEDROCK_PROVIDER,
    "AsyncAnthropicBedrock": BEDROCK_PROVIDER,
    "AnthropicVertex": VERTEX_PROVIDER,
    "AsyncAnthropicVertex": VERTEX_PROVIDER,
}
_patcher = Patcher()


_client_providers: dict[type[object], str] = {}  # client class -> provider name (a handful of classes)


def provider_for_client_type(client_type: type[object]) -> str:
    """``gen_ai.provider.name`` for a client class: the SDK's own OTel name, else known class names."""
    found = _client_providers.get(client_type)
    if found is not None:
        return found
    named = getattr(client_type, "_gen_ai_provider_name", None)
    if isinstance(named, str) and named:
        found = named
    else:  # an SDK without the attribute: known platform classes, subclasses included
        names = (cls.__name__ for cls in client_type.__mro__)
        found = next((_PLATFORM_CLIENTS[name] for name in names if name in _PLATFORM_CLIENTS), PROVIDER)
    _client_providers[client_type] = found
    return found


def canonical_usage(usage: Any, delta: Any = None) -> CanonicalUsage | None:
    """Canonical usage from a ``Usage`` block, overridden by a stream's last ``message_delta`` usage.

    Args:
        usage: ``Message.usage`` (or ``message_start``'s), ``None`` when unknown.
        delta: The last ``message_delta`` usage of a stream: its non-null fields are cumulative
            totals and replace ``usage``'s.
    """
    if usage is None:
        return None
    raw_input = getattr(usage, "input_tokens", None)
    cache_read = getattr(usage, "cache_read_input_tokens", None)
    cache_write = getattr(usage, "cache_creation_input_tokens", None)
    output = getattr(usage, "output_tokens", None)
    details = getattr(usage, "output_tokens_details", None)
    if delta is not None:
        raw_input = _override(raw_input, getattr(delta, "input_tokens", None))
        cache_read = _override(cache_read, getattr(delta, "cache_read_input_tokens", None))
        cache_write = _override(cache_write, getattr(delta, "cache_creation_input_tokens", None))
        output = _override(output, getattr(delta, "output_tokens", None))
        details = _override(details, getattr(delta, "output_tokens_details", None))
    creation = getattr(usage, "cache_creation", None)
    cache_read = cache_read or 0
    cache_write = cache_write or 0
    # Blocks that are often None are tested first: getattr(None, name, default) raises and
    # catches an AttributeError, which costs more than the rest of this function.
    return CanonicalUsage(
        input_tokens=(raw_input or 0) + cache_read + cache_write,
        output_tokens=output or 0,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_5m_tokens=None if creation is None else getattr(creation, "ephemeral_5m_input_tokens", None),
        cache_write_1h_tokens=None if creation is None else getattr(creation, "ephemeral_1h_input_tokens", None),
        reasoning_tokens=0 if details is None else getattr(details, "thinking_tokens", None) or 0,
    )


def _override(value: Any, newer: Any) -> Any:
    return value if newer is None else newer


class StreamedUsage:
    """The raw usage of a stream (``message_start`` usage updated by the last delta), merged lazily.

    Exposes ``model_dump`` so the exporter serialises it like an SDK model, off the caller's thread.
    """

    __slots__ = ("start", "delta")

    def __init__(self, start: Any, delta: Any) -> None:
        self.start = start
        self.delta = delta

    def canonical(self) -> CanonicalUsage | None:
        """Canonical usage of the stream (exporter thread)."""
        return canonical_usage(self.start, self.delta)

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """The merged usage block as a dict (``kwargs`` go to pydantic's ``model_dump``)."""
        merged: dict[str, Any] = dict(self.start.model_dump(**kwargs))
        if self.delta is not None:
            merged.update({k: v for k, v in self.delta.model_dump(**kwargs).items() if v is not None})
        return merged


def _tool_text(name: Any, arguments: Any) -> str:
    return f"\n[tool:{name or ''}] {json.dumps(arguments, separators=(',', ':'), sort_keys=True)}"


def message_text(message: Any) -> str:
    """Text and tool-use blocks of a ``Message`` (thinking is excluded: it is not the answer).

    Same shape as :func:`blocks_text`, so a streamed and a non-streamed answer hash alike.
    """
    return content_text(message.content)


def content_text(content: Any) -> str:
    """:func:`message_text` of a message's ``content`` blocks."""
    text = ""
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            text += block.text
        elif kind in ("tool_use", "server_tool_use"):
            text += _tool_text(block.name, block.input)
    return text


def blocks_text(blocks: dict[int, tuple[str, Any, list[str]]]) -> str:
    """Join the streamed content blocks (exporter thread); same shape as :func:`message_text`."""
    text = ""
    for _, (kind, name, parts) in sorted(blocks.items()):
        if kind == "text":
            text += "".join(parts)
        elif kind in ("tool_use", "server_tool_use"):
            raw = "".join(parts)
            text += _tool_text(name, json.loads(raw) if raw else {})
    return text


def record_message(call: ModelCall, message: Message) -> None:
    """Finish ``call`` from a non-streamed ``Message`` (attribute reads only; usage is read off-thread).

    The message itself is not kept: a single text block (the usual answer) is its own output
    string; other content (tool use, thinking) is turned into text off-thread, from the content
    blocks alone.
    """
    content = message.content
    stop_reason = message.stop_reason
    output: str | Callable[[], str]
    if len(content) == 1 and content[0].type == "text":
        output = content[0].text
    else:
        output = functools.partial(content_text, content)
    finish_call(
        call,
        raw_usage=message.usage,
        usage_from=canonical_usage,  # on the exporter thread, as for openai
        response_model=message.model,
        response_id=message.id,
        finish_reasons=(stop_reason,) if stop_reason else None,
        output=output,
    )


class MessageStreamState(StreamState):
    """Accumulates raw ``RawMessageStreamEvent`` s: the start message, the last delta, content as strings.

    Content events are reduced to their text pieces as they pass: keeping the event objects
    until the exporter thread joined them made long-lived garbage in the agent's process.
    """

    def __init__(self) -> None:
        self.message: Any = None
        self.delta: Any = None
        self.blocks: dict[int, tuple[str, Any, list[str]]] = {}  # index -> (kind, tool name, pieces)
        self.saw_end = False

    def record_chunk(self, chunk: Any) -> None:
        """Route one event by its type."""
        kind = chunk.type
        if kind == "content_block_delta":
            block = self.blocks.get(chunk.index)
            if block is not None:
                delta = chunk.delta
                if delta.type == "text_delta":
                    block[2].append(delta.text)
                elif delta.type == "input_json_delta":
                    block[2].append(delta.partial_json)
        elif kind == "content_block_start":
            content = chunk.content_block
            self.blocks[chunk.index] = (
                content.type,
                getattr(content, "name", None),
                [getattr(content, "text", "") or ""],
            )
        elif kind == "message_start":
            self.message = chunk.message
        elif kind == "message_delta":
            self.delta = chunk
        elif kind == "message_stop":
            self.saw_end = True

    def finish(self, call: ModelCall) -> None:
        """End the call as complete, with usage from ``message_start`` and the last ``message_delta``."""
        message = self.message
        delta = self.delta
        start_usage = getattr(message, "usage", None)
        delta_usage = getattr(delta, "usage", None)
        stop_reason = getattr(getattr(delta, "delta", None), "stop_reason", None)
        blocks = self.blocks
        finish_call(
            call,
            raw_usage=StreamedUsage(start_usage, delta_usage) if start_usage is not None else None,
            usage_from=StreamedUsage.canonical,
            response_model=getattr(message, "model", None),
            response_id=getattr(message, "id", None),
            finish_reasons=[stop_reason] if stop_reason else None,
            output=lambda: blocks_text(blocks),
            stream_complete=True,
        )


def _describe(client: Any, base_url: Any) -> ClientFacts:
    return ClientFacts(provider_for_client_type(type(client)), None, server_attributes(base_url))


_clients = ClientFactsCache(_describe)


def _start(instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
    if _runtime.get_runtime() is None:
        return None
    facts = _clients.get(instance._client)
    return open_call(
        facts.provider,
        kwargs.get("model"),
        sc.OPERATION_CHAT,
        kwargs.get("stream") is True,
        facts.server,
        number(kwargs, "temperature"),
        number(kwargs, "max_tokens"),
        number(kwargs, "top_p"),
    )


def _on_result(call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    # The exact class first: isinstance on a pydantic model class goes through ABCMeta.
    if type(result) is Message or isinstance(result, Message):
        record_message(call, result)
        return result
    if isinstance(result, Stream | AsyncStream):
        return proxy_stream(result, call, MessageStreamState(), is_async=isinstance(result, AsyncStream))
    finish_call(call)  # an unfamiliar result type (a newer SDK?): record the call, usage unknown
    return result


_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def _stream_helper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrap ``messages.stream()``: the manager's deferred request now returns a recording stream.

    ``MessageStream`` iterates the raw stream it was given, so ``text_stream``,
    ``get_final_message()`` and ``until_done()`` all flow through our proxy, recorded once.
    """
    manager = wrapped(*args, **kwargs)
    if _runtime.get_runtime() is None:
        return manager
    try:
        described = {**kwargs, "stream": True}
        if hasattr(manager, _SYNC_REQUEST):
            request = getattr(manager, _SYNC_REQUEST)
            setattr(manager, _SYNC_REQUEST, deferred_sync_call(_start, _on_result, instance, described, request))
        elif hasattr(manager, _ASYNC_REQUEST):
            request = getattr(manager, _ASYNC_REQUEST)
            setattr(manager, _ASYNC_REQUEST, deferred_async_call(_start, _on_result, instance, described, request))
    except Exception as exc:
        _safety.internal_error("anthropic.stream_helper", exc)
    return manager


def instrument() -> None:
    """Patch the Anthropic SDK (idempotent)."""
    _patcher.patch(BaseClient, "_build_request", build_request_hook)
    patch_call_methods(_patcher, Messages, AsyncMessages, _start, _on_result)
    _patcher.patch(Messages, "stream", _stream_helper)
    _patcher.patch(AsyncMessages, "stream", _stream_helper)


def uninstrument() -> None:
    """Restore the Anthropic SDK's original methods."""
    _patcher.unpatch_all()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _patcher.is_patched()
