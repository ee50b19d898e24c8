"""Request fingerprints of received model calls, from their messages, without rebuilding the body.

Live calls are fingerprinted from the bytes the SDK sent (:func:`agentprof._fingerprint.fingerprint_request`).
A received call has only its recorded content, which :mod:`._content` rebuilds as a chat request
(``model``, ``messages`` and maybe ``tools``). Serialising that request only to parse it back,
then summarising every message again on every call, cost ~60 µs a call with a 2 KB system
prompt: more than all the rest of the call's mapping. :class:`FingerprintCache` computes the same
:class:`~agentprof._fingerprint_facts.RequestFingerprints` (a test holds it equal to
``fingerprint_full(request_body(...))`` for every family's content and for random messages) for
exactly that request shape, following the definitions of :mod:`agentprof._fingerprint_facts`:

* a message's summary (digest, canonical size, ``cache_control`` markers, role) is
  :meth:`~agentprof._fingerprint_facts.Items.append`'s; a plain text message (``role`` and
  ``content`` strings) is canonicalised without the general JSON encoder;
* the calls of one agent repeat a prefix (the system prompt, the conversation so far), so the
  chain of boundaries is kept in a trie keyed by those texts: a call chains only the messages
  after the longest prefix seen before (the first message that is not plain text ends it);
* the request digest and the boundaries are :func:`~agentprof._fingerprint_facts.assemble`'s for
  a request whose only keys are ``messages``, ``model`` and ``tools``.

Everything held is bounded by the characters of the text it summarised and dropped at once when
over the bound. One cache belongs to one :class:`~agentprof.ingest._traces.TraceMapper` (one
writer thread).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from agentprof._fingerprint_facts import (
    CACHE_CONTROL_KEY,
    CHARS_PER_TOKEN,
    LIST_SEED,
    PrefixBoundary,
    RequestFingerprints,
    ValueFacts,
    boundary_json,
    count_cache_control,
    facts_of,
)
from agentprof.ingest import _content

_MAX_CHARS = 8 * 1024 * 1024
_ENTRY_CHARS = 256  # what an entry costs besides its text, roughly, in the same unit
#: What :attr:`RequestFingerprints.messages` parses: never asked for (received content is not
#: captured), so an empty object stands for the body nobody serialised.
_NO_BODY = "{}"
#: ``canonical`` (``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``)
#: without building an encoder per call, and how it writes a string.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_json_string = json.encoder.encode_basestring
_MESSAGES_KEY = b"\x08\x00\x00\x00\x00\x00\x00\x00messages"  # a key in the request digest: length, UTF-8
_MODEL_KEY = b"\x05\x00\x00\x00\x00\x00\x00\x00model"
_TOOLS_KEY = b"\x05\x00\x00\x00\x00\x00\x00\x00tools"


@dataclass(slots=True)
class _Chain:
    """The request up to some message: the boundaries so far and what continuing them needs."""

    running: bytes  # the last boundary's hash, or the seed's
    used: int  # canonical bytes so far
    digests: bytes  # the messages' digests so far
    breakpoints: int  # cache_control markers in the messages so far
    boundaries: tuple[PrefixBoundary, ...]
    json_text: str  # the boundaries as prefixes_json writes them, without the brackets
    children: dict[tuple[str, str], _Chain] = field(default_factory=dict)


class FingerprintCache:
    """Fingerprints of rebuilt chat requests, each repeated message summarised once (see the module docstring)."""

    def __init__(self, max_chars: int = _MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._roots: dict[tuple[str, str, int], tuple[list[Any] | None, ValueFacts | None, ValueFacts, _Chain]] = {}
        self._chars = 0

    def request_fingerprints(
        self, attributes: Mapping[str, Any], model: str | None, provider: str
    ) -> RequestFingerprints | None:
        """``fingerprint_request(request_body(attributes, model), provider)``; ``None`` without messages."""
        messages = _content.input_messages(attributes)
        if not messages:
            return None
        tools = attributes.get("gen_ai.tool.definitions")
        try:
            return self._fingerprints(
                messages, model or "", tools if isinstance(tools, list) and tools else None, provider
            )
        except RecursionError:  # nested deeper than json.dumps goes: no fingerprint, as for a live call
            return None

    def _fingerprints(
        self, messages: list[dict[str, Any]], model: str, tools: list[Any] | None, provider: str
    ) -> RequestFingerprints:
        tools_facts, model_facts, chain = self._root(provider, model, tools)
        keys = [_key(message) for message in messages]
        depth = 0
        for key in keys:
            child = chain.children.get(key) if key is not None else None
            if child is None:
                break
            chain = child
            depth += 1
        running, used, digests, breakpoints = chain.running, chain.used, chain.digests, chain.breakpoints
        boundaries, json_text = chain.boundaries, chain.json_text
        growing = True  # the trie grows along the messages as long as they are plain text
        for index in range(depth, len(messages)):
            key = keys[index]
            digest, size, marks, role = _segment(messages[index], key)
            used += size
            running = xxhash.xxh3_64_digest(running + digest)
            digests += digest
            breakpoints += marks
            boundary = PrefixBoundary(running.hex(), used // CHARS_PER_TOKEN, index, role)
            boundaries += (boundary,)
            json_text = f"{json_text},{boundary_json(boundary)}" if json_text else boundary_json(boundary)
            growing = growing and key is not None and self._spend(len(key[1]))
            if growing:
                assert key is not None
                child = _Chain(running, used, digests, breakpoints, boundaries, json_text)
                chain.children[key] = child
                chain = child
        request = [_MESSAGES_KEY, xxhash.xxh3_128_digest(digests, seed=LIST_SEED), _MODEL_KEY, model_facts.digest]
        breakpoints += model_facts.breakpoints
        if tools_facts is not None:
            request += (_TOOLS_KEY, tools_facts.digest)
            breakpoints += tools_facts.breakpoints
        return RequestFingerprints(
            request=xxhash.xxh3_128_hexdigest(b"".join(request)),
            prefixes=boundaries,
            prefixes_json=f"[{json_text}]",
            cache_breakpoints=breakpoints,
            tool_count=len(tools) if tools is not None else 0,
            response_format=None,  # a rebuilt request has none of the keys these are read from
            tool_choice=None,
            body=_NO_BODY,
        )

    def _root(self, provider: str, model: str, tools: list[Any] | None) -> tuple[ValueFacts | None, ValueFacts, _Chain]:
        """The tool definitions' and the model's summaries, and the trie of the requests sent with them."""
        key = (provider, model, id(tools))
        found = self._roots.get(key)
        if found is None or found[0] is not tools:
            tools_facts = facts_of("tools", tools) if tools is not None else None
            model_facts = facts_of("model", model)
            seed = xxhash.xxh3_64_digest(f"{provider}\x00{model_facts.fact}".encode("utf-8", "surrogatepass"))
            used, json_text = 0, ""
            boundaries: tuple[PrefixBoundary, ...] = ()
            if tools_facts is not None:  # the tool definitions are the first segment
                used = tools_facts.size
                seed = xxhash.xxh3_64_digest(seed + tools_facts.digest)
                boundary = PrefixBoundary(seed.hex(), used // CHARS_PER_TOKEN, -2, "tools")
                boundaries, json_text = (boundary,), boundary_json(boundary)
            # the entry holds the tool definitions, so their id is not reused while it lives
            found = (tools, tools_facts, model_facts, _Chain(seed, used, b"", 0, boundaries, json_text))
            if self._spend(len(model) + (tools_facts.size if tools_facts is not None else 0)):
                self._roots[key] = found
        return found[1], found[2], found[3]

    def _spend(self, chars: int) -> bool:
        """Count an entry about to be kept; over the bound, drop everything (and keep nothing now)."""
        self._chars += chars + _ENTRY_CHARS
        if self._chars <= self.max_chars:
            return True
        self._roots.clear()
        self._chars = 0
        return False


def _key(message: Any) -> tuple[str, str] | None:
    """A plain text message's (role, content): what makes two of them the same segment."""
    if type(message) is dict and len(message) == 2:
        role = message.get("role")
        content = message.get("content")
        if type(role) is str and type(content) is str:
            return role, content
    return None


def _segment(message: Any, key: tuple[str, str] | None) -> tuple[bytes, int, int, str]:
    """A message's digest, canonical size, ``cache_control`` markers and role, as ``Items.append`` records them."""
    if key is not None:  # {"content": ..., "role": ...}: its canonical JSON without the general encoder
        role, content = key
        encoded = f'{{"content":{_json_string(content)},"role":{_json_string(role)}}}'.encode("utf-8", "surrogatepass")
        return xxhash.xxh3_128_digest(encoded), len(encoded), 0, role
    encoded = _canonical(message).encode("utf-8", "surrogatepass")
    role = str(message.get("role", message.get("type", ""))) if isinstance(message, dict) else ""
    marks = count_cache_control(message) if CACHE_CONTROL_KEY in encoded else 0
    return xxhash.xxh3_128_digest(encoded), len(encoded), marks, role
