"""Google Gen AI SDK (``google-genai``, Gemini) instrumentation: where to patch and how to read the SDK.

Patched at class level, one level below the public methods, so that one HTTP request is one span:
``Models._generate_content`` / ``AsyncModels._generate_content`` send one ``generateContent``
request, ``Models._generate_content_stream`` / ``AsyncModels._generate_content_stream`` one
``streamGenerateContent`` request. The public ``generate_content`` / ``generate_content_stream``
(and ``chats``, built on them) loop over these: automatic function calling sends one request per
remote call and automatic continuation one per hop, each billed on its own, and the public
methods return usage merged across them. Patching them would record several requests as one.

The request body: the SDK has no request builder that sees the serialised bytes (it calls
``json.dumps`` inside ``BaseApiClient._request_once`` and hands a ``str`` to httpx, aiohttp or
requests). So ``_request_once`` / ``_async_request_once`` are hooked (once per HTTP attempt, so
retries are counted) and the request dict is serialised here, for ``generateContent`` URLs only,
as a *fingerprint view* (:func:`fingerprint_body`): the keys renamed to the vocabulary the
fingerprinter reads, plus the model, which Gemini puts in the URL. It costs one more
``json.dumps`` of the request on the caller's thread; the SDK does the same once itself.

A sync ``_generate_content_stream`` is a generator: its request goes out on the first
``next()``, so the stream proxy binds the call while that first chunk is pulled. The async one
sends its request when awaited and returns an async generator, like the other SDKs.

Usage is canonicalised: ``prompt_token_count`` already *includes* ``cached_content_token_count``;
``tool_use_prompt_token_count`` (results of built-in tools such as Google Search, fed back to the
model) is added to input, as genai-prices does; output is ``candidates_token_count`` plus
``thoughts_token_count``, which Gemini reports separately. In a stream every chunk carries the
running usage of the request, so the last chunk that has ``usage_metadata`` wins.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from google.genai import types
from google.genai._api_client import BaseApiClient
from google.genai.models import AsyncModels, Models

from agentprof import _runtime, _safety
from agentprof import _semconv as sc
from agentprof._calls import ModelCall, bind_request, capture_request, finish_call, start_call, unbind_request
from agentprof._usage import CanonicalUsage

from ._patching import Patcher, StartCall, Wrapper, async_call_wrapper, sync_call_wrapper
from ._streams import StreamRecorder, StreamState, SyncStreamProxy, proxy_stream

PROVIDER = "gcp.gemini"
"""OTel ``gen_ai.provider.name`` of the Gemini Developer API."""
VERTEX_PROVIDER = "gcp.vertex_ai"
"""OTel ``gen_ai.provider.name`` of a client made with ``vertexai=True``."""
OPERATION = "generate_content"
"""OTel ``gen_ai.operation.name`` for Gemini's multimodal ``generateContent``."""

_GENERATE_METHODS = (":generateContent", ":streamGenerateContent")
_patcher = Patcher()


def canonical_usage(usage: Any) -> CanonicalUsage | None:
    """``usage_metadata`` in canonical form (input includes the cache; output includes thoughts)."""
    if usage is None:
        return None
    thoughts = getattr(usage, "thoughts_token_count", None) or 0
    return CanonicalUsage(
        input_tokens=(getattr(usage, "prompt_token_count", None) or 0)
        + (getattr(usage, "tool_use_prompt_token_count", None) or 0),
        output_tokens=(getattr(usage, "candidates_token_count", None) or 0) + thoughts,
        cache_read_tokens=getattr(usage, "cached_content_token_count", None) or 0,
        reasoning_tokens=thoughts,
    )


def _tool_text(name: Any, args: Any) -> str:
    return f"\n[tool:{name or ''}] {json.dumps(args or {}, separators=(',', ':'), sort_keys=True, default=str)}"


def _add_parts(pieces: list[str], parts: Any) -> None:
    """Append the answer's pieces of ``parts``: text and function calls; thoughts are not the answer."""
    for part in parts or ():
        if part.thought:
            continue
        if part.text:
            pieces.append(part.text)
        elif (call := part.function_call) is not None:
            pieces.append(_tool_text(call.name, call.args))


def response_text(response: Any) -> str:
    r"""Each candidate's text and function calls (``"\n[tool:NAME] ARGS"``), candidates joined by newlines.

    Same shape as :func:`streamed_text`, so a streamed and a non-streamed answer hash alike.
    """
    texts: dict[int, list[str]] = {}
    for candidate in response.candidates or ():
        content = candidate.content
        _add_parts(texts.setdefault(candidate.index or 0, []), content.parts if content is not None else None)
    return streamed_text(texts)


