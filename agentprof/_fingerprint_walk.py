"""Incremental request fingerprints: read only what an agent loop added since its previous call.

An agent loop sends its whole history on every call: request k is request k-1 plus a message or
two, so fingerprinting each body from scratch costs the whole history on every call (8.8 ms at
726 KB). :class:`IncrementalFingerprinter` remembers recent bodies together with where each
top-level value and each item of their ``messages`` / ``input`` list lies, the summaries of
those (:class:`~agentprof._fingerprint_facts.ValueFacts`, :class:`~agentprof._fingerprint_facts.Items`)
and their prefix chain. A new body is compared with the remembered body of the same provider that
shares the longest byte prefix with it, then walked member by member:

* a value or a list item that lies wholly inside that common prefix is the same value: its
  summary is reused unread;
* a value past it (Anthropic sends ``system`` and ``tools`` after ``messages``) is reused when
  its bytes equal the remembered value's bytes, compared in full;
* anything else is decoded and parsed at its offset by the stdlib scanner, then summarised.

So a call costs a byte comparison of the history (memory speed) plus the parsing of its new
content. Reuse is verified by comparing bytes, never trusted to a hash. A body the walk cannot
read (not UTF-8, not an object, invalid JSON) goes to the full parse. Both paths
:func:`~agentprof._fingerprint_facts.assemble` the same summaries, so they agree by construction.

Memory is bounded: at most ``max_entries`` bodies and about ``max_bytes`` in all, least recently
used out first (a body larger than that is not remembered). A body that continues a remembered one
replaces it, so an agent loop holds one entry. Entries never change once made; the list of them is
guarded by a lock (the exporter thread is the only caller in a live process; ingestion may be another).
"""

from __future__ import annotations

import json
import re
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, NamedTuple

from agentprof._fingerprint_facts import (
    SEGMENT_LISTS,
    Chain,
    Items,
    RequestFingerprints,
    ValueFacts,
    assemble,
    facts_of,
    fingerprint_full,
)

_WHITESPACE = re.compile(rb"[ \t\n\r]*")  # JSON's whitespace, as the json module skips it
_SELF_DELIMITING = frozenset(b'{["')  # values the parser ends without looking past their last byte
# What json.loads parses with (the C scanner: strict, float, no hooks); typeshed does not declare them.
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_CHUNK = 1 << 16  # bytes compared at once when looking for the end of a common prefix
# Approximate memory of a remembered entry besides its body (for the budget, not exact).
_ENTRY_COST = 2048
_MEMBER_COST = 256
_ITEM_COST = 384  # offsets, digest, sizes, role, prefix boundary with its hash and its JSON


class _Unreadable(Exception):
    """The walk cannot read this body: the full parse decides what it is."""


def common_prefix(new: bytes, new_start: int, old: bytes, old_start: int) -> int:
    """Length of the longest common prefix of ``new[new_start:]`` and ``old[old_start:]``.

    Compared in chunks by ``bytes.startswith`` over a memoryview (memcmp, no copy); the first
    unequal chunk is bisected.
    """
    limit = min(len(new) - new_start, len(old) - old_start)
    view = memoryview(old)
    done = 0
    while done < limit:
        size = min(_CHUNK, limit - done)
        if new.startswith(view[old_start + done : old_start + done + size], new_start + done):
            done += size
            continue
        low, high = done, done + size  # equal up to low, unequal up to high
        while high - low > 1:
            middle = (low + high) // 2
            if new.startswith(view[old_start + low : old_start + middle], new_start + low):
                low = middle
            else:
                high = middle
        return low
    return done


class _Member(NamedTuple):
    """One top-level member of a remembered body: where its value lies, and its summary."""

    key: str
    value_start: int
    value_end: int
    facts: ValueFacts


class _ListLayout(NamedTuple):
    """Where the items of a top-level list lie (offsets from its ``[``) and what they are."""

    start: int  # offset of the ``[`` in its body
    starts: array[int]
    ends: array[int]
    items: Items


class _Entry(NamedTuple):
    """A remembered body and everything needed to reuse its parts; never changed once made."""

    provider: str
    body: bytes
    by_start: dict[int, _Member]  # offset of the key's opening quote -> member
    by_key: dict[str, _Member]
    lists: dict[str, _ListLayout]  # segment lists only
    chain: Chain
    continued_at: int  # a body sharing this many leading bytes continues this one (its last item aside)
    cost: int  # approximate memory, for the budget


