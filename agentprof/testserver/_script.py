"""Scripting what the test server answers.

Tests must control the reply exactly and deterministically, through real SDKs that
send nothing but the conversation. So the conversation itself carries the script:
directives in the text of the latest user turn (every non-assistant message after the
last assistant message, which includes tool results) override the default reply.

    ``[[reply:TEXT]]``              reply with exactly TEXT (anything but ``]]``)
    ``[[status:429]]``              answer with that HTTP error status instead
    ``[[tool:NAME {"a": 1}]]``      call tool NAME with these JSON arguments (repeatable)
    ``[[reasoning:N]]``             add N reasoning tokens to the output tokens
    ``[[output_tokens:N]]``         report N visible output tokens, whatever the text
    ``[[chunks:N]]``                split streamed content into N chunks
    ``[[delay_ms:N]]``              wait N ms before answering (time to first token)
    ``[[chunk_delay_ms:N]]``        wait N ms between streamed events
    ``[[retry_after_ms:N]]``        send ``retry-after-ms: N`` with an error status
    ``[[stream_error]]``            drop the connection halfway through a stream

An unknown ``[[name:...]]`` directive is a 400, so a typo never passes silently.
Without directives the reply is ``"Acknowledged: <8 hex>."``, derived from a hash of
the prompt, so identical requests get identical answers. :meth:`TestServer.enqueue`
overrides all of this with :class:`ScriptedReply` objects, first in, first out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentprof.testserver._tokens import canonical_json, tokens_for_chars

_DIRECTIVE_START = re.compile(r"\[\[([a-z_]+)(:|\]\])")
_INT_DIRECTIVES = {
    "status": "status",
    "reasoning": "reasoning_tokens",
    "output_tokens": "output_tokens",
    "chunks": "chunks",
    "delay_ms": "delay_ms",
    "chunk_delay_ms": "chunk_delay_ms",
    "retry_after_ms": "retry_after_ms",
}
DEFAULT_CHUNKS = 3


class ScriptError(ValueError):
    """A directive is malformed or unknown (answered with a 400 in the provider's format)."""


@dataclass(frozen=True)
class ScriptedReply:
    """What the server should answer to one request.

    Attributes:
        text: Exact reply text; None means the default reply (or no text when calling tools).
        tool_calls: ``(name, arguments)`` pairs to answer with tool calls.
        status: HTTP status; anything but 200 answers with the provider's error body.
        error_message: Message of the error body.
        reasoning_tokens: Reasoning tokens added to the output tokens.
        output_tokens: Visible output tokens to report instead of counting the text.
        chunks: Number of content chunks when streaming (default 3).
        delay_ms: Wait before answering.
        chunk_delay_ms: Wait between streamed events.
        retry_after_ms: Value of a ``retry-after-ms`` header on errors.
        stream_error: Drop the connection halfway through a stream.
    """

    text: str | None = None
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    status: int = 200
    error_message: str | None = None
    reasoning_tokens: int = 0
    output_tokens: int | None = None
    chunks: int | None = None
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    retry_after_ms: int | None = None
    stream_error: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple((str(n), dict(a)) for n, a in self.tool_calls))


def parse_directives(text: str) -> ScriptedReply | None:
    """Read the directives in ``text``; None when there are none.

    Raises:
        ScriptError: An unknown directive or a malformed value.
    """
    values: dict[str, Any] = {}
    tool_calls: list[tuple[str, Mapping[str, Any]]] = []
    position = 0
    found = False
    while (match := _DIRECTIVE_START.search(text, position)) is not None:
        name, separator = match.group(1), match.group(2)
        found = True
        if separator == "]]":
            if name != "stream_error":
                raise ScriptError(f"unknown directive [[{name}]]")
            values["stream_error"] = True
            position = match.end()
            continue
        if name == "tool":
            call, position = _parse_tool(text, match.end())
            tool_calls.append(call)
            continue
        end = text.find("]]", match.end())
        if end < 0:
            raise ScriptError(f"directive [[{name}: is not closed with ]]")
        argument, position = text[match.end() : end], end + 2
        if name == "reply":
            values["text"] = argument
        elif name in _INT_DIRECTIVES:
            try:
                values[_INT_DIRECTIVES[name]] = int(argument.strip())
            except ValueError:
                raise ScriptError(f"directive [[{name}:...]] needs an integer, got {argument!r}") from None
        else:
            raise ScriptError(f"unknown directive [[{name}:...]]")
    if not found:
        return None
    return ScriptedReply(tool_calls=tool_calls, **values)