def streamed_text(texts: Mapping[int, list[str]]) -> str:
    """Join the pieces per candidate, in candidate order (exporter thread)."""
    return "\n".join("".join(texts[index]) for index in sorted(texts))


def _reason(value: Any) -> str:
    return str(getattr(value, "value", value))  # FinishReason is an enum of the API's strings


def finish_reasons(candidates: Any) -> list[str]:
    """The candidates' finish reasons as the API spells them (``STOP``, ``MAX_TOKENS`` ...), in order."""
    return [_reason(candidate.finish_reason) for candidate in candidates or () if candidate.finish_reason]


def record_response(call: ModelCall, response: types.GenerateContentResponse) -> None:
    """Finish ``call`` from a non-streamed ``GenerateContentResponse`` (attribute reads only)."""
    usage = response.usage_metadata
    finish_call(
        call,
        usage=canonical_usage(usage),
        raw_usage=usage,
        response_model=response.model_version,
        response_id=response.response_id,
        finish_reasons=finish_reasons(response.candidates),
        output=lambda: response_text(response),
    )


class ContentStreamState(StreamState):
    """Accumulates the chunks of one ``streamGenerateContent`` request: pieces as strings, the last usage.

    The end is the chunk carrying a ``finish_reason``: the API sends the final usage on that chunk,
    so a stream closed after it is complete.
    """

    def __init__(self) -> None:
        self.texts: dict[int, list[str]] = {}
        self.finish_reasons: dict[int, str] = {}
        self.usage: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.saw_end = False

    def record_chunk(self, chunk: Any) -> None:
        """Take the chunk's text and function calls, its finish reasons and its (running) usage."""
        if chunk.usage_metadata is not None:
            self.usage = chunk.usage_metadata
        if self.model is None:
            self.model = chunk.model_version
            self.response_id = chunk.response_id
        for candidate in chunk.candidates or ():
            index = candidate.index or 0
            content = candidate.content
            if content is not None and content.parts:
                _add_parts(self.texts.setdefault(index, []), content.parts)
            if candidate.finish_reason:
                self.finish_reasons[index] = _reason(candidate.finish_reason)
                self.saw_end = True

    def finish(self, call: ModelCall) -> None:
        """End the call as complete, with the usage of the last chunk that had some."""
        texts = self.texts
        finish_call(
            call,
            usage=canonical_usage(self.usage),
            raw_usage=self.usage,
            response_model=self.model,
            response_id=self.response_id,
            finish_reasons=[reason for _, reason in sorted(self.finish_reasons.items())],
            output=lambda: streamed_text(texts),
            stream_complete=True,
        )


class GeneratorStreamProxy(SyncStreamProxy):
    """A :class:`SyncStreamProxy` around a generator that sends its request on the first ``next()``.

    The call is bound while that first chunk is pulled, so the request hook hands it the body;
    later chunks run unbound, like any stream.
    """

    def __init__(self, wrapped: Any, recorder: StreamRecorder, call: ModelCall) -> None:
        super().__init__(wrapped, recorder)
        self._self_unsent: ModelCall | None = call

    def __iter__(self) -> GeneratorStreamProxy:  # type: ignore[override]
        return self  # every chunk through __next__ below, which binds the request on the first

    def __next__(self) -> Any:
        call = self._self_unsent
        if call is None:
            return super().__next__()
        self._self_unsent = None
        token = bind_request(call)
        try:
            return super().__next__()
        finally:
            unbind_request(token)


