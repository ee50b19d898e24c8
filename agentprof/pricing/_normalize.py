"""Turn what an SDK or a span says about a model into a (provider, model) genai-prices can price.

genai-prices matches model names well (dated snapshots, Bedrock region prefixes, Vertex ``@``
versions) but fails on the spellings that reach a profiler from other layers: LiteLLM-style
``openai/gpt-4o`` refs, Gemini's ``models/gemini-...`` resource names, OTel provider names such
as ``gcp.gemini`` or ``x_ai``, and OpenAI-compatible clients whose real provider is only visible
in their base URL. This module fixes exactly those, and nothing more: it never guesses a model,
it only renames a provider or strips a path that is known to be a path.

The rules, in order:

1. A known base URL host decides the provider (it says who bills the call); so do Hugging Face
   router paths and Azure's ``/openai/deployments/`` path on a custom domain. Local hosts and
   unknown hosts keep the provider the SDK reported, since they are usually proxies or test servers.
2. Otherwise the given provider name is mapped to a genai-prices provider id (OTel, OpenInference
   and LiteLLM spellings); an unknown name is kept, lower-cased, so reports can show it.
3. ``models/`` and Vertex ``projects/.../models/`` prefixes and Bedrock ARN paths are stripped.
4. ``prefix/model`` is split when the prefix is a known provider and the provider does not use
   slashes in its own model ids (OpenRouter, Together, Groq, Fireworks ... do). The prefix becomes
   the provider only when no provider was named (or only a router such as LiteLLM was).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["ModelRef", "resolve_model", "serving_provider_name"]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model reference normalised for pricing.

    Attributes:
        provider: genai-prices provider id (``openai``, ``aws``, ``x-ai`` ...), another lower-cased
            provider name that genai-prices does not know (``ollama``), or ``None`` when unknown.
        model: The model name to look up, with provider prefixes and resource paths removed.
            Empty when the caller did not know the model.
        raw: The model string exactly as reported, for display.
    """

    provider: str | None
    model: str
    raw: str


# Provider names seen in SDKs, OTel `gen_ai.provider.name` / `gen_ai.system`, OpenInference and
# LiteLLM, mapped to genai-prices provider ids.
PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "google_genai": "google",
    "google-genai": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "mistral_ai": "mistral",
    "groq": "groq",
    "x-ai": "x-ai",
    "xai": "x-ai",
    "x_ai": "x-ai",
    "deepseek": "deepseek",
    "together": "together",
    "together_ai": "together",
    "together-ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "cohere": "cohere",
    "azure": "azure",
    "azure_ai": "azure",
    "azure_openai": "azure",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "aws": "aws",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "aws.bedrock": "aws",
    "amazon_bedrock": "aws",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
    "moonshot_ai": "moonshotai",
}

# Prefixes that mark a LiteLLM-style `provider/model` ref. Deliberately narrower than the aliases:
# `mistralai/...` or `moonshotai/...` are Hugging Face organisations, i.e. part of a model id.
PREFIX_PROVIDERS: dict[str, str] = {
    name: PROVIDER_ALIASES[name]
    for name in (
        "openai",
        "anthropic",
        "google",
        "gemini",
        "vertex_ai",
        "mistral",
        "groq",
        "x-ai",
        "xai",
        "deepseek",
        "together",
        "together_ai",
        "fireworks",
        "fireworks_ai",
        "cohere",
        "azure",
        "azure_ai",
        "aws",
        "bedrock",
        "bedrock_converse",
        "openrouter",
        "perplexity",
        "cerebras",
    )
}

# Providers whose own model ids contain slashes (`meta-llama/...`, `accounts/fireworks/models/...`,
# `openai/gpt-oss-120b` on Groq): a prefix there is part of the id, never a provider hint.
SLASH_ID_PROVIDERS = frozenset(
    {"openrouter", "together", "fireworks", "groq", "novita", "perplexity", "cloudflare", "baseten"}
)

_KNOWN_PROVIDER_IDS = frozenset(PROVIDER_ALIASES.values())

# Routers that only forward: the model prefix is the better provider hint.
_ROUTERS = frozenset({"litellm"})

BASE_URL_HOSTS: dict[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral",
    "openrouter.ai": "openrouter",
    "api.openrouter.ai": "openrouter",
    "generativelanguage.googleapis.com": "google",
    "aiplatform.googleapis.com": "google",
    "api.x.ai": "x-ai",
    "api.fireworks.ai": "fireworks",
    "api.cohere.ai": "cohere",
    "api.cohere.com": "cohere",
    "api.perplexity.ai": "perplexity",
    "api.cerebras.ai": "cerebras",
    "api.moonshot.ai": "moonshotai",
    "api.moonshot.cn": "moonshotai",
    "api.novita.ai": "novita",
    "api.arcee.ai": "arcee",
    "api.avian.io": "avian",
    "inference.baseten.co": "baseten",
    "api.minimax.io": "minimax",
    "api.minimaxi.com": "minimax",
    "api.z.ai": "zai",
    "open.bigmodel.cn": "zhipuai",
    "api.doubleword.ai": "doubleword",
    "oai.endpoints.kepler.ai.cloud.ovh.net": "ovhcloud",
    "ollama.com": "ollama",
}

# Hugging Face's router names the serving provider in the first path segment
# (`https://router.huggingface.co/together/v1`); genai-prices prices each as `huggingface_<name>`.
HUGGINGFACE_ROUTED = frozenset(
    {
        "cerebras",
        "fireworks-ai",
        "groq",
        "hyperbolic",
        "nebius",
        "novita",
        "nscale",
        "ovhcloud",
        "publicai",
        "sambanova",
        "together",
    }
)

