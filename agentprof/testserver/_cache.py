"""Prompt-cache simulation for both providers.

agentprof's cache recommendations are validated against this module, so it follows
the documented provider rules closely and is exact about what it does not model.
All sizes come from :mod:`agentprof.testserver._tokens` (4 characters per token).

Anthropic (explicit breakpoints)
    * A breakpoint is a block carrying ``cache_control`` (tool definitions, system blocks,
      message content blocks) or, with a top-level ``cache_control`` (automatic caching),
      the last block of the prompt. Prompt order is tools, then system, then messages. At
      most 4 breakpoints are allowed (more is a 400, like the real API).
    * The cache key of a breakpoint is a hash of the model and every block up to and
      including it. An entry lives for its TTL (``"5m"`` default, ``"1h"`` on request);
      reading it refreshes the TTL.
    * A breakpoint whose prefix is shorter than the model's minimum cacheable length
      (:data:`ANTHROPIC_MIN_CACHEABLE_TOKENS`, default 1024) is ignored: not read, not written.
    * Read: for every eligible breakpoint the server looks for a live entry at the breakpoint
      and up to 19 blocks before it (Anthropic's 20-block lookback); the longest hit is
      ``cache_read_input_tokens``.
    * Write: every eligible breakpoint after the hit writes an entry; the tokens between the
      hit (or the start) and the last breakpoint are ``cache_creation_input_tokens``, each
      segment attributed to the TTL of the breakpoint ending it (``ephemeral_5m`` / ``_1h``).
    * ``input_tokens`` = total - read - written (Anthropic reports it *excluding* the cache).

OpenAI (automatic prefix caching)
    * Only prompts of at least 1024 tokens take part. Units are each tool definition, then
      each whole message. A prompt that took part stores every one of its unit prefixes for
      10 minutes from its last use.
    * ``cached_tokens`` = the longest stored prefix (same model) of the current prompt,
      rounded down to a multiple of 128 tokens, and 0 if that is below 1024. Writes are free
      and invisible; ``prompt_tokens`` includes the cached tokens.

Not modelled: per-organisation isolation, eviction under load, the ``tool_choice`` and
image invalidation rules, and Anthropic's ordering rule for mixed TTLs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agentprof.testserver._tokens import PromptLayout

ANTHROPIC_DEFAULT_MIN_CACHEABLE_TOKENS = 1024
ANTHROPIC_MIN_CACHEABLE_TOKENS: Mapping[str, int] = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
"""Minimum cacheable prompt length per model-name prefix (longest matching prefix wins)."""

ANTHROPIC_TTL_SECONDS: Mapping[str, float] = {"5m": 300.0, "1h": 3600.0}
ANTHROPIC_MAX_BREAKPOINTS = 4
ANTHROPIC_LOOKBACK_BLOCKS = 20
OPENAI_MIN_CACHEABLE_TOKENS = 1024
OPENAI_CACHE_INCREMENT = 128
OPENAI_TTL_SECONDS = 600.0


class CacheRequestError(ValueError):
    """The request's cache_control markers are invalid (answered with a 400)."""


@dataclass(frozen=True)
class InputUsage:
    """How a prompt's input tokens split between fresh input and the cache.

    Attributes:
        total: All input tokens, including cache reads and writes.
        cache_read: Tokens served from the cache.
        cache_write_5m: Tokens written to a 5-minute entry (Anthropic only).
        cache_write_1h: Tokens written to a 1-hour entry (Anthropic only).
    """

    total: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def uncached(self) -> int:
        """Input tokens neither read from nor written to the cache (Anthropic's ``input_tokens``)."""
        return self.total - self.cache_read - self.cache_write_5m - self.cache_write_1h


@dataclass
class _Entry:
    expires_at: float
    ttl: float