def _config_number(config: Any, name: str) -> int | float | None:
    value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _starter(stream: bool) -> StartCall:
    """The start hook of the plain (``stream=False``) or the streaming method."""

    def start(instance: Any, kwargs: dict[str, Any]) -> ModelCall | None:
        if _runtime.get_runtime() is None:
            return None
        api_client = instance._api_client
        attributes: dict[str, Any] = {}
        url = urlsplit(api_client._http_options.base_url or "")
        if url.hostname:
            attributes[sc.SERVER_ADDRESS] = url.hostname
        if url.port is not None:
            attributes[sc.SERVER_PORT] = url.port
        config = kwargs.get("config")
        if config is not None:
            for name, key in (
                ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
                ("max_output_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
                ("top_p", sc.GEN_AI_REQUEST_TOP_P),
            ):
                if (value := _config_number(config, name)) is not None:
                    attributes[key] = value
        return start_call(
            VERTEX_PROVIDER if api_client.vertexai else PROVIDER,
            kwargs.get("model"),
            operation=OPERATION,
            stream=stream,
            request_attributes=attributes,
        )

    return start


def _on_result(call: ModelCall, result: Any, kwargs: dict[str, Any]) -> Any:
    if isinstance(result, types.GenerateContentResponse):
        record_response(call, result)
        return result
    if inspect.isgenerator(result):
        return GeneratorStreamProxy(result, StreamRecorder(call, ContentStreamState()), call)
    if inspect.isasyncgen(result):
        return proxy_stream(result, call, ContentStreamState(), is_async=True)
    finish_call(call)  # an unfamiliar result type (a newer SDK?): record the call, usage unknown
    return result


def _flat_tools(tools: Any) -> list[Any]:
    """Tools one entry per function (Gemini groups declarations in one ``Tool``), other tools as they are."""
    flat: list[Any] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            flat.append(tool)
            continue
        flat.extend(tool.get("functionDeclarations") or ())
        others = {key: value for key, value in tool.items() if key != "functionDeclarations"}
        if others:
            flat.append(others)
    return flat


def _tool_choice(tool_config: Any) -> str | None:
    """``toolConfig.functionCallingConfig`` in OpenAI's words: ``auto``, ``none``, ``required`` or the forced name."""
    calling = tool_config.get("functionCallingConfig") if isinstance(tool_config, dict) else None
    mode = calling.get("mode") if isinstance(calling, dict) else None
    if not isinstance(mode, str):
        return None
    if mode.upper() == "ANY":
        names = calling.get("allowedFunctionNames") if isinstance(calling, dict) else None
        return str(names[0]) if isinstance(names, list) and len(names) == 1 else "required"
    return mode.lower()


def _response_format(generation_config: Any) -> str | None:
    """``json_schema`` / ``json_object`` when ``generationConfig`` asks for JSON output."""
    if not isinstance(generation_config, dict) or generation_config.get("responseMimeType") != "application/json":
        return None
    schema_keys = ("responseSchema", "responseJsonSchema", "response_json_schema")
    return "json_schema" if any(generation_config.get(key) for key in schema_keys) else "json_object"


def fingerprint_body(data: Mapping[str, Any], model: str | None) -> bytes:
    """The request as the fingerprinter reads it: OpenAI/Anthropic key names, and the model.

    ``contents`` become ``messages`` (one prefix boundary per turn), ``systemInstruction``
    becomes ``system``, ``tools`` are listed one per function (so ``tool_count`` counts
    functions), ``toolConfig`` and ``generationConfig`` also yield ``tool_choice`` and
    ``response_format``. Every other key is kept, so the request fingerprint still covers it.
    """
    view: dict[str, Any] = {"model": model}
    for key, value in data.items():
        if key == "contents":
            view["messages"] = value
        elif key == "systemInstruction":
            view["system"] = value
        elif key == "tools":
            view["tools"] = _flat_tools(value)
        else:
            view[key] = value
    if (choice := _tool_choice(data.get("toolConfig"))) is not None:
        view["tool_choice"] = choice
    if (response_format := _response_format(data.get("generationConfig"))) is not None:
        view["response_format"] = {"type": response_format}
    return json.dumps(view, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _model_in_url(url: str) -> str | None:
    """``gemini-2.5-flash`` from ``.../models/gemini-2.5-flash:generateContent`` (Vertex paths too)."""
    path = urlsplit(url).path
    name = path.rsplit("/models/", 1)[-1] if "/models/" in path else None
    return name.split(":", 1)[0] if name else None


def request_hook(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper for ``BaseApiClient._request_once`` / ``_async_request_once``: hand the body to the bound call.

    Runs once per HTTP attempt, before the SDK sends it. Only ``generateContent`` requests made while
    agentprof is configured are serialised; any failure here is ours and swallowed.
    """
    try:
        request: Any = args[0] if args else kwargs.get("http_request")
        url = str(getattr(request, "url", ""))
        if _runtime.get_runtime() is not None and any(method in url for method in _GENERATE_METHODS):
            data = request.data
            body = fingerprint_body(data, _model_in_url(url)) if isinstance(data, dict) else None
            capture_request(body, url)
    except Exception as exc:
        _safety.internal_error("google_genai.capture_request", exc)
    return wrapped(*args, **kwargs)


def instrument() -> None:
    """Patch the google-genai SDK (idempotent)."""
    hook: Wrapper = request_hook
    _patcher.patch(BaseApiClient, "_request_once", hook)
    _patcher.patch(BaseApiClient, "_async_request_once", hook)
    _patcher.patch(Models, "_generate_content", sync_call_wrapper(_starter(False), _on_result))
    _patcher.patch(Models, "_generate_content_stream", sync_call_wrapper(_starter(True), _on_result))
    _patcher.patch(AsyncModels, "_generate_content", async_call_wrapper(_starter(False), _on_result))
    _patcher.patch(AsyncModels, "_generate_content_stream", async_call_wrapper(_starter(True), _on_result))


def uninstrument() -> None:
    """Restore the google-genai SDK's original methods."""
    _patcher.unpatch_all()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _patcher.is_patched()
