"""What the chat, Responses and embeddings wrappers of the openai SDK share: who serves the call.

The same ``openai`` SDK reaches OpenAI, Azure OpenAI and any OpenAI-compatible server (Groq,
Together, a local vLLM...). The span names the provider that serves and bills the call (as the
OTel GenAI conventions do), read from the client once per base URL, so pricing uses the right
provider; unknown hosts stay ``openai`` and are priced by model name or a user price.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from openai.lib.azure import BaseAzureClient

from agentprof import _semconv as sc
from agentprof._calls import ModelCall, start_call

from ._patching import number

PROVIDER = "openai"
AZURE = "azure.ai.openai"


@functools.lru_cache(maxsize=256)
def _provider_for(base_url: str, azure: bool) -> tuple[str, str | None]:
    """``(provider name, Azure deployment or None)`` for a client's base URL, computed once per URL."""
    from agentprof.pricing._normalize import AZURE_DEPLOYMENT_PATH, serving_provider_name

    _, found, rest = base_url.partition(AZURE_DEPLOYMENT_PATH)
    deployment = (rest.partition("/")[0].partition("?")[0] or None) if found else None
    if azure:
        return AZURE, deployment
    provider = serving_provider_name(base_url, PROVIDER)
    return provider, deployment if provider == AZURE else None


def serving_provider(client: Any) -> tuple[str, str | None]:
    """Who serves a client's calls, as OTel names it, and the Azure deployment its base URL is bound to."""
    return _provider_for(str(client.base_url), isinstance(client, BaseAzureClient))


def start_openai_call(
    instance: Any,
    kwargs: Mapping[str, Any],
    *,
    max_tokens_keys: Iterable[str],
    operation: str = sc.OPERATION_CHAT,
    sampling: bool = True,
) -> ModelCall | None:
    """Begin recording a call made through resource ``instance`` (``Completions``, ``Responses``...).

    Args:
        instance: The SDK resource whose method was called (its ``_client`` is the client).
        kwargs: The call's keyword arguments.
        max_tokens_keys: The argument names of the output cap, first found wins.
        operation: GenAI operation name.
        sampling: Whether to record temperature, top_p and the output cap.
    """
    client = instance._client
    url = client.base_url
    provider, deployment = serving_provider(client)
    attributes: dict[str, Any] = {sc.SERVER_ADDRESS: url.host}
    if url.port is not None:
        attributes[sc.SERVER_PORT] = url.port
    if sampling:
        if (value := number(kwargs, "temperature")) is not None:
            attributes[sc.GEN_AI_REQUEST_TEMPERATURE] = value
        for key in max_tokens_keys:
            if (value := number(kwargs, key)) is not None:
                attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = value
                break
        if (value := number(kwargs, "top_p")) is not None:
            attributes[sc.GEN_AI_REQUEST_TOP_P] = value
    return start_call(
        provider,
        kwargs.get("model") or deployment,
        operation=operation,
        stream=kwargs.get("stream") is True,
        request_attributes=attributes,
    )
