"""The canonical usage record every provider's usage block is normalised into.

Semantics match the OpenTelemetry GenAI conventions and genai-prices: ``input_tokens`` is the
*total* input including cache reads and cache writes (Anthropic reports them separately, so
its integration adds them), and ``output_tokens`` includes reasoning tokens. The cache and
reasoning fields are subsets of those totals, never additions to them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CanonicalUsage:
    """Token usage of one model call, in canonical (inclusive) form.

    Attributes:
        input_tokens: All input tokens, cached and uncached.
        output_tokens: All output tokens, reasoning included.
        cache_read_tokens: Input tokens served from the provider's prompt cache.
        cache_write_tokens: Input tokens written to the prompt cache (all TTLs).
        cache_write_5m_tokens: Part of ``cache_write_tokens`` with a 5-minute TTL, if reported.
        cache_write_1h_tokens: Part of ``cache_write_tokens`` with a 1-hour TTL, if reported.
        reasoning_tokens: Part of ``output_tokens`` spent on reasoning/thinking.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int = 0
