"""``agentprof.record_model_call``: record a call made through a client agentprof does not wrap.

A custom HTTP client, a local model, a provider without an SDK integration: the user says which
provider and model, and what the call used; everything downstream (pricing, fingerprints, the
report, the recommendations) treats the call exactly like an instrumented one, because it goes
through the same recorder (:mod:`agentprof._calls`).

Typical use::

    with agentprof.record_model_call("vllm", "llama-3.1-70b", base_url=URL) as call:
        call.set_request({"model": "llama-3.1-70b", "messages": messages})  # optional: fingerprints
        reply = my_client.chat(messages)
        call.set_usage(input_tokens=reply.prompt_tokens, output_tokens=reply.completion_tokens)
        call.set_response(model=reply.model, output_text=reply.text, finish_reasons=["stop"])

An exception leaving the block marks the call failed and propagates unchanged. A call whose
usage was never set is recorded with unknown usage (unpriced, never $0). Mistakes in the
arguments (negative counts, cache reads above the input) raise ``ValueError`` at once: they
are bugs in the calling code, and silently recording wrong money would be worse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from agentprof import _calls, _runtime, _safety
from agentprof import _semconv as sc
from agentprof._usage import CanonicalUsage

__all__ = ["RecordedCall", "record_model_call"]


class RecordedCall:
    """The handle ``record_model_call`` yields: tell it what the call used and returned."""

    __slots__ = ("_call", "_finish_reasons", "_output", "_response_id", "_response_model", "_usage")

    def __init__(self, call: _calls.ModelCall | None) -> None:
        self._call = call
        self._usage: CanonicalUsage | None = None
        self._response_model: str | None = None
        self._response_id: str | None = None
        self._finish_reasons: list[str] | None = None
        self._output: str | None = None

    def set_usage(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int | None = None,
        reasoning_tokens: int = 0,
    ) -> None:
        """The tokens the provider billed, with agentprof's meaning of each count.

        Args:
            input_tokens: All input tokens, cache reads and writes included.
            output_tokens: All output tokens, reasoning included.
            cache_read_tokens: Part of the input served from the provider's prompt cache.
            cache_write_tokens: Part of the input written to the cache (all TTLs).
            cache_write_1h_tokens: Part of the writes with a 1-hour TTL, if the provider says.
            reasoning_tokens: Part of the output spent on reasoning.

        Raises:
            ValueError: A count is not a non-negative integer, or a part exceeds its total.
        """
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
        }
        if cache_write_1h_tokens is not None:
            counts["cache_write_1h_tokens"] = cache_write_1h_tokens
        for name, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"record_model_call: {name} must be a non-negative integer, got {value!r}")
        if cache_read_tokens + cache_write_tokens > input_tokens:
            raise ValueError(
                "record_model_call: cache_read_tokens + cache_write_tokens exceed input_tokens "
                "(input_tokens counts all input, cached included)"
            )
        if reasoning_tokens > output_tokens:
            raise ValueError("record_model_call: reasoning_tokens exceed output_tokens (output includes reasoning)")
        if cache_write_1h_tokens is not None and cache_write_1h_tokens > cache_write_tokens:
            raise ValueError("record_model_call: cache_write_1h_tokens exceed cache_write_tokens")
        self._usage = CanonicalUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            cache_write_5m_tokens=None if cache_write_1h_tokens is None else cache_write_tokens - cache_write_1h_tokens,
            cache_write_1h_tokens=cache_write_1h_tokens,
            reasoning_tokens=reasoning_tokens,
        )

    def set_response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        output_text: str | None = None,
    ) -> None:
        """What came back: the model that answered, its id, finish reasons and the answer text.

        The text is hashed for the cache and downgrade analyses and stored only when content
        capture is on.
        """
        self._response_model = model
        self._response_id = response_id
        self._finish_reasons = list(finish_reasons) if finish_reasons is not None else None
        self._output = output_text

    def set_request(self, body: Mapping[str, Any]) -> None:
        """The request as a JSON-able mapping in the provider's format (OpenAI or Anthropic style).

        Optional: it gives the call request and prefix fingerprints, which the exact-cache and
        prompt-cache recommendations need. Its text is stored only when content capture is on.
        """
        call = self._call
        if call is None:
            return
        try:
            call.body = json.dumps(body, default=str).encode("utf-8")
            call.attempts = max(call.attempts, 1)
        except Exception as exc:  # a body json cannot encode must not break the caller
            _safety.internal_error("record_model_call.request", exc)

    def _finish(self, error: BaseException | None) -> None:
        output = self._output
        _calls.finish_call(
            self._call,
            usage=self._usage,
            response_model=self._response_model,
            response_id=self._response_id,
            finish_reasons=self._finish_reasons,
            output=(lambda: output) if output is not None else None,
            error=error,
        )


@contextmanager
def record_model_call(
    provider: str,
    model: str,
    *,
    operation: str = sc.OPERATION_CHAT,
    base_url: str | None = None,
    stream: bool = False,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> Iterator[RecordedCall]:
    """Record one model call made by code agentprof does not instrument.

    Args:
        provider: Provider name (``"openai"``, ``"anthropic"``, ``"vllm"``, ...), used for
            pricing together with ``model``; user prices in ``[tool.agentprof.prices]`` apply.
        model: The requested model.
        operation: ``"chat"`` (default), ``"embeddings"``, ...
        base_url: The endpoint, for OpenAI-compatible servers whose provider the URL tells.
        stream: Whether the answer was streamed.
        temperature: Sampling temperature, if set (lowers exact-cache confidence when > 0).
        max_tokens: Output cap, if set.

    Yields:
        A :class:`RecordedCall` to give usage, response and (optionally) the request.
    """
    call: _calls.ModelCall | None = None
    try:
        _runtime.ensure_configured()
        attributes: dict[str, Any] = {}
        if base_url:
            parts = urlsplit(base_url)
            if parts.hostname:
                attributes[sc.SERVER_ADDRESS] = parts.hostname
            if parts.port is not None:
                attributes[sc.SERVER_PORT] = parts.port
        if temperature is not None:
            attributes[sc.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)
        if max_tokens is not None:
            attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)
        call = _calls.start_call(provider, model, operation=operation, stream=stream, request_attributes=attributes)
        if call is not None and base_url:
            call.url = base_url
    except Exception as exc:
        _safety.internal_error("record_model_call.start", exc)
    recorded = RecordedCall(call)
    try:
        yield recorded
    except BaseException as exc:
        _finish_safely(recorded, exc)
        raise
    _finish_safely(recorded, None)


def _finish_safely(recorded: RecordedCall, error: BaseException | None) -> None:
    try:
        recorded._finish(error)
    except Exception as exc:
        _safety.internal_error("record_model_call.finish", exc)
