"""Provider caching facts: minimum cacheable prefix per model family, TTL and hit granularity."""

from __future__ import annotations

import pytest

from agentprof.reports.rules._cache_facts import cache_facts


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-sonnet-4-6", 1024),
        ("claude-sonnet-4-20250514", 1024),
        ("claude-opus-4-1-20250805", 1024),
        ("claude-opus-4-6", 4096),
        ("claude-haiku-4-5", 4096),
        ("claude-3-5-haiku-20241022", 2048),
        ("claude-3-haiku-20240307", 2048),
        ("claude-3-7-sonnet-latest", 1024),
        ("claude-opus-4-7", 2048),
        ("claude-opus-5-5", 512),
        ("claude-something-new", 1024),
    ],
)
def test_anthropic_minimums_follow_the_model_family(model: str, minimum: int) -> None:
    facts = cache_facts("anthropic", model)
    assert (facts.minimum_tokens, facts.explicit) == (minimum, True)


def test_openai_caches_automatically_in_128_token_steps_before_gpt_5_6() -> None:
    old = cache_facts("openai", "gpt-4o")
    assert (old.minimum_tokens, old.increment_tokens, old.explicit) == (1024, 128, False)
    assert [old.cacheable(n) for n in (1023, 1024, 1100, 1152, 2000)] == [0, 1024, 1024, 1152, 1920]
    new = cache_facts("openai", "gpt-5.6-mini")
    assert (new.increment_tokens, new.ttl_ns) == (1, 30 * 60 * 10**9)


def test_gemini_pro_needs_a_longer_prefix_than_flash() -> None:
    assert cache_facts("google", "gemini-2.5-pro").minimum_tokens == 4096
    assert cache_facts("google", "gemini-2.5-flash").minimum_tokens == 1024
