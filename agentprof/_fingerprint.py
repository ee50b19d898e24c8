"""Fingerprints of requests and outputs: what the cache rules need, without storing text.

Runs on the exporter thread over the request body bytes the SDK already serialised. Three
things come out of a request:

* a **request fingerprint**: a 128-bit hash of the canonical request (keys sorted, transport-only
  fields such as ``stream`` dropped), equal for requests a response cache could have served;
* **prefix fingerprints** at every segment boundary, in the order providers build their cache
  key (tools, then system, then each message), each chained from the previous one and seeded
  with provider and model, with the approximate token position of the boundary (characters of
  canonical JSON / 4: good enough to compare against cache minimums of 1,024+ tokens);
* the number of ``cache_control`` breakpoints (Anthropic prompt caching opt-in).

Chat Completions and Anthropic bodies carry ``messages`` (and Anthropic a top-level ``system``);
OpenAI Responses bodies carry ``instructions`` (the system prompt) and ``input``, a string (one
user message) or a list of items, which take the place of the messages.

The definitions live in :mod:`agentprof._fingerprint_facts`. An agent loop re-sends its history
on every call, so bodies are read incrementally (:mod:`agentprof._fingerprint_walk`): a call
costs its new content, not its history. Both give the same fingerprints as a full parse.
"""

from __future__ import annotations

import xxhash

from agentprof import _safety
from agentprof._fingerprint_facts import (
    CHARS_PER_TOKEN,
    PrefixBoundary,
    RequestFingerprints,
    boundary_json,
    fingerprint_full,
)
from agentprof._fingerprint_walk import IncrementalFingerprinter

__all__ = [
    "CHARS_PER_TOKEN",
    "PrefixBoundary",
    "RequestFingerprints",
    "fingerprint_full",
    "fingerprint_request",
    "output_fingerprint",
    "prefixes_json",
]

# The process's remembered bodies (a few MiB at most): live calls come from the exporter thread.
_FINGERPRINTER = IncrementalFingerprinter()


def fingerprint_request(body: bytes, provider: str) -> RequestFingerprints | None:
    """Fingerprint one serialised request body; ``None`` when it is not a JSON object."""
    if isinstance(body, bytes):
        try:
            return _FINGERPRINTER.fingerprint(body, provider)
        except Exception as exc:  # a bug in the incremental path: the full parse still answers
            _safety.internal_error("fingerprint.incremental", exc)
            _FINGERPRINTER.clear()
    return fingerprint_full(body, provider)


def prefixes_json(prefixes: tuple[PrefixBoundary, ...]) -> str:
    """Serialise prefix boundaries compactly for the store (what ``RequestFingerprints.prefixes_json`` holds)."""
    return "[" + ",".join(boundary_json(boundary) for boundary in prefixes) + "]"


def output_fingerprint(text: str) -> tuple[str, int]:
    """Return ``(hash, length in characters)`` of an output text."""
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass")), len(text)
