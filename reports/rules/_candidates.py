"""The models ``cheaper_model`` may suggest, per provider, with what each one supports.

A suggestion stays within the provider the step already uses, so the API, tool-calling and
caching semantics do not change (pricing_routing.md §B.5 R6). The table is owned here, not read
from genai-prices, because genai-prices knows prices but not features. Prices are never taken
from this table: which model is cheaper is decided by genai-prices on the step's own usage, and
the ``tier`` label only marks the band of small models (a step already on a model priced within
that band is not flagged). Every model listed is priced by genai-prices 0.2.3 (a test checks it).

Sources, verified on :data:`VERIFIED_ON`:

- OpenAI: platform.openai.com/docs/models (context windows, "Function calling", "Structured
  outputs", "Reasoning" per model page).
- Anthropic: docs.anthropic.com/en/docs/about-claude/models/overview (200k context; extended
  thinking from the Claude 4 family and Haiku 4.5) and .../build-with-claude/structured-outputs
  (JSON schema outputs on Sonnet 4.5+, Opus 4.1+, Haiku 4.5; not Haiku 3.5).
- Google: ai.google.dev/gemini-api/docs/models (1,048,576-token input, function calling,
  ``responseSchema``, thinking on all 2.5 models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Tier = Literal["frontier", "mid", "small"]

VERIFIED_ON = "2026-11-22"
SOURCE = "provider model documentation (see module docstring)"


@dataclass(frozen=True, slots=True)
class CandidateModel:
    """One model a step may move to, and what it supports.

    Attributes:
        provider: genai-prices provider id.
        model: Model name as the provider's API takes it.
        tier: ``frontier``, ``mid`` or ``small``: the band of the provider's line-up.
        tools: Supports tool (function) calling.
        json_schema: Supports output constrained to a JSON schema.
        context_window: Input plus output tokens one request may use.
        reasoning: Can spend reasoning (thinking) tokens.
        always_reasons: Spends reasoning tokens by default (OpenAI's gpt-5 and o-series): a step
            recorded without reasoning tokens cannot be re-priced on it honestly, since its hidden
            reasoning would add output tokens the recorded usage does not have.
    """

    provider: str
    model: str
    tier: Tier
    tools: bool
    json_schema: bool
    context_window: int
    reasoning: bool
    always_reasons: bool = False


_GPT_4_1_WINDOW = 1_047_576
_GEMINI_2_5_WINDOW = 1_048_576 + 65_536

CANDIDATES: tuple[CandidateModel, ...] = (
    # OpenAI
    CandidateModel("openai", "gpt-4o", "frontier", True, True, 128_000, False),
    CandidateModel("openai", "gpt-4.1", "frontier", True, True, _GPT_4_1_WINDOW, False),
    CandidateModel("openai", "gpt-5", "frontier", True, True, 400_000, True, always_reasons=True),
    CandidateModel("openai", "o3", "frontier", True, True, 200_000, True, always_reasons=True),
    CandidateModel("openai", "gpt-4o-mini", "small", True, True, 128_000, False),
    CandidateModel("openai", "gpt-4.1-mini", "small", True, True, _GPT_4_1_WINDOW, False),
    CandidateModel("openai", "gpt-4.1-nano", "small", True, True, _GPT_4_1_WINDOW, False),
    CandidateModel("openai", "gpt-5-mini", "small", True, True, 400_000, True, always_reasons=True),
    CandidateModel("openai", "gpt-5-nano", "small", True, True, 400_000, True, always_reasons=True),
    # Anthropic
    CandidateModel("anthropic", "claude-opus-4-5", "frontier", True, True, 200_000, True),
    CandidateModel("anthropic", "claude-opus-4-1", "frontier", True, True, 200_000, True),
    CandidateModel("anthropic", "claude-sonnet-4-6", "mid", True, True, 200_000, True),
    CandidateModel("anthropic", "claude-sonnet-4-5", "mid", True, True, 200_000, True),
    CandidateModel("anthropic", "claude-haiku-4-5", "small", True, True, 200_000, True),
    CandidateModel("anthropic", "claude-3-5-haiku", "small", True, False, 200_000, False),
    # Google
    CandidateModel("google", "gemini-2.5-pro", "frontier", True, True, _GEMINI_2_5_WINDOW, True),
    CandidateModel("google", "gemini-2.5-flash", "small", True, True, _GEMINI_2_5_WINDOW, True),
    CandidateModel("google", "gemini-2.5-flash-lite", "small", True, True, _GEMINI_2_5_WINDOW, True),
)


@dataclass(frozen=True, slots=True)
class StepNeeds:
    """What a step's recorded calls used, which a replacement model must support.

    Attributes:
        tools: Some call offered tools.
        json_schema: Some call asked for output matching a JSON schema.
        context_tokens: The largest input plus output of one call.
        reasoning: The step relies on reasoning (a large share of its output was reasoning).
        reasoning_recorded: The recorded usage includes reasoning tokens at all.
    """

    tools: bool
    json_schema: bool
    context_tokens: int
    reasoning: bool
    reasoning_recorded: bool


def candidates_for(provider: str) -> tuple[CandidateModel, ...]:
    """The table's models of ``provider``, in table order (empty for providers not covered)."""
    return tuple(candidate for candidate in CANDIDATES if candidate.provider == provider)


def supports(candidate: CandidateModel, needs: StepNeeds) -> bool:
    """Whether ``candidate`` can take over a step with these needs without losing a feature."""
    return (
        (candidate.tools or not needs.tools)
        and (candidate.json_schema or not needs.json_schema)
        and candidate.context_window >= needs.context_tokens
        and (candidate.reasoning or not needs.reasoning)
        and (not candidate.always_reasons or needs.reasoning_recorded)
    )