class PromptCacheSimulator:
    """Thread-safe cache state shared by all requests to one server.

    Args:
        clock: Monotonic time source in seconds; tests inject a fake one to expire entries.
        enabled: With False every request is a miss and nothing is stored.
        anthropic_min_tokens: Overrides or additions to :data:`ANTHROPIC_MIN_CACHEABLE_TOKENS`.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        enabled: bool = True,
        anthropic_min_tokens: Mapping[str, int] | None = None,
    ) -> None:
        self._clock = clock
        self.enabled = enabled
        self._anthropic_min = {**ANTHROPIC_MIN_CACHEABLE_TOKENS, **(anthropic_min_tokens or {})}
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every cache entry."""
        with self._lock:
            self._entries.clear()

    def anthropic_min_tokens(self, model: str) -> int:
        """Minimum cacheable prefix length for ``model`` (longest matching name prefix wins)."""
        matches = [prefix for prefix in self._anthropic_min if model.startswith(prefix)]
        if not matches:
            return ANTHROPIC_DEFAULT_MIN_CACHEABLE_TOKENS
        return self._anthropic_min[max(matches, key=len)]

    def _alive(self, key: bytes, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= now:
            return None
        return entry

    def _purge(self, now: float) -> None:
        for key in [key for key, entry in self._entries.items() if entry.expires_at <= now]:
            del self._entries[key]

    def anthropic(self, model: str, prompt: PromptLayout, *, automatic: Mapping[str, object] | None) -> InputUsage:
        """Apply Anthropic's breakpoint rules to ``prompt`` and update the cache.

        Args:
            model: The request model (part of every cache key).
            prompt: The flattened request.
            automatic: The request's top-level ``cache_control`` (automatic caching), or None.

        Raises:
            CacheRequestError: Too many breakpoints or an unknown TTL.
        """
        breakpoints: list[tuple[int, float]] = []
        markers = [(index, block.cache_control) for index, block in enumerate(prompt.blocks) if block.cache_control]
        if automatic is not None and prompt.blocks:
            markers.append((len(prompt.blocks) - 1, automatic))
        if len(markers) > ANTHROPIC_MAX_BREAKPOINTS:
            raise CacheRequestError(
                f"A maximum of {ANTHROPIC_MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(markers)}."
            )
        for index, marker in markers:
            ttl_name = str(marker.get("ttl", "5m"))
            if ttl_name not in ANTHROPIC_TTL_SECONDS:
                raise CacheRequestError(f"cache_control.ttl: Input should be '5m' or '1h', got {ttl_name!r}")
            breakpoints.append((index, ANTHROPIC_TTL_SECONDS[ttl_name]))
        breakpoints.sort()
        total = prompt.total_tokens
        minimum = self.anthropic_min_tokens(model)
        eligible = [(index, ttl) for index, ttl in breakpoints if prompt.prefix_tokens(index) >= minimum]
        if not self.enabled or not eligible:
            return InputUsage(total)

        now = self._clock()
        with self._lock:
            self._purge(now)
            read_index = -1
            for index, _ttl in eligible:
                for candidate in range(index, max(-1, index - ANTHROPIC_LOOKBACK_BLOCKS), -1):
                    if self._alive(prompt.prefix_hashes[candidate], now) is not None:
                        read_index = max(read_index, candidate)
                        break
            if read_index >= 0:
                hit = self._entries[prompt.prefix_hashes[read_index]]
                hit.expires_at = now + hit.ttl
            written = {ANTHROPIC_TTL_SECONDS["5m"]: 0, ANTHROPIC_TTL_SECONDS["1h"]: 0}
            covered = prompt.prefix_tokens(read_index)
            for index, ttl in eligible:
                key = prompt.prefix_hashes[index]
                if index <= read_index:
                    # Already inside the cached prefix: keep the entry alive at no charge.
                    existing = self._alive(key, now)
                    ttl = max(ttl, existing.ttl) if existing else ttl
                    self._entries[key] = _Entry(now + ttl, ttl)
                    continue
                end = prompt.prefix_tokens(index)
                written[ttl] += end - covered
                covered = end
                self._entries[key] = _Entry(now + ttl, ttl)
        return InputUsage(
            total,
            cache_read=prompt.prefix_tokens(read_index),
            cache_write_5m=written[ANTHROPIC_TTL_SECONDS["5m"]],
            cache_write_1h=written[ANTHROPIC_TTL_SECONDS["1h"]],
        )

    def openai(self, prompt: PromptLayout) -> InputUsage:
        """Apply OpenAI's automatic prefix caching to ``prompt`` and remember its prefixes."""
        total = prompt.total_tokens
        if not self.enabled or total < OPENAI_MIN_CACHEABLE_TOKENS:
            return InputUsage(total)
        now = self._clock()
        with self._lock:
            self._purge(now)
            matched = -1
            for index in range(len(prompt.blocks) - 1, -1, -1):
                if self._alive(prompt.prefix_hashes[index], now) is not None:
                    matched = index
                    break
            for key in prompt.prefix_hashes:
                self._entries[key] = _Entry(now + OPENAI_TTL_SECONDS, OPENAI_TTL_SECONDS)
        cached = prompt.prefix_tokens(matched) // OPENAI_CACHE_INCREMENT * OPENAI_CACHE_INCREMENT
        return InputUsage(total, cache_read=cached if cached >= OPENAI_MIN_CACHEABLE_TOKENS else 0)