class _Walk:
    """One pass over a body's top-level object, reusing what a remembered body (``entry``) already had.

    ``common`` is how many leading bytes the body shares with the entry's. The walk reads bytes
    for the JSON structure and decodes text only to parse: from the first value it parses to
    the end of the body, and again after each reused value it skipped (``_text_at < 0``).
    """

    def __init__(self, body: bytes, entry: _Entry | None, common: int) -> None:
        self.body = body
        self.entry = entry
        self.common = common
        self.values: dict[str, ValueFacts] = {}
        self.members: dict[int, _Member] = {}
        self.lists: dict[str, _ListLayout] = {}
        self.items: dict[str, Items] = {}
        self.reused: dict[str, int] = {}  # per segment list: leading items identical to the entry's
        self._text = ""  # the body decoded from byte _text_at on; its char _char is byte _byte
        self._text_at = -1
        self._char = 0
        self._byte = 0
        self._ascii = True

    def run(self) -> None:
        """Walk the whole body; raises when it is not a JSON object the walk can read."""
        body = self.body
        at = self._skip(0)
        if not body.startswith(b"{", at):
            raise _Unreadable
        at = self._skip(at + 1)
        if body.startswith(b"}", at):
            at += 1
        else:
            while True:
                at = self._skip(self._member(at))
                if body.startswith(b",", at):
                    at = self._skip(at + 1)
                elif body.startswith(b"}", at):
                    at += 1
                    break
                else:
                    raise _Unreadable
        if self._skip(at) != len(body):
            raise _Unreadable

    def _member(self, start: int) -> int:
        """Read the member whose key starts at ``start``; return where its value ends."""
        body, entry, common = self.body, self.entry, self.common
        if not body.startswith(b'"', start):
            raise _Unreadable
        if entry is not None and start < common:
            old = entry.by_start.get(start)
            if old is not None:  # the key and all before it are the same: so is the value, up to `common`
                layout = entry.lists.get(old.key)
                if old.value_end < common or (old.value_end == common and body[old.value_start] in _SELF_DELIMITING):
                    if layout is not None:
                        self._keep_list(old.key, layout, len(layout.items))
                    self._text_at = -1
                    self._keep(old.key, start, old.value_start, old.value_end, old.facts)
                    return old.value_end
                if layout is not None and old.value_start < common:
                    return self._list(old.key, start, old.value_start, layout, common - old.value_start)
        # A repeated key overwrites the earlier one's summary, as json.loads keeps the last value.
        key, at = self._parse(start, key=True)
        at = self._skip(at)
        if not body.startswith(b":", at):
            raise _Unreadable
        at = self._skip(at + 1)
        if at >= len(body):
            raise _Unreadable
        first = body[at]
        if key in SEGMENT_LISTS and first == ord("["):
            layout = entry.lists.get(key) if entry is not None else None
            shared = common_prefix(body, at, entry.body, layout.start) if entry is not None and layout else 0
            return self._list(key, start, at, layout, shared)
        old = entry.by_key.get(key) if entry is not None else None
        if entry is not None and old is not None and first in _SELF_DELIMITING:
            end = at + old.value_end - old.value_start
            if body.startswith(memoryview(entry.body)[old.value_start : old.value_end], at):
                self._text_at = -1  # skipped bytes: the decoded text no longer lines up
                self._keep(key, start, at, end, old.facts)
                return end
        value, end = self._parse(at)
        self._keep(key, start, at, end, facts_of(key, value))
        return end

    def _list(self, key: str, key_start: int, start: int, layout: _ListLayout | None, shared: int) -> int:
        """Read a segment list from its ``[`` at ``start``, whose first ``shared`` bytes equal ``layout``'s list."""
        body = self.body
        kept = 0
        if layout is not None and shared > 0:
            assert self.entry is not None
            kept = bisect_left(layout.ends, shared)  # items that end before the first difference
            if (
                kept < len(layout.ends)
                and layout.ends[kept] == shared
                and self.entry.body[layout.start + layout.starts[kept]] in _SELF_DELIMITING
            ):
                kept += 1
        if layout is not None and kept:
            items = layout.items.head(kept)
            starts, ends = layout.starts[:kept], layout.ends[:kept]
            self._text_at = -1
            at = self._skip(start + ends[-1])
            more = body.startswith(b",", at)
            if not more and not body.startswith(b"]", at):
                raise _Unreadable
            if more:
                at = self._skip(at + 1)
        else:
            items, starts, ends = Items(), array("q"), array("q")
            at = self._skip(start + 1)
            more = not body.startswith(b"]", at)
        while more:
            value, end = self._parse(at)
            items.append(value)
            starts.append(at - start)
            ends.append(end - start)
            at = self._skip(end)
            if body.startswith(b",", at):
                at = self._skip(at + 1)
            elif body.startswith(b"]", at):
                break
            else:
                raise _Unreadable
        layout = _ListLayout(start, starts, ends, items)
        self._keep_list(key, layout, kept)
        self._keep(key, key_start, start, at + 1, items.facts())
        return at + 1

    def _keep_list(self, key: str, layout: _ListLayout, reused: int) -> None:
        self.lists[key] = layout
        self.items[key] = layout.items
        self.reused[key] = reused

    def _keep(self, key: str, key_start: int, value_start: int, value_end: int, facts: ValueFacts) -> None:
        self.values[key] = facts
        self.members[key_start] = _Member(key, value_start, value_end, facts)

    def _skip(self, at: int) -> int:
        if at < len(self.body) and self.body[at] > 0x20:  # the SDKs' compact JSON: no whitespace to skip
            return at
        match = _WHITESPACE.match(self.body, at)
        return match.end() if match is not None else at

    def _parse(self, at: int, *, key: bool = False) -> tuple[Any, int]:
        """The JSON value (with ``key``, the string) at byte ``at``, and the byte where it ends."""
        if self._text_at < 0:
            self._text = str(memoryview(self.body)[at:], "utf-8", "surrogatepass")
            self._text_at, self._char, self._byte = at, 0, at
            self._ascii = self._text.isascii()
        char = self._char + at - self._byte  # only ASCII structure was stepped over since the last parse
        value, end_char = _scanstring(self._text, char + 1) if key else _scan_once(self._text, char)
        if self._ascii:
            end = at + end_char - char
        else:
            end = at + len(self._text[char:end_char].encode("utf-8", "surrogatepass"))
        self._char, self._byte = end_char, end
        return value, end

    def entry_for(self, provider: str, chain: Chain) -> _Entry:
        """The walked body as a remembered entry."""
        by_key = {member.key: member for member in self.members.values()}
        continued = [layout.start + layout.starts[-1] for layout in self.lists.values() if len(layout.starts)]
        cost = _ENTRY_COST + len(self.body) + _MEMBER_COST * len(self.members)
        cost += _ITEM_COST * sum(len(layout.starts) for layout in self.lists.values())
        return _Entry(
            provider=provider,
            body=self.body,
            by_start=self.members,
            by_key=by_key,
            lists=self.lists,
            chain=chain,
            continued_at=max(continued) if continued else len(self.body),
            cost=cost,
        )


