"""OpenAI Chat Completions and Embeddings instrumentation: where to patch and how to read the SDK.

Patched at class level (every client instance is covered, including ones made before
``instrument()``): ``Completions.create`` / ``AsyncCompletions.create`` (which the
``chat.completions.stream()`` helper and ``with_raw_response`` also go through) and
``Completions.parse`` / ``AsyncCompletions.parse`` (which post on their own),
``Embeddings.create`` / ``AsyncEmbeddings.create``, plus a hook on
``BaseClient._build_request`` that hands the serialised body and URL to the recording call.
Provider: ``gen_ai.provider.name`` is whoever serves and bills the call, not the SDK:
``azure.ai.openai`` for ``AzureOpenAI`` / ``AsyncAzureOpenAI`` clients and for Azure's
``/openai/deployments/<deployment>`` URL shape, the provider a known base URL host belongs to
(``groq``, ``together``, ``openrouter``, ``deepseek`` ...), and ``"openai"`` for api.openai.com,
local and unknown hosts (vLLM, Ollama, proxies: priced by the model name or a user price). The
SDK is implied by the instrumentation. An Azure request without a model records the deployment
as the request model.

Streams: OpenAI sends usage only when the caller asked for it with
``stream_options={"include_usage": True}``. agentprof never injects that option (user code may
index ``chunk.choices[0]``, and some compatible servers reject it), so a stream without it is
recorded as complete with usage unknown: unpriced, never $0.
"""

from __future__ import annotations

from typing import Any

from openai import AsyncStream, Stream
from openai._base_client import BaseClient
from openai.lib.streaming.chat import AsyncChatCompletionStream, ChatCompletionStream
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from agentprof import _runtime
from agentprof import _semconv as sc
from agentprof._calls import ModelCall, finish_call
from agentprof._usage import CanonicalUsage

from . import openai_responses
from ._openai_client import start_openai_call
from ._patching import (
    Patcher,
    build_request_hook,
    patch_call_methods,
)
from ._streams import StreamState, helper_close_wrapper, proxy_stream

_patcher = Patcher()


def canonical_usage(usage: Any) -> CanonicalUsage | None:
    """Chat Completions usage in canonical form (``prompt_tokens`` already includes cached tokens)."""
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens", None) or 0
    completion = getattr(usage, "completion_tokens", None) or 0
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    cache_read = getattr(prompt_details, "cached_tokens", None) or 0
    cache_write = getattr(prompt_details, "cache_write_tokens", None) or 0  # newer SDKs only
    reasoning = getattr(completion_details, "reasoning_tokens", None) or 0
    return CanonicalUsage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _tool_call_text(name: Any, arguments: Any) -> str:
    return f"\n[tool:{name or ''}] {arguments or ''}"


def completion_text(response: Any) -> str:
    r"""All choices' text plus tool calls (name and arguments), in the same shape as :func:`chunks_text`.

    Streamed and non-streamed answers to the same request must hash alike, so both paths
    produce ``content`` then one ``"\n[tool:NAME] ARGUMENTS"`` per tool call, choices joined by newlines.
    """
    parts: list[str] = []
    for choice in response.choices:
        message = choice.message
        text = message.content or message.refusal or ""
        for tool_call in message.tool_calls or ():
            function = getattr(tool_call, "function", None) or getattr(tool_call, "custom", None)
            arguments = getattr(function, "arguments", None) or getattr(function, "input", None)
            text += _tool_call_text(getattr(function, "name", None), arguments)
        parts.append(text)
    return "\n".join(parts)


def streamed_text(content: dict[int, list[str]], tools: dict[int, dict[int, list[str]]]) -> str:
    """Join the text pieces a stream delivered, per choice (exporter thread); same shape as :func:`completion_text`."""
    parts = []
    for index in sorted(content.keys() | tools.keys()):
        text = "".join(content.get(index, ()))
        for _, (name, arguments) in sorted(tools.get(index, {}).items()):
            text += _tool_call_text(name, arguments)
        parts.append(text)
    return "\n".join(parts)


def record_completion(call: ModelCall, response: ChatCompletion) -> None:
    """Finish ``call`` from a non-streamed ``ChatCompletion`` (attribute reads only).

    The usage object goes to the exporter thread as it is (canonical usage is read from it
    there); the response itself is not kept. One choice without tool calls (the usual answer)
    takes no string work at all: its text is the message's own string.
    """
    choices = response.choices
    if len(choices) == 1:
        choice = choices[0]
        message = choice.message
        reason = choice.finish_reason
        reasons: tuple[str, ...] | list[str] | None = (reason,) if reason else None
        output = (message.content or message.refusal or "") if not message.tool_calls else completion_text(response)
    else:
        reasons = [choice.finish_reason for choice in choices if choice.finish_reason]
        output = completion_text(response)
    finish_call(
        call,
        raw_usage=response.usage,
        usage_from=canonical_usage,
        response_model=response.model,
        response_id=response.id,
        finish_reasons=reasons,
        output=output,
    )


