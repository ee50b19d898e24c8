"""OpenAI Responses API instrumentation: where to patch and how to read the SDK's objects.

Patched at class level, by :func:`agentprof.integrations.openai.instrument` (which also installs
the request-body hook on ``BaseClient._build_request`` that this module relies on):

* ``Responses.create`` / ``AsyncResponses.create``, plain and ``stream=True``. The
  ``responses.stream()`` helper is *not* patched: it sends its request through ``create``
  (a ``functools.partial`` of it when sync, an un-awaited ``create(...)`` coroutine when async),
  so wrapping it too would record every helper call twice. ``with_raw_response`` goes through
  ``create`` as well.
* ``Responses.parse`` / ``AsyncResponses.parse``, which post on their own.
* ``ResponseStream.close`` / ``AsyncResponseStream.close`` (the helper's stream): they close the
  HTTP response, not the raw stream the helper wraps, so without this hook a helper left early
  would end its span only when a garbage collection broke the helper's reference cycle.

``responses.retrieve(stream=True)`` and ``responses.stream(response_id=...)`` replay a response
that was already created (and recorded); they are not model calls and are not recorded.

Usage is canonical as it arrives: ``input_tokens`` already includes ``cached_tokens`` and
``output_tokens`` already includes ``reasoning_tokens``. A stream's usage comes from its terminal
event (``response.completed``, ``response.incomplete`` or ``response.failed``, each carrying the
whole response); a stream that ends before one is unpriced, never $0.

Finish reason (the Responses API has none; one value is recorded, derived from the response):
``incomplete_details.reason`` for an incomplete response (``"max_output_tokens"``,
``"content_filter"``, else ``"incomplete"``); ``"tool_calls"`` for a completed response whose
output asks the client to run a tool, the token Chat Completions uses, so the rules that tell an
agent loop from a re-ask (``"tool"`` in the finish reasons) treat both APIs alike; otherwise the
``status`` itself (``"completed"``, ``"failed"``, ``"cancelled"``, ``"queued"`` for background).
"""

from __future__ import annotations

import functools
from typing import Any

from openai import AsyncStream, Stream

from agentprof import _runtime
from agentprof._calls import ModelCall, finish_call
from agentprof._usage import CanonicalUsage

from ._openai_client import start_openai_call
from ._patching import Patcher, patch_call_methods
from ._streams import StreamState, helper_close_wrapper, proxy_stream

try:
    from openai.lib.streaming.responses import AsyncResponseStream, ResponseStream
    from openai.resources.responses import AsyncResponses, Responses
    from openai.types.responses import Response

    SDK_HAS_RESPONSES = True
except ImportError:  # openai < 1.66 predates the Responses API: there is nothing to instrument
    SDK_HAS_RESPONSES = False

PROVIDER = "openai"
_patcher = Patcher()

CLIENT_TOOL_CALLS = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
        "mcp_approval_request",
    }
)
"""Output item types the client must act on before the model can go on (hosted tools are excluded)."""

_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def canonical_usage(usage: Any) -> CanonicalUsage | None:
    """Responses usage in canonical form (``input_tokens`` already includes cached tokens)."""
    if usage is None:
        return None
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    return CanonicalUsage(
        input_tokens=getattr(usage, "input_tokens", None) or 0,
        output_tokens=getattr(usage, "output_tokens", None) or 0,
        cache_read_tokens=getattr(input_details, "cached_tokens", None) or 0,
        cache_write_tokens=getattr(input_details, "cache_write_tokens", None) or 0,  # newer SDKs only
        reasoning_tokens=getattr(output_details, "reasoning_tokens", None) or 0,
    )


def finish_reason(status: Any, incomplete_reason: Any, called_tools: bool) -> str | None:
    """The one finish reason recorded for a response (the rule is in the module docstring)."""
    if status == "incomplete":
        return str(incomplete_reason or status)
    if status == "completed" and called_tools:
        return "tool_calls"
    return status if isinstance(status, str) else None


def _tool_text(name: Any, arguments: Any) -> str:
    # The shape Chat Completions' output uses too: one answer hashes alike through either API.
    return f"\n[tool:{name or ''}] {arguments or ''}"


def response_text(response: Any) -> str:
    r"""Output text plus tool calls, in the same shape as :func:`streamed_text`.

    Message items contribute their text (or refusal) parts; ``function_call`` and
    ``custom_tool_call`` items ``"\n[tool:NAME] ARGUMENTS"``; everything else (reasoning,
    hosted tool calls) nothing, as it is not the answer.
    """
    return items_text(response.output)


def items_text(items: Any) -> str:
    """:func:`response_text` of a response's ``output`` items."""
    text = ""
    for item in items or ():
        kind = getattr(item, "type", None)
        if kind == "message":
            for part in item.content or ():
                text += getattr(part, "text", None) or getattr(part, "refusal", None) or ""
        elif kind == "function_call":
            text += _tool_text(item.name, item.arguments)
        elif kind == "custom_tool_call":
            text += _tool_text(item.name, item.input)
    return text