class IncrementalFingerprinter:
    """Fingerprints request bodies, reading only what is new since a remembered body of the same loop.

    Args:
        max_entries: Bodies remembered at most (about one per agent loop running at once).
        max_bytes: Approximate memory of the remembered bodies and their summaries, at most.
    """

    def __init__(self, max_entries: int = 16, max_bytes: int = 4 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: list[_Entry] = []  # most recent first
        self._lock = threading.Lock()

    def fingerprint(self, body: bytes, provider: str) -> RequestFingerprints | None:
        """Fingerprint one serialised request body; ``None`` when it is not a JSON object."""
        entry, common = self._closest(body, provider)
        walk = _Walk(body, entry, common)
        try:
            walk.run()
        except (_Unreadable, ValueError, StopIteration, RecursionError):  # ValueError: JSON or UTF-8 errors
            return fingerprint_full(body, provider)
        previous = entry.chain if entry is not None else None
        fingerprints, chain = assemble(provider, walk.values, walk.items, body, previous, walk.reused)
        continued = entry if entry is not None and common >= entry.continued_at else None
        self._remember(walk.entry_for(provider, chain), continued)
        return fingerprints

    def remembered(self) -> list[tuple[int, int]]:
        """``(body bytes, approximate cost)`` of each remembered entry, most recent first (for tests)."""
        with self._lock:
            return [(len(entry.body), entry.cost) for entry in self._entries]

    def clear(self) -> None:
        """Forget every remembered body."""
        with self._lock:
            self._entries = []

    def _closest(self, body: bytes, provider: str) -> tuple[_Entry | None, int]:
        """The remembered body sharing the longest prefix with ``body``, and that length."""
        with self._lock:
            candidates = [entry for entry in self._entries if entry.provider == provider]
        best, best_common = None, 0
        for entry in candidates:
            common = common_prefix(body, 0, entry.body, 0)
            if common > best_common:
                best, best_common = entry, common
            if common >= entry.continued_at:  # the same loop, one step on: nothing is closer
                break
        return best, best_common

    def _remember(self, entry: _Entry, continued: _Entry | None) -> None:
        """Put ``entry`` first in place of the entry it continues, and keep within the budget."""
        if entry.cost > self.max_bytes:
            return
        with self._lock:
            entries = [entry] + [old for old in self._entries if old is not continued]
            kept: list[_Entry] = []
            total = 0
            for candidate in entries:
                if len(kept) < self.max_entries and total + candidate.cost <= self.max_bytes:
                    kept.append(candidate)
                    total += candidate.cost
            self._entries = kept