class ChatStreamState(StreamState):
    """Accumulates a ``Stream[ChatCompletionChunk]``: text pieces, finish reasons, the last usage.

    Only strings are kept, never the chunk objects: holding every chunk (pydantic models with
    nested choices and deltas) until the exporter thread joined the text made long-lived garbage
    that triggered full garbage collections in the agent's process.
    """

    def __init__(self, expect_usage: bool) -> None:
        self.content: dict[int, list[str]] = {}
        self.tools: dict[int, dict[int, list[str]]] = {}  # choice -> tool call index -> [name, arguments]
        self.usage: Any = None
        self.finish_reasons: dict[int, str] = {}
        self.model: Any = None
        self.response_id: Any = None
        self.first = True
        self.expect_usage = expect_usage
        self.saw_end = False

    def record_chunk(self, chunk: Any) -> None:
        """Take the chunk's text pieces; note finish reasons and the usage chunk (the stream's last one)."""
        if self.first:
            self.first = False
            self.model = chunk.model
            self.response_id = chunk.id
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta is not None:
                pieces = self.content.get(choice.index)
                if pieces is None:
                    pieces = self.content[choice.index] = []
                piece = delta.content or delta.refusal
                if piece:
                    pieces.append(piece)
                tool_calls = delta.tool_calls
                if tool_calls:
                    self._record_tool_calls(choice.index, tool_calls)
            if choice.finish_reason:
                self.finish_reasons[choice.index] = choice.finish_reason
                if not self.expect_usage:
                    self.saw_end = True
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
            self.saw_end = True

    def _record_tool_calls(self, choice_index: int, tool_calls: Any) -> None:
        slots = self.tools.setdefault(choice_index, {})
        for tool_call in tool_calls:
            slot = slots.setdefault(tool_call.index, ["", ""])
            function = tool_call.function
            if function is not None:
                slot[0] += function.name or ""
                slot[1] += function.arguments or ""

    def finish(self, call: ModelCall) -> None:
        """End the call as complete; usage unknown unless ``include_usage`` delivered it."""
        content, tools = self.content, self.tools
        finish_call(
            call,
            raw_usage=self.usage,
            usage_from=canonical_usage,
            response_model=self.model,
            response_id=self.response_id,
            finish_reasons=[reason for _, reason in sorted(self.finish_reasons.items())],
            output=lambda: streamed_text(content, tools),
            stream_complete=True,
        )


_MAX_TOKENS_KEYS = ("max_completion_tokens", "max_tokens")


def _start(instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
    if _runtime.get_runtime() is None:
        return None
    return start_openai_call(instance, kwargs, max_tokens_keys=_MAX_TOKENS_KEYS)


def _on_result(call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    # The exact class first: isinstance on a pydantic model class goes through ABCMeta.
    if type(result) is ChatCompletion or isinstance(result, ChatCompletion):
        record_completion(call, result)
        return result
    if isinstance(result, Stream | AsyncStream):
        options = kwargs.get("stream_options")
        expect_usage = isinstance(options, dict) and options.get("include_usage") is True
        return proxy_stream(result, call, ChatStreamState(expect_usage), is_async=isinstance(result, AsyncStream))
    finish_call(call)  # an unfamiliar result type (a newer SDK?): record the call, usage unknown
    return result


def _start_embeddings(instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
    if _runtime.get_runtime() is None:
        return None
    return start_openai_call(instance, kwargs, max_tokens_keys=(), operation=sc.OPERATION_EMBEDDINGS, sampling=False)


def _on_embeddings(call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    """Record an embeddings response: input tokens only, no output text to hash."""
    usage = getattr(result, "usage", None) if isinstance(result, CreateEmbeddingResponse) else None
    prompt = getattr(usage, "prompt_tokens", None)
    finish_call(
        call,
        usage=CanonicalUsage(input_tokens=prompt) if isinstance(prompt, int) else None,
        raw_usage=usage,
        response_model=getattr(result, "model", None),
    )
    return result


def instrument() -> None:
    """Patch the OpenAI SDK (idempotent)."""
    _patcher.patch(BaseClient, "_build_request", build_request_hook)
    patch_call_methods(_patcher, Completions, AsyncCompletions, _start, _on_result)
    patch_call_methods(_patcher, Embeddings, AsyncEmbeddings, _start_embeddings, _on_embeddings, ("create",))
    # The .stream() helper closes only the HTTP response: end the raw stream's span with it.
    _patcher.patch(ChatCompletionStream, "close", helper_close_wrapper)
    _patcher.patch(AsyncChatCompletionStream, "close", helper_close_wrapper)
    openai_responses.instrument()


def uninstrument() -> None:
    """Restore the OpenAI SDK's original methods."""
    _patcher.unpatch_all()
    openai_responses.uninstrument()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _patcher.is_patched()