def streamed_text(items: dict[int, tuple[str, Any, list[str]]]) -> str:
    """Join the streamed output items (exporter thread); same shape as :func:`response_text`."""
    text = ""
    for _, (kind, name, pieces) in sorted(items.items()):
        if kind == "message":
            text += "".join(pieces)
        else:
            text += _tool_text(name, "".join(pieces))
    return text


def _called_tools(response: Any) -> bool:
    return any(getattr(item, "type", None) in CLIENT_TOOL_CALLS for item in response.output or ())


def record_response(call: ModelCall, response: Response) -> None:
    """Finish ``call`` from a non-streamed ``Response`` (attribute reads only).

    The output text is joined off-thread from the output items alone: the response itself
    (instructions, tools, the whole request echo) is not kept.
    """
    usage = response.usage
    details = response.incomplete_details
    reason = finish_reason(response.status, getattr(details, "reason", None), _called_tools(response))
    finish_call(
        call,
        usage=canonical_usage(usage),
        raw_usage=usage,
        response_model=response.model,
        response_id=response.id,
        finish_reasons=(reason,) if reason else None,
        output=functools.partial(items_text, response.output),
    )


class ResponseEventsState(StreamState):
    """Accumulates a ``Stream[ResponseStreamEvent]``: per output item, its kind, tool name and text pieces.

    Only strings are kept, never the event objects (the :class:`StreamState` contract); from
    the terminal event only its usage, model, id and finish reason are taken, not the response.
    """

    def __init__(self) -> None:
        self.items: dict[int, tuple[str, Any, list[str]]] = {}  # output index -> (kind, tool name, pieces)
        self.called_tools = False
        self.usage: Any = None
        self.model: Any = None
        self.response_id: Any = None
        self.reason: str | None = None
        self.saw_end = False

    def record_chunk(self, chunk: Any) -> None:
        """Route one event by its type; deltas first, as nearly every event is one."""
        kind = chunk.type
        if kind in (
            "response.output_text.delta",
            "response.refusal.delta",
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
        ):
            item = self.items.get(chunk.output_index)
            if item is not None:
                item[2].append(chunk.delta)
        elif kind == "response.output_item.added":
            self._item_added(chunk.output_index, chunk.item)
        elif kind == "response.created":
            self.model = chunk.response.model
            self.response_id = chunk.response.id
        elif kind in _TERMINAL_EVENTS:
            self._ended(chunk.response)

    def _item_added(self, index: int, item: Any) -> None:
        kind = item.type
        if kind == "message":
            self.items[index] = (kind, None, [])
        elif kind == "function_call":
            self.items[index] = (kind, item.name, [item.arguments or ""])
        elif kind == "custom_tool_call":
            self.items[index] = (kind, item.name, [item.input or ""])
        if kind in CLIENT_TOOL_CALLS:
            self.called_tools = True

    def _ended(self, response: Any) -> None:
        self.saw_end = True
        self.usage = response.usage
        self.model = response.model or self.model
        self.response_id = response.id or self.response_id
        details = response.incomplete_details
        self.reason = finish_reason(response.status, getattr(details, "reason", None), self.called_tools)

    def finish(self, call: ModelCall) -> None:
        """End the call as complete; usage unknown unless a terminal event delivered it."""
        items = self.items
        finish_call(
            call,
            usage=canonical_usage(self.usage),
            raw_usage=self.usage,
            response_model=self.model,
            response_id=self.response_id,
            finish_reasons=[self.reason] if self.reason else None,
            output=lambda: streamed_text(items),
            stream_complete=True,
        )


def _start(instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
    if _runtime.get_runtime() is None:
        return None
    return start_openai_call(instance, kwargs, max_tokens_keys=("max_output_tokens",))


def _on_result(call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    if isinstance(result, Response):  # ParsedResponse (from parse) is one too
        record_response(call, result)
        return result
    if isinstance(result, Stream | AsyncStream):
        return proxy_stream(result, call, ResponseEventsState(), is_async=isinstance(result, AsyncStream))
    finish_call(call)  # an unfamiliar result type (a newer SDK?): record the call, usage unknown
    return result


def instrument() -> None:
    """Patch the Responses resources (idempotent); called by the OpenAI integration's ``instrument()``."""
    if not SDK_HAS_RESPONSES:
        return
    patch_call_methods(_patcher, Responses, AsyncResponses, _start, _on_result)
    _patcher.patch(ResponseStream, "close", helper_close_wrapper)
    _patcher.patch(AsyncResponseStream, "close", helper_close_wrapper)


def uninstrument() -> None:
    """Restore the Responses resources' original methods."""
    _patcher.unpatch_all()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _patcher.is_patched()
