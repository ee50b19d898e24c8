"""Per-million-token cost arithmetic for user prices, and the usage sanity check both paths share.

Kept apart from genai-prices so user-priced calls follow the same inclusive usage semantics
(cache reads and writes are parts of ``input_tokens``, reasoning is part of ``output_tokens``)
and stay exact in ``Decimal``.
"""

from __future__ import annotations

from decimal import Decimal

from agentprof._usage import CanonicalUsage

__all__ = ["check_usage", "cost_from_prices"]

_PER_MILLION = Decimal(1_000_000)


def check_usage(usage: CanonicalUsage) -> None:
    """Reject usage whose parts exceed their totals or whose counts are negative.

    Such usage cannot come from a provider; it means a mapping bug in the caller, which should
    surface in tests rather than be priced as something plausible.

    Raises:
        ValueError: The usage is internally inconsistent.
    """
    counts = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens or 0,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens or 0,
        "reasoning_tokens": usage.reasoning_tokens,
    }
    negative = [name for name, value in counts.items() if value < 0]
    if negative:
        raise ValueError(f"invalid usage: negative {', '.join(negative)} in {usage!r}")
    if usage.cache_read_tokens + usage.cache_write_tokens > usage.input_tokens:
        raise ValueError(
            f"invalid usage: cache_read_tokens + cache_write_tokens ({usage.cache_read_tokens} + "
            f"{usage.cache_write_tokens}) exceed input_tokens ({usage.input_tokens}); input_tokens must be the total"
        )
    ttl_parts = counts["cache_write_5m_tokens"] + counts["cache_write_1h_tokens"]
    if ttl_parts > usage.cache_write_tokens:
        raise ValueError(
            f"invalid usage: cache_write_5m_tokens + cache_write_1h_tokens ({ttl_parts}) exceed "
            f"cache_write_tokens ({usage.cache_write_tokens})"
        )
    if usage.reasoning_tokens > usage.output_tokens:
        raise ValueError(
            f"invalid usage: reasoning_tokens ({usage.reasoning_tokens}) exceed output_tokens "
            f"({usage.output_tokens}); output_tokens must include reasoning"
        )


def cost_from_prices(
    usage: CanonicalUsage,
    *,
    input: Decimal,
    output: Decimal,
    cache_read: Decimal,
    cache_write: Decimal,
    cache_write_1h: Decimal,
) -> tuple[Decimal, Decimal]:
    """Price usage at explicit USD-per-million-token rates.

    Uncached input is ``input_tokens - cache_read_tokens - cache_write_tokens``. Cache writes with
    a reported 1-hour TTL pay ``cache_write_1h``; the rest of the writes (5-minute or unspecified
    TTL) pay ``cache_write``. Reasoning tokens are output tokens and pay ``output``.

    Args:
        usage: Canonical (inclusive) usage of one call.
        input: Price of uncached input tokens.
        output: Price of output tokens, reasoning included.
        cache_read: Price of tokens read from the prompt cache.
        cache_write: Price of tokens written to the cache with a 5-minute or unspecified TTL.
        cache_write_1h: Price of tokens written to the cache with a 1-hour TTL.

    Returns:
        ``(input_cost, output_cost)`` in USD; input cost includes cache reads and writes.

    Raises:
        ValueError: The usage is internally inconsistent (see :func:`check_usage`).
    """
    check_usage(usage)
    write_1h = usage.cache_write_1h_tokens or 0
    write_other = usage.cache_write_tokens - write_1h
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    input_cost = (
        uncached * input + usage.cache_read_tokens * cache_read + write_other * cache_write + write_1h * cache_write_1h
    ) / _PER_MILLION
    output_cost = usage.output_tokens * output / _PER_MILLION
    return input_cost, output_cost
