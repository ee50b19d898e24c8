"""The normaliser, with a table mirroring Appendix B of research/pricing_routing.md."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agentprof._usage import CanonicalUsage
from agentprof.pricing import ModelRef, price_call, resolve_model

MILLION_EACH = CanonicalUsage(input_tokens=1_000_000, output_tokens=1_000_000)
WHEN = datetime(2025, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("provider", "model", "base_url", "expected"),
    [
        # Provider prefixes (LiteLLM / OpenInference style).
        (None, "openai/gpt-4o", None, ModelRef("openai", "gpt-4o", "openai/gpt-4o")),
        (
            "litellm",
            "anthropic/claude-sonnet-4-5",
            None,
            ModelRef("anthropic", "claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ),
        (None, "gemini/gemini-2.5-flash", None, ModelRef("google", "gemini-2.5-flash", "gemini/gemini-2.5-flash")),
        (None, "xai/grok-4", None, ModelRef("x-ai", "grok-4", "xai/grok-4")),
        (
            None,
            "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            None,
            ModelRef(
                "aws",
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
        ),
        ("azure", "openai/gpt-4o", None, ModelRef("azure", "gpt-4o", "openai/gpt-4o")),
        # OpenRouter ids keep their slash; a double prefix loses only the router's.
        (
            None,
            "openrouter/anthropic/claude-sonnet-4.5",
            None,
            ModelRef("openrouter", "anthropic/claude-sonnet-4.5", "openrouter/anthropic/claude-sonnet-4.5"),
        ),
        (
            "openrouter",
            "anthropic/claude-sonnet-4.5",
            None,
            ModelRef("openrouter", "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"),
        ),
        # Hugging Face organisations are part of the id, not providers.
        (
            None,
            "mistralai/Mistral-7B-Instruct-v0.3",
            None,
            ModelRef(None, "mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
        ),
        # A self-hosted provider keeps the whole HF id, so it is not priced as OpenAI's API.
        ("ollama", "openai/gpt-oss-20b", None, ModelRef("ollama", "openai/gpt-oss-20b", "openai/gpt-oss-20b")),
        # Resource paths.
        ("google", "models/gemini-2.5-flash", None, ModelRef("google", "gemini-2.5-flash", "models/gemini-2.5-flash")),
        (
            "vertex_ai",
            "projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001",
            None,
            ModelRef(
                "google",
                "gemini-2.0-flash-001",
                "projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001",
            ),
        ),
        (
            "aws.bedrock",
            "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
            None,
            ModelRef(
                "aws",
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
            ),
        ),
        (
            "fireworks",
            "accounts/fireworks/models/deepseek-v3p2",
            None,
            ModelRef("fireworks", "accounts/fireworks/models/deepseek-v3p2", "accounts/fireworks/models/deepseek-v3p2"),
        ),
        # OTel gen_ai.provider.name / gen_ai.system values.
        ("gcp.gemini", "gemini-2.5-pro", None, ModelRef("google", "gemini-2.5-pro", "gemini-2.5-pro")),
        ("gcp.vertex_ai", "gemini-2.5-pro", None, ModelRef("google", "gemini-2.5-pro", "gemini-2.5-pro")),
        (
            "aws.bedrock",
            "amazon.nova-lite-v1:0",
            None,
            ModelRef("aws", "amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
        ),
        ("azure.ai.openai", "my-deployment", None, ModelRef("azure", "my-deployment", "my-deployment")),
        ("x_ai", "grok-4", None, ModelRef("x-ai", "grok-4", "grok-4")),
        (
            "mistral_ai",
            "mistral-large-latest",
            None,
            ModelRef("mistral", "mistral-large-latest", "mistral-large-latest"),
        ),
        ("OpenAI", " gpt-4o ", None, ModelRef("openai", "gpt-4o", "gpt-4o")),
        ("ibm.watsonx.ai", "granite-3", None, ModelRef("ibm.watsonx.ai", "granite-3", "granite-3")),
        # Base URLs decide the provider of OpenAI-compatible clients.
        (
            "openai",
            "llama-3.3-70b-versatile",
            "https://api.groq.com/openai/v1",
            ModelRef("groq", "llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
        ),
        (
            "openai",
            "openai/gpt-oss-120b",
            "https://api.groq.com/openai/v1",
            ModelRef("groq", "openai/gpt-oss-120b", "openai/gpt-oss-120b"),
        ),
        (
            "openai",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "https://api.together.xyz/v1",
            ModelRef("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ),
        ("openai", "deepseek-chat", "https://api.deepseek.com", ModelRef("deepseek", "deepseek-chat", "deepseek-chat")),
        (
            "openai",
            "mistral-small-latest",
            "https://api.mistral.ai/v1",
            ModelRef("mistral", "mistral-small-latest", "mistral-small-latest"),
        ),
        (
            "openai",
            "anthropic/claude-sonnet-4.5",
            "https://openrouter.ai/api/v1",
            ModelRef("openrouter", "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"),
        ),
        (
            "openai",
            "gemini-2.5-flash",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            ModelRef("google", "gemini-2.5-flash", "gemini-2.5-flash"),
        ),
        ("openai", "grok-4", "https://api.x.ai/v1", ModelRef("x-ai", "grok-4", "grok-4")),
        (
            "openai",
            "accounts/fireworks/models/deepseek-v3p2",
            "https://api.fireworks.ai/inference/v1",
            ModelRef("fireworks", "accounts/fireworks/models/deepseek-v3p2", "accounts/fireworks/models/deepseek-v3p2"),
        ),
        (
            "openai",
            "my-deployment",
            "https://myres.openai.azure.com/openai/deployments/my-deployment",
            ModelRef("azure", "my-deployment", "my-deployment"),
        ),
        ("openai", "gpt-4o", "https://api.openai.com/v1", ModelRef("openai", "gpt-4o", "gpt-4o")),
        (
            "anthropic",
            "claude-sonnet-4-5",
            "https://api.anthropic.com",
            ModelRef("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5"),
        ),
        # Local and unknown hosts keep the SDK's provider (test servers, proxies).
        ("openai", "gpt-4o", "http://localhost:8000/v1", ModelRef("openai", "gpt-4o", "gpt-4o")),
        ("openai", "gpt-4o", "http://127.0.0.1:4000", ModelRef("openai", "gpt-4o", "gpt-4o")),
        ("openai", "gpt-4o", "https://llm-proxy.internal.example", ModelRef("openai", "gpt-4o", "gpt-4o")),
        (
            "anthropic",
            "claude-sonnet-4-5",
            "not a url at all",
            ModelRef("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5"),
        ),
        # Nothing known.
        (None, None, None, ModelRef(None, "", "")),
        ("", "gpt-4o", "", ModelRef(None, "gpt-4o", "gpt-4o")),
    ],
)
def test_resolve_model(provider: str | None, model: str | None, base_url: str | None, expected: ModelRef) -> None:
    assert resolve_model(provider, model, base_url) == expected


# Appendix B of research/pricing_routing.md: (model ref, provider hint as tools spell it) and the
# genai-prices cost of 1M input + 1M output tokens recorded there; None = unpriced.
APPENDIX_B = [
    ("gpt-4o-2024-08-06", "openai", Decimal("12.50")),
    ("gpt-4o-2024-05-13", "openai", Decimal("20")),
    ("openai/gpt-4o", None, Decimal("12.50")),  # LookupError in raw genai-prices; the normaliser fixes it
    ("gpt-5.2-20251211", "openai", Decimal("15.75")),
    ("claude-opus-4-1-20250805", "anthropic", Decimal("90")),
    ("claude-sonnet-4-20250514", "anthropic", Decimal("18")),
    ("claude-3-5-sonnet-20241022", "anthropic", Decimal("18")),
    ("claude-sonnet-4-5-20250929", "anthropic", Decimal("28.50")),  # 1M input crosses the 200k tier
    ("eu.anthropic.claude-sonnet-4-20250514-v1:0", "bedrock", Decimal("18")),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock", Decimal("18")),
    ("claude-sonnet-4@20250514", "vertex_ai", Decimal("18")),
    ("gemini-2.5-flash-preview-05-20", "vertex_ai", Decimal("0.75")),
    ("gemini-2.0-flash-001", "gcp.vertex_ai", Decimal("0.50")),
    ("models/gemini-2.5-flash", "google", None),  # priced after normalisation, amount checked below
    ("accounts/fireworks/models/llama-v3p1-70b-instruct", "fireworks", None),
    ("anthropic/claude-sonnet-4.5", "openrouter", Decimal("28.50")),
    ("my-azure-deployment", "azure", None),
]


@pytest.mark.parametrize(("model", "provider", "expected"), APPENDIX_B)
def test_appendix_b(model: str, provider: str | None, expected: Decimal | None) -> None:
    result = price_call(MILLION_EACH, resolve_model(provider, model), timestamp=WHEN)
    if model == "models/gemini-2.5-flash":
        assert result.priced and result.priced_model == "gemini-2.5-flash"
        return
    if expected is None:
        assert not result.priced
        assert result.cost_usd is None
        assert result.unpriced_reason is not None and "unknown model" in result.unpriced_reason
    else:
        assert result.priced, result.unpriced_reason
        assert result.cost_usd == expected
