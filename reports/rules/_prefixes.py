"""Prefix fingerprint lists as the cache rules read them: each distinct list parsed once, loops incrementally.

The recorder stores a model call's prefix boundaries (:func:`agentprof._fingerprint.prefixes_json`)
as compact JSON, ``[{"hash":...,"tokens":...,"index":...,"role":...},...]``. Three rules
(``prompt_cache``, ``wasted_cache_write``, ``context_growth``) walk the boundaries of most calls,
so each distinct text is parsed once per report and kept in a cache keyed by the text itself: the
rules pass the very string object of the record, whose hash Python keeps, so every later look-up
is cheap.

Parsing is incremental along agent loops: request k of a loop is request k-1 plus one or two
messages, and so is its prefix list. When the list without its last one or two boundaries was
parsed before, only the new boundaries are parsed, which keeps a loop's parsing linear in its
length instead of quadratic. The usual new part (one boundary closing the list) and the usual
short list (system prompt and one message) are each read by one anchored regular expression.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

#: ``(hashes, approximate token positions)`` of one prefix list, in boundary order.
Boundaries = tuple[tuple[str, ...], tuple[int, ...]]

# The recorder's layout (compact JSON, keys in this order); anything else goes through ``json``.
_BOUNDARY = re.compile(r'\{"hash":"([^"]*)","tokens":(\d+),"index":(-?\d+),"role":"([^"]*)"\}')
_HASH_AND_TOKENS = r'\{"hash":"([^"]*)","tokens":(\d+),"index":-?\d+,"role":"[^"]*"\}'
# One boundary closing the list (the usual new part of an agent loop's request); a whole list of two.
_LAST_BOUNDARY = re.compile(_HASH_AND_TOKENS + r"\]")
_TWO_BOUNDARIES = re.compile(r"\[" + _HASH_AND_TOKENS + "," + _HASH_AND_TOKENS + r"\]")
_FIRST_KIND = re.compile(r'"index":(-?\d+),"role":"([^"]*)"')
_HASHES = re.compile(r'"hash":"([^"]*)"')
_TOKENS = re.compile(r'"tokens":(\d+)')
_NEXT = '},{"hash"'

_BOUNDARIES: dict[str, Boundaries] = {}
_LIMIT = 1 << 18

#: The parsed boundaries of a text already seen, else ``None`` (a bound ``dict.get``: the rules'
#: hot loops call it directly and fall back on :func:`parse_unseen`).
known_boundaries = _BOUNDARIES.get


def parse_boundaries(prefix_fingerprints_json: str) -> Boundaries:
    """Hashes and token positions of a prefix list (see the module docstring for the caching).

    Exact for any JSON layout: the recorder's is read with regular expressions, any other
    (imported spans, hand-written JSON) through :func:`parse_prefixes`.
    """
    parsed = _BOUNDARIES.get(prefix_fingerprints_json)
    return parse_unseen(prefix_fingerprints_json) if parsed is None else parsed


def parse_unseen(prefix_fingerprints_json: str) -> Boundaries:
    """:func:`parse_boundaries` of a text :data:`known_boundaries` does not know (the rules look it up first)."""
    text = prefix_fingerprints_json
    parsed = None
    # The usual cases inline (this runs once per distinct list: 100,000 times in a large report).
    cut = text.rfind(_NEXT)
    if cut > 0:
        head = _BOUNDARIES.get(text[: cut + 1] + "]")
        if head is not None:
            last = _LAST_BOUNDARY.fullmatch(text, cut + 2)
            if last is not None:
                parsed = head[0] + (last[1],), head[1] + (int(last[2]),)
            else:
                parsed = _append(head, _parse_all(text[cut + 2 :]))
        else:
            two = _TWO_BOUNDARIES.fullmatch(text)
            if two is not None:
                parsed = (two[1], two[3]), (int(two[2]), int(two[4]))
            else:
                parsed = _two_new(text, cut)
    if parsed is None:
        parsed = _parse_all(text)
    if parsed is None:
        full = parse_prefixes(text)
        parsed = tuple(p[0] for p in full), tuple(p[1] for p in full)
    if len(_BOUNDARIES) >= _LIMIT:
        _BOUNDARIES.clear()
    _BOUNDARIES[text] = parsed
    return parsed


def _two_new(text: str, cut: int) -> Boundaries | None:
    """``text``'s boundaries when it extends a list parsed before by two boundaries (a reply and a tool result)."""
    cut = text.rfind(_NEXT, 0, cut)
    if cut < 0:
        return None
    head = _BOUNDARIES.get(text[: cut + 1] + "]")
    return None if head is None else _append(head, _parse_all(text[cut + 2 :]))


def _append(head: Boundaries, tail: Boundaries | None) -> Boundaries | None:
    return None if tail is None else (head[0] + tail[0], head[1] + tail[1])


def _parse_all(text: str) -> Boundaries | None:
    """Parse every boundary of ``text`` in the recorder's layout; ``None`` for any other layout."""
    hashes = tuple(_HASHES.findall(text))
    tokens = tuple(map(int, _TOKENS.findall(text)))
    if len(hashes) == len(tokens) == text.count('"hash"'):
        return hashes, tokens
    return None


@lru_cache(maxsize=1 << 18)
def parse_prefixes(prefix_fingerprints_json: str) -> tuple[tuple[str, int, int, str], ...]:
    """Every boundary as ``(hash, approx_tokens, index, role)``, cached per text.

    A cache outside the record (several rules read the same call's prefixes; a named tuple has no
    per-instance storage). The regular expression reads the recorder's own layout 1.4x faster than
    ``json.loads`` builds dictionaries; a count mismatch means another layout, which ``json`` parses.
    """
    found = _BOUNDARY.findall(prefix_fingerprints_json)
    if len(found) == prefix_fingerprints_json.count('"hash"'):
        return tuple((hash_, int(tokens), int(index), role) for hash_, tokens, index, role in found)
    return tuple((p["hash"], p["tokens"], p["index"], p["role"]) for p in json.loads(prefix_fingerprints_json))


def first_segment(prefix_fingerprints_json: str) -> tuple[int, str] | None:
    """``(index, role)`` of the first boundary of a non-empty prefix list, ``None`` if it has none."""
    match = _FIRST_KIND.search(prefix_fingerprints_json)
    if match is not None:
        return int(match[1]), match[2]
    prefixes = parse_prefixes(prefix_fingerprints_json)
    return (prefixes[0][2], prefixes[0][3]) if prefixes else None


def clear() -> None:
    """Forget every parsed list."""
    parse_prefixes.cache_clear()
    _BOUNDARIES.clear()
