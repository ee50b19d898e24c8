"""The normaliser for provider variants: Azure OpenAI, OpenAI-compatible hosts, Bedrock and Vertex ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agentprof._usage import CanonicalUsage
from agentprof.pricing import ModelRef, price_call, resolve_model
from agentprof.pricing._normalize import normalize_provider, serving_provider_name

MILLION_EACH = CanonicalUsage(input_tokens=1_000_000, output_tokens=1_000_000)
WHEN = datetime(2025, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://myres.openai.azure.com/openai/deployments/prod", "azure.ai.openai"),
        ("https://gateway.example.com/openai/deployments/prod/chat/completions", "azure.ai.openai"),
        ("http://127.0.0.1:8080/openai/deployments/prod", "azure.ai.openai"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.together.xyz/v1", "together"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.fireworks.ai/inference/v1", "fireworks"),
        ("https://api.x.ai/v1", "x_ai"),
        ("https://api.mistral.ai/v1", "mistral_ai"),
        ("https://api.moonshot.ai/v1", "moonshot_ai"),
        ("https://api.novita.ai/v3/openai", "novita"),
        ("https://router.huggingface.co/together/v1", "huggingface_together"),
        ("https://router.huggingface.co/v1", "openai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini"),
        ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l/endpoints/openapi", "gcp.vertex_ai"),
        ("https://ollama.com/v1", "ollama"),
        # Self-hosted servers (vLLM, Ollama, LM Studio) on local or private hosts: the SDK's provider.
        ("http://localhost:11434/v1", "openai"),
        ("http://127.0.0.1:8000/v1", "openai"),
        ("http://gpu-box.internal:8000/v1", "openai"),
        (None, "openai"),
    ],
)
def test_serving_provider_name(base_url: str | None, expected: str) -> None:
    name = serving_provider_name(base_url, "openai")
    assert name == expected
    # Every recorded name maps back to the provider the URL resolves to for pricing.
    assert normalize_provider(name) == (
        resolve_model("openai", "m", base_url).provider if name != "azure.ai.openai" else "azure"
    )


@pytest.mark.parametrize(
    ("provider", "model", "base_url", "expected"),
    [
        # Azure: deployment names and model names under the OTel provider name.
        ("azure.ai.openai", "prod-gpt4o", None, ModelRef("azure", "prod-gpt4o", "prod-gpt4o")),
        ("azure.ai.openai", "gpt-4o-2024-08-06", None, ModelRef("azure", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06")),
        (
            "openai",
            "gpt-4o",
            "https://gw.example.com/openai/deployments/prod/chat/completions?api-version=2024-10-21",
            ModelRef("azure", "gpt-4o", "gpt-4o"),
        ),
        # Hugging Face router: slash ids are kept whole.
        (
            "openai",
            "meta-llama/Llama-3.3-70B-Instruct",
            "https://router.huggingface.co/together/v1",
            ModelRef("huggingface_together", "meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"),
        ),
        (
            "openai",
            "openai/gpt-oss-120b",
            "https://inference.baseten.co/v1",
            ModelRef("baseten", "openai/gpt-oss-120b", "openai/gpt-oss-120b"),
        ),
        ("openai", "glm-4.6", "https://api.z.ai/api/paas/v4", ModelRef("zai", "glm-4.6", "glm-4.6")),
        # Self-hosted: an explicit provider is kept, the model is untouched.
        ("vllm", "my-llama", "http://127.0.0.1:8000/v1", ModelRef("vllm", "my-llama", "my-llama")),
        ("openai", "my-llama", "http://localhost:11434/v1", ModelRef("openai", "my-llama", "my-llama")),
        # Bedrock ids, including one read off a request path (percent-encoded colon).
        (
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            None,
            ModelRef("aws", "anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ),
        (
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20241022-v2%3A0",
            None,
            ModelRef("aws", "anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-5-sonnet-20241022-v2%3A0"),
        ),
        (
            "anthropic",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke",
            ModelRef(
                "aws", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "us.anthropic.claude-3-5-haiku-20241022-v1:0"
            ),
        ),
        # Vertex: `@` versions and publisher paths.
        (
            "gcp.vertex_ai",
            "claude-sonnet-4@20250514",
            None,
            ModelRef("google", "claude-sonnet-4@20250514", "claude-sonnet-4@20250514"),
        ),
        (
            "anthropic",
            "claude-haiku-4-5@20251001",
            "https://us-east5-aiplatform.googleapis.com/v1",
            ModelRef("google", "claude-haiku-4-5@20251001", "claude-haiku-4-5@20251001"),
        ),
        (
            "anthropic",
            "claude-haiku-4-5@20251001",
            "https://aiplatform.us.rep.googleapis.com/v1",
            ModelRef("google", "claude-haiku-4-5@20251001", "claude-haiku-4-5@20251001"),
        ),
        (
            "gcp.vertex_ai",
            "publishers/anthropic/models/claude-sonnet-4@20250514",
            None,
            ModelRef("google", "claude-sonnet-4@20250514", "publishers/anthropic/models/claude-sonnet-4@20250514"),
        ),
    ],
)
def test_resolve_variants(provider: str | None, model: str, base_url: str | None, expected: ModelRef) -> None:
    assert resolve_model(provider, model, base_url) == expected


@pytest.mark.parametrize(
    ("provider", "model", "priced_provider", "priced_model", "cost"),
    [
        ("azure.ai.openai", "gpt-4o-2024-08-06", "azure", "gpt-4o", Decimal("12.50")),
        ("azure.ai.openai", "gpt-35-turbo", "azure", "gpt-3.5-turbo", Decimal("2")),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "aws", None, Decimal("18")),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20241022-v2%3A0", "aws", None, Decimal("18")),
        ("aws.bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0", "aws", None, Decimal("6.6")),
        ("aws.bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws", None, Decimal("18")),
        ("gcp.vertex_ai", "claude-sonnet-4@20250514", "google", None, Decimal("18")),
        ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022", "google", None, Decimal("18")),
        ("gcp.vertex_ai", "claude-haiku-4-5@20251001", "google", None, Decimal("6")),
    ],
)
def test_variants_are_priced_under_their_platform(
    provider: str, model: str, priced_provider: str, priced_model: str | None, cost: Decimal
) -> None:
    result = price_call(MILLION_EACH, resolve_model(provider, model), timestamp=WHEN)
    assert result.priced, result.unpriced_reason
    assert result.priced_provider == priced_provider
    if priced_model is not None:
        assert result.priced_model == priced_model
    assert result.cost_usd == cost


def test_azure_deployment_name_is_unpriced_not_guessed() -> None:
    result = price_call(MILLION_EACH, resolve_model("azure.ai.openai", "prod-gpt4o"), timestamp=WHEN)
    assert not result.priced and result.cost_usd is None
