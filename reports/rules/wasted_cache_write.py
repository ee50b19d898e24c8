"""R3 ``wasted_cache_write``: cache writes never read within their TTL; 1-hour writes where 5 minutes would do.

A call with ``cache_write_tokens > 0`` wrote a prefix to the provider's cache: the prefix of its
input up to ``cache_read + cache_write`` tokens, identified by the longest prefix boundary (chained
hash, see :mod:`agentprof._fingerprint`) that fits in it. Calls are walked in time order per cache
scope (provider, model, server). A later call *reads* that write when it sends the same prefix
(its own boundaries include the written hash: a read under a longer prefix reads the shorter
one too) and reports cache reads, while the entry is alive: the TTL (1 hour for 1-hour writes, the
provider's default otherwise) runs from the last write or read.

* (a) **never read**: the whole write premium was paid for nothing:
  ``write_tokens x (p_write - p_in)`` per TTL. Confidence ``high``: usage counters only.
* (b) **1-hour TTL not needed**: a 1-hour write whose every reuse came within 5 minutes of the
  previous use (the 5-minute TTL is refreshed by each hit, so it would have lived as long):
  ``write_1h_tokens x (p_write_1h - p_write_5m)``. Confidence ``medium``: cache lifetime is not
  observable, the rule assumes the 5-minute entry would have survived.

Findings per (task name, step, model, signal), claimed from the ledger on the writing calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext
from ._cache_facts import cache_facts
from ._prefixes import known_boundaries, parse_unseen
from ._prices import PriceBook

_MINUTE_NS = 60 * 1_000_000_000
_HOUR_NS = 60 * _MINUTE_NS

_Scope = tuple[str | None, str | None, str | None]
_CACHE_WRITE_TOKENS = attrgetter("cache_write_tokens")


@dataclass(slots=True)
class _Write:
    call: CallRecord
    ttl_ns: int
    one_hour: bool
    last_use_ns: int
    reads: int = 0
    max_gap_ns: int = 0


@dataclass(slots=True)
class _Signal:
    writes: list[_Write] = field(default_factory=list)


def _written_hash(call: CallRecord) -> str | None:
    """The boundary hash of the prefix ``call`` wrote: the one closest to cache_read + cache_write tokens.

    Breakpoints sit at segment ends, so the written length is a boundary's real position; the
    recorded positions are approximate (scaled to the real input), hence "closest".
    """
    hashes, tokens = call.boundaries
    if not hashes or not tokens[-1]:
        return None
    written = call.cache_read_tokens + call.cache_write_tokens
    scale = call.input_tokens / tokens[-1]
    closest = min(range(len(hashes)), key=lambda position: abs(tokens[position] * scale - written))
    return hashes[closest]


def _first_write(calls: Sequence[CallRecord]) -> int:
    """Index of the first call that wrote to the prompt cache (``len(calls)`` when none did).

    Most stores have no cache writes at all: one pass in C finds that out, instead of the rule's
    loop looking at every call.
    """
    writes = list(map(_CACHE_WRITE_TOKENS, calls))
    if max(writes, default=0) <= 0:
        return len(calls)
    return next(index for index, tokens in enumerate(writes) if tokens > 0)


class WastedCacheWriteRule:
    """Flag prompt-cache writes that were never read, and 1-hour writes a 5-minute TTL would have served."""

    kind = "wasted_cache_write"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return findings per (task name, step, model) for the ``never_read`` and ``ttl_1h_unneeded`` signals."""
        settings = context.config.wasted_cache_write
        calls = context.workload.calls
        first = _first_write(calls)
        # Per cache scope, the writes by written prefix hash (scopes that never write have none, and
        # their calls cost one dictionary look-up each).
        open_writes: dict[_Scope, dict[str, list[_Write]]] = {}
        writes: list[_Write] = []
        for call in calls[first:]:  # before the first write there is nothing to read
            if call.status == "error" or not call.usage_known:
                continue
            scope = (call.provider, call.model, call.server_address)
            scoped = open_writes.get(scope)
            if not scoped:
                if call.cache_write_tokens <= 0:
                    continue
                if scoped is None:
                    scoped = open_writes[scope] = {}
            text = call.prefix_fingerprints_json
            if not text:
                continue
            hashes = (known_boundaries(text) or parse_unseen(text))[0]
            if not hashes:
                continue
            now = call.start_ns
            for hash_ in hashes:
                for write in scoped.get(hash_, ()):
                    if write.call is call or now - write.last_use_ns > write.ttl_ns:
                        continue
                    if call.cache_read_tokens > 0:
                        write.reads += 1
                    write.max_gap_ns = max(write.max_gap_ns, now - write.last_use_ns)
                    write.last_use_ns = now
            if call.cache_write_tokens <= 0:
                continue
            written = _written_hash(call)
            if written is None:
                continue
            one_hour = bool(call.cache_write_1h_tokens)
            ttl = _HOUR_NS if one_hour else cache_facts(call.provider, call.model).ttl_ns
            write = _Write(call, ttl, one_hour, now)
            scoped.setdefault(written, []).append(write)
            writes.append(write)
        signals: dict[tuple[str, str, str, str], _Signal] = defaultdict(_Signal)
        for write in writes:
            call = write.call
            group = (call.task_name, call.step_name, call.model or "")
            if write.reads == 0:
                signals[(*group, "never_read")].writes.append(write)
            elif write.one_hour and write.max_gap_ns <= 5 * _MINUTE_NS:
                signals[(*group, "ttl_1h_unneeded")].writes.append(write)
        book = PriceBook()
        findings = []
        for key in sorted(signals):
            finding = self._finding(key, signals[key].writes, book, context)
            if finding is not None and finding.estimated_savings_usd >= Decimal(str(settings.min_savings_usd)):
                findings.append(finding)
        return findings

    def _finding(
        self, key: tuple[str, str, str, str], writes: list[_Write], book: PriceBook, context: RuleContext
    ) -> Finding | None:
        task, step, model, signal = key
        saved = ZERO
        claimed: list[str] = []
        written_tokens = 0
        prices_used: dict[str, str] = {}
        for write in writes:
            call = write.call
            prices = book.get(call)
            if prices is None:
                continue
            prices_used = prices.per_mtok()
            write_1h = call.cache_write_1h_tokens or 0
            if signal == "never_read":
                tokens = call.cache_write_tokens
                waste = (tokens - write_1h) * prices.write_premium + write_1h * prices.write_premium_1h
            else:
                tokens = write_1h
                waste = write_1h * max(prices.cache_write_1h - prices.cache_write, ZERO)
            written_tokens += tokens
            granted = context.ledger.claim(call.span_id, waste)
            if granted:
                saved += granted
                claimed.append(call.span_id)
        if saved <= 0:
            return None
        confidence: Confidence = "high" if signal == "never_read" else "medium"
        if signal == "never_read":
            suggestion = (
                f"Remove or move the cache_control breakpoint in step '{step}': {len(writes)} cache writes "
                f"({written_tokens:,} tokens) were never read within their TTL"
            )
            formula = "sum write_tokens x (p_write - p_in), per TTL"
        else:
            suggestion = (
                f"Use the default 5-minute cache TTL in step '{step}': every reuse of its {len(writes)} "
                "1-hour cache writes came within 5 minutes of the previous use"
            )
            formula = "sum write_1h_tokens x (p_write_1h - p_write_5m)"
        current = sum((write.call.cost or ZERO for write in writes), ZERO)
        evidence = {
            "signal": signal,
            "writes": len(writes),
            "written_tokens": written_tokens,
            "reads_of_these_writes": sum(write.reads for write in writes),
            "one_hour_writes": sum(1 for write in writes if write.one_hour),
            "longest_reuse_gap_seconds": max(write.max_gap_ns for write in writes) // 1_000_000_000,
            "prices": prices_used,
            "formula": formula,
        }
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=model or None,
            current_cost_usd=current,
            estimated_savings_usd=saved,
            savings_range_usd=(saved if confidence == "high" else saved * Decimal("0.5"), saved),
            confidence=confidence,
            suggestion=suggestion,
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = WastedCacheWriteRule()
