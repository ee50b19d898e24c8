"""Provider prompt-caching facts the cache rules rely on: minimum cacheable prefix, TTL, granularity.

These are data with provenance (``shared/research/pricing_routing.md`` §B.2.2), not prices:
prices always come from the model's own price entry (:mod:`._prices`). Where sources disagree
(Sonnet 4.6: 1,024 in the docs, about 2,048 observed), the documented figure is used and the
source is reported in the finding's evidence, so a user can see what the estimate assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MINUTE_NS = 60 * 1_000_000_000

# (family, major, minor or None) -> minimum tokens; minor None matches any minor version.
_ANTHROPIC_MINIMUMS: dict[tuple[str, int, int | None], int] = {
    ("opus", 4, 6): 4096,
    ("opus", 4, 5): 4096,
    ("haiku", 4, 5): 4096,
    ("sonnet", 4, 6): 1024,
    ("sonnet", 4, 5): 1024,
    ("opus", 4, 1): 1024,
    ("opus", 4, 0): 1024,
    ("sonnet", 4, 0): 1024,
    ("sonnet", 3, 7): 1024,
    ("haiku", 3, 5): 2048,
    ("haiku", 3, 0): 2048,
    ("opus", 4, 7): 2048,
    ("opus", 4, 8): 1024,
    ("sonnet", 5, None): 1024,
    ("opus", 5, None): 512,
    ("fable", 5, None): 512,
    ("mythos", 5, None): 512,
}
_ANTHROPIC_DEFAULT_MINIMUM = 1024

# Version before the family (claude-3-5-haiku-20241022) or after it (claude-haiku-4-5, claude-sonnet-4-20250514).
_CLAUDE = re.compile(
    r"claude-(?:(?P<pre_major>\d)(?:[-.](?P<pre_minor>\d)(?!\d))?-)?(?P<family>opus|sonnet|haiku|fable|mythos)"
    r"(?:-(?P<major>\d)(?!\d)(?:[-.](?P<minor>\d{1,2})(?!\d))?)?"
)
_GPT_VERSION = re.compile(r"gpt-(\d+)(?:\.(\d+))?")
_GEMINI = re.compile(r"gemini-(\d+)(?:\.(\d+))?-(pro|flash)")


@dataclass(frozen=True, slots=True)
class CacheFacts:
    """How a provider caches prompts for one model.

    Attributes:
        minimum_tokens: Shortest prefix that can be cached at all.
        ttl_ns: How long an unused entry lives (the default TTL; refreshed by each hit).
        increment_tokens: Hits are counted in multiples of this (OpenAI: 128), else 1.
        explicit: The user must mark the prefix (Anthropic ``cache_control``); otherwise caching
            is automatic and best-effort.
        source: Where ``minimum_tokens`` comes from, for the evidence.
    """

    minimum_tokens: int
    ttl_ns: int
    increment_tokens: int
    explicit: bool
    source: str

    def cacheable(self, prefix_tokens: int) -> int:
        """Tokens of a shared prefix of ``prefix_tokens`` a hit would serve (0 below the minimum)."""
        if prefix_tokens < self.minimum_tokens:
            return 0
        return prefix_tokens - (prefix_tokens % self.increment_tokens)


def cache_facts(provider: str | None, model: str | None) -> CacheFacts:
    """The caching facts of ``model`` (by provider family; conservative defaults otherwise)."""
    name = (model or "").lower()
    family = (provider or "").lower()
    if family == "anthropic" or "claude" in name:
        return CacheFacts(_anthropic_minimum(name), 5 * _MINUTE_NS, 1, True, "Anthropic prompt caching docs")
    if family in {"openai", "azure"} or name.startswith(("gpt-", "o1", "o3", "o4")):
        newer = _gpt_at_least(name, 5, 6)
        return CacheFacts(
            1024,
            (30 if newer else 5) * _MINUTE_NS,
            1 if newer else 128,
            False,
            "OpenAI prompt caching guide (>= 1024 tokens" + ("" if newer else ", hits in 128-token steps") + ")",
        )
    if family in {"google", "google-gla", "google-vertex", "gemini", "vertex_ai"} or name.startswith("gemini"):
        return CacheFacts(_gemini_minimum(name), 5 * _MINUTE_NS, 1, False, "Gemini implicit caching docs")
    return CacheFacts(1024, 5 * _MINUTE_NS, 1, False, "default (provider caching facts unknown)")


def _anthropic_minimum(name: str) -> int:
    match = _CLAUDE.search(name)
    if match is None:
        return _ANTHROPIC_DEFAULT_MINIMUM
    family = match["family"]
    major_text = match["major"] or match["pre_major"]
    minor_text = match["minor"] if match["major"] else match["pre_minor"]
    if major_text is None:
        return _ANTHROPIC_DEFAULT_MINIMUM
    major, minor = int(major_text), int(minor_text or 0)
    exact = _ANTHROPIC_MINIMUMS.get((family, major, minor))
    if exact is not None:
        return exact
    return _ANTHROPIC_MINIMUMS.get((family, major, None), _ANTHROPIC_DEFAULT_MINIMUM)


def _gpt_at_least(name: str, major: int, minor: int) -> bool:
    match = _GPT_VERSION.match(name)
    if match is None:
        return False
    return (int(match[1]), int(match[2] or 0)) >= (major, minor)


def _gemini_minimum(name: str) -> int:
    match = _GEMINI.search(name)
    if match is None:
        return 1024
    return 4096 if match[3] == "pro" else 1024
