"""Incremental fingerprinting gives exactly what a fresh full parse gives, call after call of an agent loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentprof import _fingerprint_walk
from agentprof._fingerprint import fingerprint_request, prefixes_json
from agentprof._fingerprint_facts import RequestFingerprints, canonical, fingerprint_full
from agentprof._fingerprint_walk import IncrementalFingerprinter

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = "You are a careful agent. Read files before editing them — résumé ✓. " * 40

# JSON values as the SDKs send them: unicode text (astral planes and escapes included), numbers, nesting.
texts = st.text(max_size=40)
scalars = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False) | texts
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4))
roles = st.sampled_from(["user", "assistant", "tool", "system", "developer"])
messages = st.fixed_dictionaries({"role": roles, "content": texts | values}, optional={"name": texts, "extra": values})
dumpers: list[Callable[[Any], bytes]] = [
    lambda body: json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),  # the SDKs
    lambda body: json.dumps(body).encode(),  # stdlib defaults: spaces, \\u escapes
    lambda body: json.dumps(body, indent=2, ensure_ascii=False).encode(),
    lambda body: json.dumps(body, sort_keys=True).encode(),
]


def same(incremental: RequestFingerprints | None, body: bytes, provider: str) -> None:
    """``incremental`` is exactly what a full parse of ``body`` gives."""
    full = fingerprint_full(body, provider)
    assert incremental == full
    if full is not None and incremental is not None:
        assert incremental.prefixes_json == full.prefixes_json == prefixes_json(full.prefixes)
        assert incremental.messages == full.messages


def loop_bodies(
    history: list[Any], build: Callable[[list[Any]], dict[str, Any]], dump: Callable[[Any], bytes]
) -> Iterator[bytes]:
    for count in range(len(history) + 1):
        yield dump(build(history[:count]))


@dataclass
class Probe:
    """What the walk did: offsets of the values it parsed (the part that costs), and full-parse fallbacks."""

    scans: list[int] = field(default_factory=list)
    fallbacks: int = 0
    comparisons: int = 0  # common-prefix searches: one per remembered body tried, one per list found moved

    def reset(self) -> None:
        self.scans.clear()
        self.comparisons = 0


@contextmanager
def probing() -> Iterator[Probe]:
    probe = Probe()
    scan_once, full = _fingerprint_walk._scan_once, _fingerprint_walk.fingerprint_full
    common_prefix = _fingerprint_walk.common_prefix

    def counting_prefix(new: bytes, new_start: int, old: bytes, old_start: int) -> int:
        probe.comparisons += 1
        return common_prefix(new, new_start, old, old_start)

    def counting_scan(text: str, at: int) -> tuple[Any, int]:
        probe.scans.append(at)
        return scan_once(text, at)

    def counting_full(body: bytes, provider: str) -> RequestFingerprints | None:
        probe.fallbacks += 1
        return full(body, provider)

    with (
        mock.patch.object(_fingerprint_walk, "_scan_once", counting_scan),
        mock.patch.object(_fingerprint_walk, "fingerprint_full", counting_full),
        mock.patch.object(_fingerprint_walk, "common_prefix", counting_prefix),
    ):
        yield probe


# --- growing loops, in the three request shapes ------------------------------------------------------
@SETTINGS
@given(history=st.lists(messages, max_size=8), dump=st.sampled_from(dumpers), model_first=st.booleans())
def test_a_growing_chat_loop_matches_the_full_parse_at_every_call(
    history: list[dict[str, Any]], dump: Callable[[Any], bytes], model_first: bool
) -> None:
    tools = [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]

    def build(sent: list[Any]) -> dict[str, Any]:
        body = {"messages": [{"role": "system", "content": RULES}, *sent], "tools": tools, "temperature": 0}
        return {"model": "gpt-4.1", **body} if model_first else {**body, "model": "gpt-4.1"}

    fingerprinter = IncrementalFingerprinter()
    with probing() as probe:
        for count, body in enumerate(loop_bodies(history, build, dump)):
            probe.reset()
            same(fingerprinter.fingerprint(body, "openai"), body, "openai")
            if count:  # the new message and `temperature` (a number: parsed); the rest is reused
                assert (len(probe.scans), probe.comparisons) == (2, 1)
        assert probe.fallbacks == 0


@SETTINGS
@given(turns=st.lists(texts, min_size=1, max_size=6), dump=st.sampled_from(dumpers), moving_breakpoint=st.booleans())
def test_a_growing_anthropic_loop_with_system_tools_and_cache_control_matches(
    turns: list[str], dump: Callable[[Any], bytes], moving_breakpoint: bool
) -> None:
    system = [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": "read", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]
    fingerprinter = IncrementalFingerprinter()
    history: list[dict[str, Any]] = []
    with probing() as probe:
        for number, text in enumerate(turns):
            result_block = {"type": "tool_result", "tool_use_id": f"t{number}", "content": text}
            history.append({"role": "user", "content": [result_block]})
            if moving_breakpoint:  # Claude Code moves the breakpoint to the newest block on every call
                for message in history:
                    message["content"][-1].pop("cache_control", None)
                result_block["cache_control"] = {"type": "ephemeral"}
            request = {"max_tokens": 1024, "messages": history, "model": "claude-4", "system": system, "tools": tools}
            body = dump(request)
            probe.reset()
            result = fingerprinter.fingerprint(body, "anthropic")
            same(result, body, "anthropic")
            assert result is not None and result.cache_breakpoints == 2 + int(moving_breakpoint)
            if number:  # the new messages (and the one that lost its breakpoint); system and tools compared
                assert (len(probe.scans), probe.comparisons) == (2 + int(moving_breakpoint), 1)
            history.append({"role": "assistant", "content": [{"type": "text", "text": f"step {number} ✓"}]})
        assert probe.fallbacks == 0


@SETTINGS
@given(outputs=st.lists(texts, max_size=6), dump=st.sampled_from(dumpers))
def test_a_growing_responses_loop_of_input_items_matches(outputs: list[str], dump: Callable[[Any], bytes]) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "weather in Lisbon?"}]
    for number, output in enumerate(outputs):
        items.append({"type": "function_call", "call_id": f"c{number}", "name": "weather", "arguments": "{}"})
        items.append({"type": "function_call_output", "call_id": f"c{number}", "output": output})
    fingerprinter = IncrementalFingerprinter()
    with probing() as probe:
        for count in range(len(items) + 1):
            request = {"model": "gpt-4.1", "input": items[:count] or "hello", "instructions": RULES, "tools": []}
            body = dump(request)
            probe.reset()
            same(fingerprinter.fingerprint(body, "openai"), body, "openai")
            if count:  # one new item; instructions and tools compared as bytes
                assert (len(probe.scans), probe.comparisons) == (1, 1)
        assert probe.fallbacks == 0


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b'{"max_tokens":1024,"input":[1,{"a":2}]}', b'{"max_tokens":10240,"input":[1,{"a":2}]}'),
        (b'{"model":"m","input":[1,2]}', b'{"model":"m","input":[1,23]}'),
        (b'{"model":"m","input":[1,2]}', b'{"model":"m","input":[1,2.5,3]}'),
        (b'{"model":"m","input":[1,true]}', b'{"model":"m","input":[1,true ]}'),
    ],
)
def test_a_number_that_grows_at_the_end_of_the_common_prefix_is_read_again(before: bytes, after: bytes) -> None:
    fingerprinter = IncrementalFingerprinter()
    with probing() as probe:
        same(fingerprinter.fingerprint(before, "openai"), before, "openai")
        same(fingerprinter.fingerprint(after, "openai"), after, "openai")
        assert probe.fallbacks == 0


# --- bodies that differ early, in order or in encoding ----------------------------------------------
@SETTINGS
@given(history=st.lists(messages, min_size=1, max_size=6), dump=st.sampled_from(dumpers))
def test_a_timestamp_in_the_system_prompt_changes_every_prefix_and_still_matches(
    history: list[dict[str, Any]], dump: Callable[[Any], bytes]
) -> None:
    fingerprinter = IncrementalFingerprinter()
    previous: RequestFingerprints | None = None
    for count in range(1, len(history) + 1):
        system = f"{RULES} Current time: 2026-12-01T10:{count:02d}:00Z"
        for provider, request in (
            ("openai", {"model": "gpt-4.1", "messages": [{"role": "system", "content": system}, *history[:count]]}),
            ("anthropic", {"max_tokens": 9, "messages": history[:count], "model": "claude", "system": system}),
        ):
            body = dump(request)
            result = fingerprinter.fingerprint(body, provider)
            same(result, body, provider)
        assert result is not None
        if previous is not None:  # the system prompt is the first segment: no prefix survives a new timestamp
            assert result.prefixes[0].hash != previous.prefixes[0].hash
            assert not {p.hash for p in result.prefixes} & {p.hash for p in previous.prefixes}
        previous = result


EDITS = ["append", "change", "drop", "scalar", "model", "tools", "system", "stream", "order"]


@SETTINGS
@given(
    history=st.lists(messages, min_size=2, max_size=6),
    edits=st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 99)), min_size=1, max_size=8),
    extra=messages,
    key=st.sampled_from(["messages", "input"]),
    dump=st.sampled_from(dumpers),
)
def test_any_sequence_of_edits_between_calls_matches(
    history: list[dict[str, Any]],
    edits: list[tuple[str, int]],
    extra: dict[str, Any],
    key: str,
    dump: Callable[[Any], bytes],
) -> None:
    """Appends, an early item changed, a summarised (shortened) history, model/tools/system switched, key orders."""
    request: dict[str, Any] = {"model": "gpt-4.1", key: list(history), "tools": [{"type": "function"}]}
    fingerprinter = IncrementalFingerprinter()
    for edit, at in edits:
        listed = request[key]
        if edit == "append":
            listed.append(extra)
        elif edit == "scalar":  # a Responses input with a non-object item is no list of messages
            listed.insert(at % (len(listed) + 1), f"item {at}")
        elif edit == "system":
            request["system" if at % 2 else "instructions"] = f"{RULES} {at}" if at % 3 else ""
        elif edit == "change" and listed:
            listed[at % len(listed)] = {"role": "user", "content": f"changed {at}"}
        elif edit == "drop" and listed:
            del listed[at % len(listed) :]
        elif edit == "model":
            request["model"] = f"gpt-{at}"
        elif edit == "tools":
            request["tools"] = [{"type": "function", "function": {"name": f"t{at}"}}] if at % 2 else []
        elif edit == "stream":
            request["stream"] = bool(at % 2)
        else:
            request = dict(reversed(list(request.items())))
        body = dump(request)
        same(fingerprinter.fingerprint(body, "openai"), body, "openai")


@SETTINGS
@given(history=st.lists(messages, min_size=1, max_size=5), position=st.integers(0, 10**6), data=st.binary(max_size=6))
def test_a_remembered_body_corrupted_anywhere_matches(
    history: list[dict[str, Any]], position: int, data: bytes
) -> None:
    """Bytes replaced, inserted or the body cut short right after a remembered body: never a wrong reuse."""
    request = {"max_tokens": 10, "messages": history, "model": "claude", "system": RULES}
    body = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()
    at = position % (len(body) + 1)
    for broken in (body[:at] + data + body[at + len(data) :], body[:at] + data + body[at:], body[:at]):
        fingerprinter = IncrementalFingerprinter()
        same(fingerprinter.fingerprint(body, "anthropic"), body, "anthropic")
        same(fingerprinter.fingerprint(broken, "anthropic"), broken, "anthropic")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'"text"',
        b"{",
        b'{"model":"m","messages":[]} trailing',
        b'{"model":"m","messages":[{"role":"user"},]}',
        b'{"model":"m","model":"n","messages":[]}',  # json.loads keeps the last repeated key
        b'{"messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}',
        '\ufeff{"model":"m"}'.encode(),  # a UTF-8 BOM
        '{"model":"m","messages":[]}'.encode("utf-16"),
        b'{"model":"m","messages":[{"role":"user","content":"\\ud83d"}]}',  # a lone surrogate, escaped
        b'{"model":"m","messages":[{"role":"user","content":"\xed\xa0\xbd"}]}',  # a lone surrogate, raw
        b'{"model":"m","messages":[{"role":"user","content":"\xff"}]}',  # not UTF-8
        b'{"model":"m","temperature":NaN,"top_p":Infinity,"messages":[]}',
        b' \n{ "model" : "m" , "messages" : [ ] } \n',
        b'{"model":1e400,"messages":[1,2.50,-0,true,null,"x"]}',
        b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested deeper than the recursion limit
    ],
)
def test_bodies_the_walk_cannot_or_may_not_read_match_the_full_parse(body: bytes) -> None:
    fingerprinter = IncrementalFingerprinter()
    for _ in range(2):  # cold, then with itself remembered
        result = fingerprinter.fingerprint(body, "openai")
        full = fingerprint_full(body, "openai")
        assert result == full
        if full is not None and result is not None:
            assert json.dumps(result.messages) == json.dumps(full.messages)  # NaN != NaN, their JSON is equal


def test_key_order_spacing_and_escapes_change_nothing() -> None:
    request = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "naïve café ✓ 𝄞"}], "temperature": 0.5}
    results = {
        dump(dict(reversed(list(request.items()))) if order else request) for dump in dumpers for order in (False, True)
    }
    fingerprints = {fingerprint_full(body, "openai") for body in results}
    assert len(results) > 4 and len(fingerprints) == 1


# --- what the rules rely on ---------------------------------------------------------------------------
def test_transport_fields_do_not_change_the_request_fingerprint_and_everything_else_does() -> None:
    base = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    plain = fingerprint_request(json.dumps(base).encode(), "openai")
    transport = {"stream": True, "stream_options": {"include_usage": True}, "metadata": {"a": "b"}, "user": "u"}
    moved = fingerprint_request(
        json.dumps({**base, **transport, "store": True, "service_tier": "flex"}).encode(), "openai"
    )
    assert plain is not None and moved is not None
    assert plain.request == moved.request and plain.prefixes == moved.prefixes
    for change in ({"temperature": 1}, {"model": "gpt-5"}, {"messages": [{"role": "user", "content": "ho"}]}, {"n": 2}):
        other = fingerprint_request(json.dumps({**base, **change}).encode(), "openai")
        assert other is not None and other.request != plain.request, change
    as_list = fingerprint_request(json.dumps({**base, "stop": ["a", "b"]}).encode(), "openai")
    as_text = fingerprint_request(json.dumps({**base, "stop": "ab"}).encode(), "openai")
    assert as_list is not None and as_text is not None and as_list.request != as_text.request


def test_prefix_hashes_follow_provider_model_and_every_segment_before_them() -> None:
    def prefixes(provider: str, model: str, contents: list[str]) -> list[str]:
        request = {"model": model, "system": RULES, "messages": [{"role": "user", "content": c} for c in contents]}
        result = fingerprint_request(json.dumps(request).encode(), provider)
        assert result is not None
        return [p.hash for p in result.prefixes]

    base = prefixes("anthropic", "claude", ["a", "b", "c"])
    assert prefixes("anthropic", "claude", ["a", "b", "x"])[:3] == base[:3]
    assert prefixes("anthropic", "claude", ["a", "x", "c"])[2:] != base[2:]
    assert prefixes("anthropic", "claude", ["a", "x", "c"])[:2] == base[:2]
    assert not set(prefixes("anthropic", "claude-2", ["a", "b", "c"])) & set(base)
    assert not set(prefixes("openai", "claude", ["a", "b", "c"])) & set(base)
    assert len(set(base)) == len(base)


def test_token_positions_are_canonical_bytes_over_four_and_grow() -> None:
    tools = [{"name": "read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    history = [
        {"role": "user", "content": "déjà vu " * 50},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ]
    request = {"model": "claude", "tools": tools, "system": RULES, "messages": history}
    result = fingerprint_request(json.dumps(request, indent=1).encode(), "anthropic")
    assert result is not None
    assert [(p.index, p.role) for p in result.prefixes] == [
        (-2, "tools"),
        (-1, "system"),
        (0, "user"),
        (1, "assistant"),
    ]
    sizes = [len(canonical(segment)) for segment in (tools, RULES, *history)]
    assert [p.tokens for p in result.prefixes] == [sum(sizes[: n + 1]) // 4 for n in range(len(sizes))]
    assert result.tool_count == 1


def test_the_stored_prefix_json_keeps_its_layout() -> None:
    request = {"model": "m", "messages": [{"role": 'rôle "quoted"', "content": "x"}, {"type": "function_call"}]}
    result = fingerprint_request(json.dumps(request).encode(), "openai")
    assert result is not None
    expected = [{"hash": p.hash, "tokens": p.tokens, "index": p.index, "role": p.role} for p in result.prefixes]
    assert result.prefixes_json == json.dumps(expected, separators=(",", ":"))
    assert [p.role for p in result.prefixes] == ['rôle "quoted"', "function_call"]


# --- the cache: bounded, evicting, shared by loops running at once -------------------------------------
def test_loops_running_at_once_each_extend_their_own_remembered_body() -> None:
    fingerprinter = IncrementalFingerprinter()
    histories: list[list[dict[str, Any]]] = [[{"role": "user", "content": f"task {n}"}] for n in range(4)]
    with probing() as probe:
        for step in range(6):
            for number, history in enumerate(histories):  # the closest body is not the latest one
                history.append({"role": "tool", "content": f"result {step} of loop {number}"})
                body = json.dumps({"model": "m", "messages": [{"role": "system", "content": RULES}, *history]}).encode()
                probe.reset()
                same(fingerprinter.fingerprint(body, "openai"), body, "openai")
                if step:
                    assert len(probe.scans) == 1
        assert probe.fallbacks == 0
    assert len(fingerprinter.remembered()) == 4


def test_loops_running_at_once_through_a_full_evicting_cache_still_match() -> None:
    fingerprinter = IncrementalFingerprinter(max_entries=2, max_bytes=64 << 10)
    histories: list[list[dict[str, Any]]] = [[{"role": "user", "content": f"task {n}"}] for n in range(4)]
    for step in range(8):
        for number, history in enumerate(histories):  # four loops interleaved, two entries remembered
            history.append({"role": "tool", "content": f"result {step} of loop {number} " * (40 * step + 1)})
            body = json.dumps(
                {"model": "gpt-4.1", "messages": [{"role": "system", "content": RULES}, *history]}
            ).encode()
            same(fingerprinter.fingerprint(body, "openai"), body, "openai")
            remembered = fingerprinter.remembered()
            assert len(remembered) <= 2 and sum(cost for _, cost in remembered) <= 64 << 10


def test_a_body_larger_than_the_budget_is_fingerprinted_but_not_remembered() -> None:
    fingerprinter = IncrementalFingerprinter(max_bytes=32 << 10)
    small = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    large = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * (64 << 10)}]}).encode()
    same(fingerprinter.fingerprint(small, "openai"), small, "openai")
    same(fingerprinter.fingerprint(large, "openai"), large, "openai")
    assert [size for size, _ in fingerprinter.remembered()] == [len(small)]


def test_one_loop_keeps_one_entry() -> None:
    fingerprinter = IncrementalFingerprinter()
    history = [{"role": "user", "content": "go"}]
    for step in range(20):
        history.append({"role": "assistant", "content": f"step {step}"})
        body = json.dumps({"model": "m", "messages": history}).encode()
        same(fingerprinter.fingerprint(body, "openai"), body, "openai")
    assert len(fingerprinter.remembered()) == 1


def test_a_bug_in_the_incremental_path_is_reported_and_the_full_parse_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: IncrementalFingerprinter, body: bytes, provider: str) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(IncrementalFingerprinter, "fingerprint", broken)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with pytest.raises(KeyError):  # under pytest internal errors surface
        fingerprint_request(body, "openai")
    monkeypatch.setenv("AGENTPROF_RAISE_INTERNAL_ERRORS", "0")
    assert fingerprint_request(body, "openai") == fingerprint_full(body, "openai")
