"""What the chat, Responses and embeddings wrappers of the openai SDK share: who serves the call.

The same ``openai`` SDK reaches OpenAI, Azure OpenAI and any OpenAI-compatible server (Groq,
Together, a local vLLM...). The span names the provider that serves and bills the call (as the
OTel GenAI conventions do), so pricing uses the right provider; unknown hosts stay ``openai``
and are priced by model name or a user price. That and the server address are worked out once
per client and base URL (:class:`._patching.ClientFactsCache`), not on every call.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from openai.lib.azure import BaseAzureClient

from agentprof import _semconv as sc
from agentprof._calls import ModelCall, open_call

from ._patching import ClientFacts, ClientFactsCache, number, server_attributes

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


def _describe(client: Any, base_url: Any) -> ClientFacts:
    """Who serves a client's calls, as OTel names it, the Azure deployment its base URL is bound to, the server."""
    provider, deployment = _provider_for(str(base_url), isinstance(client, BaseAzureClient))
    return ClientFacts(provider, deployment, server_attributes(base_url))


_clients = ClientFactsCache(_describe)


def start_openai_call(
    instance: Any,
    kwargs: Mapping[str, Any],
    *,
    max_tokens_keys: tuple[str, ...],
    operation: str = sc.OPERATION_CHAT,
    sampling: bool = True,
) -> ModelCall | None:
    """Begin recording a call made through resource ``instance`` (``Completions``, ``Responses``...).

    The caller has checked that agentprof is configured.

    Args:
        instance: The SDK resource whose method was called (its ``_client`` is the client).
        kwargs: The call's keyword arguments.
        max_tokens_keys: The argument names of the output cap, first found wins.
        operation: GenAI operation name.
        sampling: Whether to record temperature, top_p and the output cap.
    """
    facts = _clients.get(instance._client)
    temperature = max_tokens = top_p = None
    if sampling:
        temperature = number(kwargs, "temperature")
        for key in max_tokens_keys:
            if (max_tokens := number(kwargs, key)) is not None:
                break
        top_p = number(kwargs, "top_p")
    return open_call(
        facts.provider,
        kwargs.get("model") or facts.deployment,
        operation,
        kwargs.get("stream") is True,
        facts.server,
        temperature,
        max_tokens,
        top_p,
    )