# (host suffix, provider) for hosts that embed a resource name or a region.
BASE_URL_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", "azure"),
    (".cognitiveservices.azure.com", "azure"),
    (".services.ai.azure.com", "azure"),
    (".azure-api.net", "azure"),
    ("-aiplatform.googleapis.com", "google"),
    (".rep.googleapis.com", "google"),
    (".amazonaws.com", "aws"),
)

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def resolve_model(provider: str | None, model: str | None, base_url: str | None = None) -> ModelRef:
    """Normalise a provider name, a model string and an optional base URL for pricing.

    Args:
        provider: What the SDK, span or user said the provider is, in any known spelling.
        model: The model as reported (request or response model); ``None`` if unknown.
        base_url: The client's base URL, which identifies the real provider of
            OpenAI-compatible clients (Groq, Together, OpenRouter ... through the ``openai`` SDK).

    Returns:
        The normalised reference; ``raw`` keeps ``model`` as given.
    """
    raw = (model or "").strip()
    url_provider = provider_from_base_url(base_url)
    resolved = url_provider or normalize_provider(provider)
    name = _strip_resource_path(raw)

    prefix, sep, rest = name.partition("/")
    hinted = PREFIX_PROVIDERS.get(prefix.lower()) if sep and rest else None
    if hinted is not None and not _uses_slash_ids(resolved):
        # The prefix names the provider only when nothing better did: an explicit provider, even an
        # unknown (self-hosted) one, is kept, so `openai/gpt-oss-20b` on vLLM is not priced as OpenAI.
        if resolved is None or resolved in _ROUTERS:
            resolved = hinted
        if resolved in _KNOWN_PROVIDER_IDS:
            # `openrouter/anthropic/claude-...`: what follows the prefix is an OpenRouter id, keep it whole.
            name = rest if _uses_slash_ids(resolved) else _strip_resource_path(rest)
    return ModelRef(provider=resolved, model=name, raw=raw)


def normalize_provider(provider: str | None) -> str | None:
    """Map a provider name in any known spelling to a genai-prices id; keep unknown names lower-cased."""
    if provider is None:
        return None
    key = provider.strip().lower()
    if not key:
        return None
    return PROVIDER_ALIASES.get(key, key)


def provider_from_base_url(base_url: str | None) -> str | None:
    """Return the provider a base URL's host belongs to, or ``None`` for local and unknown hosts."""
    if not base_url:
        return None
    text = base_url.strip()
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        host = parts.hostname
    except ValueError:
        return None
    if not host or host in _LOCAL_HOSTS:
        return None
    if found := BASE_URL_HOSTS.get(host):
        return found
    for suffix, name in BASE_URL_SUFFIXES:
        if host.endswith(suffix):
            if name == "aws" and not host.startswith("bedrock"):
                continue
            return name
    if host == "router.huggingface.co":
        routed = parts.path.strip("/").partition("/")[0]
        return f"huggingface_{routed}" if routed in HUGGINGFACE_ROUTED else None
    if AZURE_DEPLOYMENT_PATH in parts.path:  # Azure OpenAI behind a custom domain (API Management, a gateway)
        return "azure"
    return None


AZURE_DEPLOYMENT_PATH = "/openai/deployments/"
"""The path shape of Azure OpenAI's deployment-scoped endpoints, whatever the host."""

# OTel `gen_ai.provider.name` well-known values for genai-prices provider ids; other ids are recorded as they are.
OTEL_PROVIDER_NAMES: dict[str, str] = {
    "azure": "azure.ai.openai",
    "aws": "aws.bedrock",
    "x-ai": "x_ai",
    "mistral": "mistral_ai",
    "moonshotai": "moonshot_ai",
}


def serving_provider_name(base_url: str | None, default: str) -> str:
    """The OTel ``gen_ai.provider.name`` of whoever serves ``base_url``; ``default`` when the URL says nothing.

    An OpenAI-compatible client pointed at Groq, Together, OpenRouter ... is recorded under
    that provider (it bills the call); local and unknown hosts keep ``default`` (the SDK's provider),
    except that an Azure deployment path on a local or custom host is still Azure OpenAI.
    Every returned name maps back to the same genai-prices id through :func:`normalize_provider`.
    """
    found = provider_from_base_url(base_url)
    if found is None:
        return "azure.ai.openai" if base_url and AZURE_DEPLOYMENT_PATH in base_url else default
    if found == "google":
        host = urlsplit(base_url or "").hostname or ""
        return "gcp.vertex_ai" if "aiplatform" in host else "gcp.gemini"
    return OTEL_PROVIDER_NAMES.get(found, found)


def _uses_slash_ids(provider: str | None) -> bool:
    return provider is not None and (provider in SLASH_ID_PROVIDERS or provider.startswith("huggingface_"))


def _strip_resource_path(name: str) -> str:
    """Strip resource paths that wrap a model id: Gemini ``models/``, Vertex publishers, Bedrock ARNs.

    A percent-encoded id (a Bedrock id read off a request path, ``...-v2%3A0``) is decoded first.
    """
    if "%" in name:
        name = unquote(name)
    if name.startswith("models/"):
        return name[len("models/") :]
    if name.startswith(("projects/", "publishers/")) and "/models/" in name:
        return name.rsplit("/models/", 1)[1]
    if name.startswith("arn:aws:bedrock:") and "/" in name:
        return name.rsplit("/", 1)[1]
    return name
