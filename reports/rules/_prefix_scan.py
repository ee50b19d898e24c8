"""How ``prompt_cache`` sorts calls: the walk over every call of every cache scope, in time order.

For each call it finds the longest prefix boundary an earlier call of the same scope (provider,
model, server) sent, and files the call under its group (task name, step, model) as a cache hit,
below the minimum, TTL-expired or a miss with the part of the prefix it would have written; calls
sharing nothing are checked for a prefix breaker. The rule (:mod:`.prompt_cache`) turns the misses
into money. A module of its own because it is the one loop over 100,000 calls, written for speed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._base import CallRecord
from ._cache_facts import CacheFacts, cache_facts
from ._prefixes import known_boundaries, parse_unseen

_HOUR_NS = 3600 * 1_000_000_000
_SAME_LENGTH = 0.02  # a first segment within 2% of a recent one's length "is the same, with a small change"

_Scope = tuple[str | None, str | None, str | None]


# A call that missed the cache: (call, P in real tokens, part of P first written by this call (the write
# premium applies), whether a 1-hour TTL would have served it). A tuple: tens of thousands per report.
Miss = tuple[CallRecord, int, int, bool]


@dataclass(slots=True)
class Group:
    """The calls of one (task name, step, model) with usage and prefixes, sorted into what happened to them."""

    calls: list[CallRecord] = field(default_factory=list)
    hits: int = 0
    below_minimum: int = 0
    ttl_expired: int = 0
    misses: dict[str, list[Miss]] = field(default_factory=lambda: defaultdict(list))  # diagnosis -> misses


@dataclass(slots=True)
class _ScopeState:
    """What one cache scope (provider, model, server) has seen, keyed by prefix hash."""

    facts: CacheFacts
    last_sent: dict[str, int] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # prefixes in a live cache session (caching on)
    written_1h: set[str] = field(default_factory=set)  # the same, had the TTL been one hour
    # (index, role) of a first segment -> [its tokens, last ns] in the latest call that sent one...
    first_segment: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    # ...and the same list by the first segment's hash (its (index, role) is part of what the hash covers).
    first_kind: dict[str, list[int]] = field(default_factory=dict)


# What the scan needs of a call's group and scope, unpacked into local variables once per call.
_Slot = tuple[
    Callable[[CallRecord], None],  # adds the call to its group
    int,  # the scope's minimum cacheable prefix
    _ScopeState,
    Group,
    dict[str, int],  # the scope's last_sent
    set[str],  # the scope's written
    CacheFacts,
    dict[str, list[int]],  # the scope's first_kind
]


class Scanner:
    """Walks the calls of all scopes once and sorts every call into its group's buckets."""

    def __init__(self, read_fraction: float) -> None:
        self.read_fraction = read_fraction
        self.scopes: dict[_Scope, _ScopeState] = {}
        self.groups: dict[tuple[str, str, str], Group] = defaultdict(Group)

    def scan(self, calls: Sequence[CallRecord]) -> None:
        """Sort every call with usage and prefixes into its group, in time order.

        One loop over 100,000 calls, so it is written for speed: what a call needs of its scope and
        group is found with one look-up (keyed by everything both depend on) and unpacked into
        local variables, and the usual case (an agent loop extending its previous request) is
        inline; the rare ones (no shared prefix, a TTL gap) are methods.
        """
        read_fraction = self.read_fraction
        slots: dict[tuple[str, str, str | None, str | None, str | None], _Slot] = {}
        for call in calls:
            text = call.prefix_fingerprints_json
            if not text or call.status == "error" or not call.usage_known:
                continue  # embeddings and other calls without messages have no prefixes ("[]")
            slot_key = (call.task_name, call.step_name, call.model, call.provider, call.server_address)
            slot = slots.get(slot_key)
            if slot is None:
                slot = slots[slot_key] = self._slot(call)
            add_call, minimum, state, group, last_sent, written, facts, first_kind = slot
            add_call(call)
            input_tokens = call.input_tokens
            if input_tokens < minimum:
                # Whatever it shares is below the minimum, and so is whatever a later call shares
                # with it alone: such calls are skipped (and their prefixes never parsed).
                continue
            hashes, tokens = known_boundaries(text) or parse_unseen(text)
            if not hashes:
                continue
            count = len(hashes)
            scale = input_tokens / tokens[-1] if tokens[-1] else 0.0
            start_ns = call.start_ns
            # The longest boundary an earlier call sent. Hashes are chained: if a boundary was sent
            # before, so was every shorter one of the same request, so "seen" is monotone along the
            # boundaries and bisection finds the last one; the usual case (an agent loop extending
            # the previous request by one message) takes two tests.
            if count >= 2 and hashes[count - 2] in last_sent:
                matched = count - 1 if hashes[count - 1] in last_sent else count - 2
            else:
                low, high = 0, count  # hashes[:low] all seen; hashes[high:] none seen
                while low < high:
                    middle = (low + high + 1) // 2
                    if hashes[middle - 1] in last_sent:
                        low = middle
                    else:
                        high = middle - 1
                matched = low - 1
            if matched >= 0:
                key = hashes[matched]
                prefix = round(tokens[matched] * scale)
                if prefix > input_tokens:
                    prefix = input_tokens
                if prefix < minimum or prefix - prefix % facts.increment_tokens == 0:
                    group.below_minimum += 1
                elif call.cache_read_tokens >= read_fraction * prefix:
                    group.hits += 1
                    written.add(key)
                elif start_ns - last_sent[key] > facts.ttl_ns:
                    self._ttl_expired(call, group, state, key, prefix)
                else:
                    if key in written:
                        write = 0
                    else:
                        # The part of P not already written in a live session is written (once) by
                        # this call: P less the longest earlier boundary still alive in the cache.
                        already = 0
                        ttl_ns = facts.ttl_ns
                        for position in range(matched - 1, -1, -1):
                            earlier = hashes[position]
                            if earlier in written and start_ns - last_sent[earlier] <= ttl_ns:
                                already = round(tokens[position] * scale)
                                break
                        write = max(prefix - already, 0)
                        written.add(key)
                    if facts.explicit:
                        diagnosis = "breakpoint_misplaced" if call.cache_breakpoints else "no_breakpoint"
                    else:
                        diagnosis = "routing_miss"
                    group.misses[diagnosis].append((call, prefix, write, False))
            else:
                self._check_breaker(call, group, state, scale)
            for hash_ in hashes:  # 2x faster than update(dict.fromkeys(...)), which builds a dict per call
                last_sent[hash_] = start_ns
            first = first_kind.get(hashes[0])
            if first is None:
                first = first_kind[hashes[0]] = state.first_segment.setdefault(call.first_segment or (0, ""), [0, 0])
            first[0] = tokens[0]
            first[1] = start_ns

    def _slot(self, call: CallRecord) -> _Slot:
        scope = (call.provider, call.model, call.server_address)
        state = self.scopes.get(scope)
        if state is None:
            state = self.scopes[scope] = _ScopeState(cache_facts(call.provider, call.model))
        group = self.groups[(call.task_name, call.step_name, call.model or "")]
        facts = state.facts
        return (
            group.calls.append,
            facts.minimum_tokens,
            state,
            group,
            state.last_sent,
            state.written,
            facts,
            state.first_kind,
        )

    def _ttl_expired(self, call: CallRecord, group: Group, state: _ScopeState, key: str, prefix: int) -> None:
        group.ttl_expired += 1
        if call.start_ns - state.last_sent[key] > _HOUR_NS:
            state.written_1h.discard(key)
            return
        # A 1-hour TTL would have kept the entry alive: written once per 1-hour session.
        write = 0 if key in state.written_1h else prefix
        state.written_1h.add(key)
        group.misses["ttl_expired"].append((call, prefix, write, True))

    def _check_breaker(
        self,
        call: CallRecord,
        group: Group,
        state: _ScopeState,
        scale: float,
    ) -> None:
        _, tokens, index, role = call.prefixes[0]
        if index >= 0 and role not in {"system", "developer"}:
            return  # a conversation's first user message differs by design
        seen = state.first_segment.get((index, role))
        if seen is None:
            return
        seen_tokens, seen_ns = seen
        if abs(seen_tokens - tokens) > max(8, _SAME_LENGTH * tokens) or call.start_ns - seen_ns > state.facts.ttl_ns:
            return
        prefix = min(call.input_tokens, round(tokens * scale))
        if state.facts.cacheable(prefix) == 0 or call.cache_read_tokens >= self.read_fraction * prefix:
            return
        key = f"breaker:{index}:{role}"
        fresh = key not in state.written
        state.written.add(key)
        group.misses["prefix_breaker"].append((call, prefix, prefix if fresh else 0, False))
