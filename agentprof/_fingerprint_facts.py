"""What a request is made of, as its fingerprints see it: one definition for every way of reading a body.

A request body is a JSON object. Each top-level value is summarised once as :class:`ValueFacts`:
a 128-bit digest of its canonical JSON (keys sorted, compact, UTF-8), its canonical size, its
``cache_control`` markers and the one fact an analysis reads from it (the model name, the forced
tool, ...). A list is summarised item by item (:class:`Items`), so that a list that grows keeps
the summaries of the items it had. Every fingerprint is :func:`assemble`-d from those summaries,
never from the text: that is what lets :mod:`agentprof._fingerprint_walk` reuse the summaries of
values an earlier body already had and still return exactly what a fresh parse returns
(:func:`fingerprint_full`, the reference).

* **digest** of a value: xxh3-128 of its canonical JSON; of a list, xxh3-128 (seed 1) of its
  items' digests, so a list's digest is computed from its items' without their text;
* **request fingerprint**: xxh3-128 over every top-level key but the transport-only ones, in key
  order, each as its length, its UTF-8 and its value's digest: equal exactly when the canonical
  requests are equal (up to hash collisions), whatever the key order or spacing of the body;
* **prefix boundaries**, in the order providers build their cache key (tools, then the system
  prompt, then each message or Responses ``input`` item): ``xxh3_64(previous + segment digest)``,
  the first ``previous`` being ``xxh3_64(provider, NUL, model)``, each with the approximate token
  position of its end (canonical bytes of the segments so far / 4: good enough to compare with
  cache minimums of 1,024+ tokens).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import xxhash

CHARS_PER_TOKEN = 4
# Fields that change how a response is delivered or billed, not what it says.
TRANSPORT_FIELDS = frozenset({"stream", "stream_options", "metadata", "user", "store", "service_tier"})
EMBEDDINGS_FIELDS = frozenset({"encoding_format", "dimensions"})
#: The lists an agent loop grows, read item by item: chat/Anthropic ``messages``, Responses ``input``.
SEGMENT_LISTS = frozenset({"messages", "input"})
LIST_SEED = 1  # a list's digest is over its items' digests: another seed keeps it apart from any text's
CACHE_CONTROL_KEY = b'"cache_control":'
# The usual roles, so that a remembered loop holds one string per role, not one per message.
_ROLES = {role: role for role in ("system", "developer", "user", "assistant", "tool", "function", "message")}
_ROLES.update({role: role for role in ("function_call", "function_call_output", "reasoning", "")})


@dataclass(frozen=True, slots=True)
class PrefixBoundary:
    """The cumulative prefix up to and including one segment of the request."""

    hash: str
    tokens: int
    index: int  # message index; -2 for the tool definitions, -1 for a top-level system prompt
    role: str


@dataclass(frozen=True, slots=True)
class RequestFingerprints:
    """Everything the analyses need to know about a request, without its text.

    ``prefixes_json`` is :attr:`prefixes` as :func:`agentprof._fingerprint.prefixes_json` writes
    them, built along with them (extended, not rewritten, along an agent loop). ``body`` is kept
    only for :attr:`messages`, and is not part of equality.
    """

    request: str
    prefixes: tuple[PrefixBoundary, ...]
    prefixes_json: str
    cache_breakpoints: int
    tool_count: int
    response_format: str | None
    tool_choice: str | None
    body: bytes | str = field(repr=False, compare=False)

    @property
    def messages(self) -> Any:
        """The parsed messages (a Responses ``input`` as messages), parsed from the body when asked for.

        Only content capture needs them, and parsing the whole history of every call is exactly
        what incremental fingerprinting avoids; so they are not kept, but read again on demand.
        """
        return messages_of(json.loads(self.body))


class ValueFacts(NamedTuple):
    """One top-level value, summarised: all that the fingerprints need from it."""

    digest: bytes  # 16 bytes
    size: int  # bytes of its canonical JSON
    breakpoints: int  # cache_control markers in it
    kind: type  # the parsed value's type: list, dict, str, int, float, bool or NoneType
    truthy: bool
    length: int  # items of a list, -1 for any other value
    fact: Any  # what an analysis reads from this key (see key_fact); None for most keys


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) without an encoder per call.
_encode_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_json_ascii_string = json.encoder.encode_basestring_ascii  # how json.dumps writes a str by default


def canonical(value: Any) -> bytes:
    """Canonical JSON of ``value``: keys sorted, compact, UTF-8 (a lone surrogate is kept, never an error)."""
    return _encode_canonical(value).encode("utf-8", "surrogatepass")


def count_cache_control(value: Any) -> int:
    """Objects with a truthy ``cache_control`` in ``value``, at any depth (iterative: no recursion limit)."""
    count = 0
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            if current.get("cache_control"):
                count += 1
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return count


def _breakpoints(value: Any, encoded: bytes) -> int:
    # The key can only be there if its canonical spelling is: most values are skipped at memory speed.
    return count_cache_control(value) if CACHE_CONTROL_KEY in encoded else 0


class Items:
    """The items of a top-level list, as columns: cheap to extend, and to share a leading run of.

    A remembered loop's ``Items`` are never changed: :meth:`head` copies the run a new body shares.
    """

    __slots__ = ("digests", "size_ends", "breakpoint_ends", "roles", "leading_dicts")

    def __init__(self) -> None:
        self.digests = bytearray()  # 16 bytes per item
        self.size_ends: array[int] = array("q")  # canonical bytes of items 0..i
        self.breakpoint_ends: array[int] = array("q")  # cache_control markers in items 0..i
        self.roles: list[str] = []  # role, else type (Responses items), else ""
        self.leading_dicts = 0  # how many items, from the first, are objects

    @classmethod
    def of(cls, values: list[Any]) -> Items:
        """Summarise every item of ``values``."""
        items = cls()
        for value in values:
            items.append(value)
        return items

    def __len__(self) -> int:
        return len(self.roles)

    def append(self, value: Any) -> None:
        """Summarise one more item."""
        encoded = canonical(value)
        count = len(self.roles)
        self.digests += xxhash.xxh3_128_digest(encoded)
        self.size_ends.append((self.size_ends[-1] if count else 0) + len(encoded))
        self.breakpoint_ends.append((self.breakpoint_ends[-1] if count else 0) + _breakpoints(value, encoded))
        if isinstance(value, dict):
            # A Responses item without a role (function_call, function_call_output, ...) goes by its type.
            role = str(value.get("role", value.get("type", "")))
            if self.leading_dicts == count:
                self.leading_dicts += 1
        else:
            role = ""
        self.roles.append(_ROLES.get(role, role))

    def head(self, count: int) -> Items:
        """A copy of the first ``count`` items."""
        items = Items()
        items.digests = self.digests[: 16 * count]
        items.size_ends = self.size_ends[:count]
        items.breakpoint_ends = self.breakpoint_ends[:count]
        items.roles = self.roles[:count]
        items.leading_dicts = min(self.leading_dicts, count)
        return items

    def segment(self, index: int) -> tuple[bytes, int]:
        """``(digest, canonical size)`` of item ``index``."""
        start = self.size_ends[index - 1] if index else 0
        return bytes(self.digests[16 * index : 16 * index + 16]), self.size_ends[index] - start

    def facts(self, fact: Any = None) -> ValueFacts:
        """The list as one value: canonical size ``[`` + items joined by ``,`` + ``]``."""
        count = len(self.roles)
        size = 2 + self.size_ends[-1] + count - 1 if count else 2
        breakpoints = self.breakpoint_ends[-1] if count else 0
        digest = xxhash.xxh3_128_digest(self.digests, seed=LIST_SEED)
        return ValueFacts(digest, size, breakpoints, list, count > 0, count, fact)


def key_fact(key: str, value: Any) -> Any:
    """What an analysis reads from the top-level ``key`` (None for keys nothing reads)."""
    if key == "model":
        return f"{value}"
    if key == "tool_choice":
        return _tool_choice(value)
    if key in ("response_format", "output_format"):
        return _format_type(value)
    if key == "text":  # Responses: text.format.type
        return _format_type(value.get("format")) if isinstance(value, dict) else None
    if key == "input" and isinstance(value, str):  # Responses: a string is one user message
        encoded = canonical({"role": "user", "content": value})
        return xxhash.xxh3_128_digest(encoded), len(encoded)
    return None


def facts_of(key: str, value: Any) -> ValueFacts:
    """Summarise the top-level ``value`` of ``key``."""
    if isinstance(value, list):
        return Items.of(value).facts(key_fact(key, value))
    encoded = canonical(value)
    digest = xxhash.xxh3_128_digest(encoded)
    return ValueFacts(
        digest, len(encoded), _breakpoints(value, encoded), type(value), bool(value), -1, key_fact(key, value)
    )


def _format_type(value: Any) -> str | None:
    return str(value["type"]) if isinstance(value, dict) and isinstance(value.get("type"), str) else None


def _tool_choice(value: Any) -> str | None:
    """``auto`` / ``required`` / ``none``, or the name of a forced tool (both SDK shapes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        function = value.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        name = value.get("name")
        if isinstance(name, str):
            return name
        kind = value.get("type")
        return str(kind) if isinstance(kind, str) else None
    return None


def messages_of(request: Any) -> Any:
    """The messages of a parsed request: ``messages``, else a Responses ``input`` as messages."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    return _responses_input(request) if messages is None else messages


def _responses_input(request: dict[str, Any]) -> list[Any] | None:
    """A Responses API ``input`` as messages: a string is one user message, a list of items is kept.

    Embeddings bodies have an ``input`` too (strings or token ids, never items): they must stay
    without prefixes, so a list counts only when its items are objects, and a string only in a
    body without the embeddings-only fields (the SDK always sends ``encoding_format``).
    """
    value = request.get("input")
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return value
    if isinstance(value, str) and not EMBEDDINGS_FIELDS & request.keys():
        return [{"role": "user", "content": value}]
    return None


class Chain(NamedTuple):
    """The prefix boundaries of one request, kept so that the next request of its loop can extend them."""

    seed: bytes
    fixed: tuple[tuple[str, ValueFacts], ...]  # segments before the items: tools, system, a Responses input text
    items_key: str | None  # the list whose items follow: "messages", "input" or None
    boundaries: tuple[PrefixBoundary, ...]
    chars: array[int]  # canonical bytes up to each boundary
    json_text: str  # the boundaries as JSON objects, comma-separated
    json_ends: array[int]  # where each boundary's object ends in json_text


def boundary_json(boundary: PrefixBoundary) -> str:
    """One boundary exactly as ``json.dumps`` writes it in a compact list (the store's layout)."""
    role = _json_ascii_string(boundary.role)
    return f'{{"hash":"{boundary.hash}","tokens":{boundary.tokens},"index":{boundary.index},"role":{role}}}'


def assemble(
    provider: str,
    values: Mapping[str, ValueFacts],
    items: Mapping[str, Items],
    body: bytes | str,
    previous: Chain | None = None,
    reused: Mapping[str, int] | None = None,
) -> tuple[RequestFingerprints, Chain]:
    """Fingerprints from the summaries of a request's top-level values (and of its segment lists' items).

    ``previous`` is the chain of an earlier request and ``reused`` says, per segment list, how
    many leading items are byte-identical to that request's: its boundaries are kept as far as
    everything they cover is the same (provider, model, tools, system, items), and only the rest
    is chained. Without them the result is the same, computed from scratch.
    """
    request = xxhash.xxh3_128()
    for key in sorted(values):
        if key not in TRANSPORT_FIELDS:
            encoded = key.encode("utf-8", "surrogatepass")
            request.update(len(encoded).to_bytes(8, "little"))
            request.update(encoded)
            request.update(values[key].digest)
    breakpoints = sum(facts.breakpoints for facts in values.values())
    control = values.get("cache_control")
    if control is not None and control.truthy:
        breakpoints += 1
    tools = values.get("tools")
    tool_choice = values.get("tool_choice")
    chain = _chain(provider, values, items, previous, reused or {})
    fingerprints = RequestFingerprints(
        request=request.hexdigest(),
        prefixes=chain.boundaries,
        prefixes_json=f"[{chain.json_text}]",
        cache_breakpoints=breakpoints,
        tool_count=max(tools.length, 0) if tools is not None else 0,
        response_format=_response_format(values),
        tool_choice=tool_choice.fact if tool_choice is not None else None,
        body=body,
    )
    return fingerprints, chain


def _response_format(values: Mapping[str, ValueFacts]) -> str | None:
    """The requested output format: ``response_format.type``, ``output_format.type``, Responses ``text.format.type``."""
    for key in ("response_format", "output_format", "text"):
        facts = values.get(key)
        if facts is not None and facts.fact is not None:
            return str(facts.fact)
    return None


def _segment_source(
    values: Mapping[str, ValueFacts], items: Mapping[str, Items]
) -> tuple[str | None, ValueFacts | None]:
    """Where the message segments come from: a list's key, or a Responses ``input`` text (as :func:`messages_of`)."""
    messages = values.get("messages")
    if messages is not None and messages.kind is not type(None):
        return ("messages" if messages.kind is list else None), None
    source = values.get("input")
    if source is None:
        return None, None
    if source.kind is list:
        listed = items["input"]
        return ("input" if len(listed) and listed.leading_dicts == len(listed) else None), None
    if source.kind is str and not EMBEDDINGS_FIELDS & values.keys():
        return None, source
    return None, None


def _chain(
    provider: str,
    values: Mapping[str, ValueFacts],
    items: Mapping[str, Items],
    previous: Chain | None,
    reused: Mapping[str, int],
) -> Chain:
    model = values.get("model")
    seed = f"{provider}\x00{model.fact if model is not None else ''}".encode("utf-8", "surrogatepass")
    fixed: list[tuple[str, ValueFacts]] = []
    tools = values.get("tools")
    if tools is not None and tools.truthy:
        fixed.append(("tools", tools))
    for key in ("system", "instructions"):  # `system or instructions`
        system = values.get(key)
        if system is not None and system.truthy:
            fixed.append((key, system))
            break
    items_key, text_input = _segment_source(values, items)
    if text_input is not None:
        fixed.append(("input", text_input))
    listed = items[items_key] if items_key is not None else None
    total = len(fixed) + (len(listed) if listed is not None else 0)
    keep = _reusable(previous, seed, fixed, items_key, reused)

    if previous is not None and keep:
        boundaries = list(previous.boundaries[:keep])
        chars = previous.chars[:keep]
        json_ends = previous.json_ends[:keep]
        pieces = [previous.json_text[: json_ends[-1]]]
        running = bytes.fromhex(boundaries[-1].hash)
        used = chars[-1]
    else:
        boundaries, chars, json_ends, pieces = [], array("q"), array("q"), []
        running = xxhash.xxh3_64_digest(seed)
        used = 0
    written = json_ends[-1] if json_ends else 0
    for position in range(keep, total):
        if position < len(fixed):
            key, facts = fixed[position]
            if key == "input":
                index, role = 0, "user"
                digest, size = facts.fact
            elif key == "tools":
                index, role, digest, size = -2, "tools", facts.digest, facts.size
            else:
                index, role, digest, size = -1, "system", facts.digest, facts.size
        else:
            assert listed is not None
            index = position - len(fixed)
            role = listed.roles[index]
            digest, size = listed.segment(index)
        used += size
        running = xxhash.xxh3_64_digest(running + digest)
        boundary = PrefixBoundary(running.hex(), used // CHARS_PER_TOKEN, index, role)
        boundaries.append(boundary)
        chars.append(used)
        piece = boundary_json(boundary)
        if written:
            piece = "," + piece
        pieces.append(piece)
        written += len(piece)
        json_ends.append(written)
    return Chain(seed, tuple(fixed), items_key, tuple(boundaries), chars, "".join(pieces), json_ends)


def _reusable(
    previous: Chain | None,
    seed: bytes,
    fixed: list[tuple[str, ValueFacts]],
    items_key: str | None,
    reused: Mapping[str, int],
) -> int:
    """How many of ``previous``'s boundaries cover exactly the same segments (compared by identity of summaries)."""
    if previous is None or previous.seed != seed:
        return 0
    keep = 0
    for (key, facts), (old_key, old_facts) in zip(fixed, previous.fixed, strict=False):
        if key != old_key or facts is not old_facts:
            return keep
        keep += 1
    if len(fixed) != len(previous.fixed) or items_key is None or items_key != previous.items_key:
        return keep
    return keep + min(reused.get(items_key, 0), len(previous.boundaries) - keep)


def fingerprint_parsed(request: dict[str, Any], provider: str, body: bytes | str) -> RequestFingerprints:
    """Fingerprints of an already parsed request (``body`` is its text, for :attr:`RequestFingerprints.messages`)."""
    values: dict[str, ValueFacts] = {}
    items: dict[str, Items] = {}
    for key, value in request.items():
        if key in SEGMENT_LISTS and isinstance(value, list):
            listed = items[key] = Items.of(value)
            values[key] = listed.facts()
        else:
            values[key] = facts_of(key, value)
    return assemble(provider, values, items, body)[0]


def fingerprint_full(body: bytes | str, provider: str) -> RequestFingerprints | None:
    """The reference: parse the whole body and summarise every value; ``None`` when it is not a JSON object."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(request, dict):
        return None
    try:
        return fingerprint_parsed(request, provider, body)
    except RecursionError:  # nested deeper than json.dumps goes: no fingerprint rather than an error
        return None