def _parse_tool(text: str, start: int) -> tuple[tuple[str, Mapping[str, Any]], int]:
    name_match = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*").match(text, start)
    if name_match is None:
        raise ScriptError("directive [[tool:NAME {json}]] needs a tool name")
    position = name_match.end()
    arguments: Any = {}
    if not text.startswith("]]", position):
        try:
            arguments, position = json.JSONDecoder().raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ScriptError(f"tool arguments of [[tool:{name_match.group(1)} ...]] are not JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise ScriptError("tool arguments must be a JSON object")
        position = len(text) - len(text[position:].lstrip())
    if not text.startswith("]]", position):
        raise ScriptError(f"directive [[tool:{name_match.group(1)} ...]] is not closed with ]]")
    return (name_match.group(1), arguments), position + 2


def default_reply_text(fingerprint_source: Any) -> str:
    """The reply when nothing is scripted: stable for identical prompts, different otherwise."""
    digest = hashlib.blake2b(canonical_json(fingerprint_source).encode(), digest_size=4).hexdigest()
    return f"Acknowledged: {digest}."


@dataclass(frozen=True)
class PlannedToolCall:
    """A tool call the reply will contain, with its provider-style id and JSON arguments."""

    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class PlannedReply:
    """A resolved successful reply: final text, tool calls and token counts.

    Attributes:
        text: The visible text (after any truncation by max_tokens).
        tool_calls: Tool calls to return.
        output_tokens: Visible output tokens.
        reasoning_tokens: Reasoning tokens (billed as output too).
        truncated: True when max_tokens cut the reply (finish_reason "length" / "max_tokens").
        chunks: Content chunks for streaming.
    """

    text: str
    tool_calls: tuple[PlannedToolCall, ...] = field(default=())
    output_tokens: int = 1
    reasoning_tokens: int = 0
    truncated: bool = False
    chunks: int = DEFAULT_CHUNKS

    @property
    def total_output_tokens(self) -> int:
        """Output tokens as billed: visible plus reasoning."""
        return self.output_tokens + self.reasoning_tokens


def plan_reply(
    script: ScriptedReply,
    *,
    default_text: str,
    max_tokens: int | None,
    tool_id_prefix: str,
    sequence: int,
) -> PlannedReply:
    """Resolve ``script`` into the exact reply and its token counts.

    ``max_tokens`` caps visible plus reasoning tokens of a text reply (the text is cut to fit,
    four characters per token); tool calls are never cut, as a half JSON argument helps no test.
    """
    tool_calls = tuple(
        PlannedToolCall(f"{tool_id_prefix}{sequence:06d}{i:02d}", name, json.dumps(arguments))
        for i, (name, arguments) in enumerate(script.tool_calls)
    )
    text = script.text if script.text is not None else ("" if tool_calls else default_text)
    counted_chars = len(text) + sum(len(call.name) + len(call.arguments_json) for call in tool_calls)
    visible = script.output_tokens if script.output_tokens is not None else max(1, tokens_for_chars(counted_chars))
    reasoning = script.reasoning_tokens
    truncated = False
    if max_tokens is not None and not tool_calls and visible + reasoning > max_tokens:
        truncated = True
        reasoning = min(reasoning, max_tokens)
        visible = max_tokens - reasoning
        text = text[: visible * 4]
    return PlannedReply(
        text=text,
        tool_calls=tool_calls,
        output_tokens=visible,
        reasoning_tokens=reasoning,
        truncated=truncated,
        chunks=max(1, script.chunks if script.chunks is not None else DEFAULT_CHUNKS),
    )


def split_chunks(text: str, chunks: int) -> list[str]:
    """Split ``text`` into ``chunks`` contiguous pieces of near-equal length (fewer if it is short)."""
    if not text:
        return []
    count = min(chunks, len(text))
    size, extra = divmod(len(text), count)
    pieces: list[str] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces
