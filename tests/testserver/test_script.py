"""Directive parsing and reply planning, without HTTP."""

from __future__ import annotations

import pytest

from agentprof.testserver import ScriptedReply
from agentprof.testserver._script import ScriptError, default_reply_text, parse_directives, plan_reply, split_chunks


def test_no_directives() -> None:
    assert parse_directives("just a question, with [brackets] and [[Wiki Link]]") is None


def test_all_directives() -> None:
    text = (
        "[[reply:Hi: there]] [[status:429]] [[reasoning:5]] [[output_tokens:7]] [[chunks:2]] [[delay_ms:3]] "
        '[[chunk_delay_ms:4]] [[retry_after_ms:10]] [[stream_error]] [[tool:a.b-c {"x": "]]"}]] [[tool:d]]'
    )
    assert parse_directives(text) == ScriptedReply(
        text="Hi: there",
        status=429,
        reasoning_tokens=5,
        output_tokens=7,
        chunks=2,
        delay_ms=3,
        chunk_delay_ms=4,
        retry_after_ms=10,
        stream_error=True,
        tool_calls=[("a.b-c", {"x": "]]"}), ("d", {})],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[staus:500]]", "unknown directive"),
        ("[[status:abc]]", "needs an integer"),
        ("[[reply:unclosed", "not closed"),
        ("[[tool:x {bad json}]]", "not JSON"),
        ("[[tool:x [1]]]", "JSON object"),
        ("[[tool:x {} trailing]]", "not closed"),
        ("[[oops]]", "unknown directive"),
    ],
)
def test_bad_directives(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_directives(text)


def test_default_reply_is_a_stable_hash() -> None:
    assert default_reply_text({"a": 1, "b": 2}) == default_reply_text({"b": 2, "a": 1})
    assert default_reply_text({"a": 1}) != default_reply_text({"a": 2})
    assert len(default_reply_text({})) == len("Acknowledged: 01234567.")


def test_plan_counts_text_tools_and_reasoning() -> None:
    plan = plan_reply(
        ScriptedReply(text="abcdefghi", tool_calls=[("f", {"k": 1})], reasoning_tokens=3),
        default_text="unused",
        max_tokens=2,  # never cuts tool calls
        tool_id_prefix="call_",
        sequence=7,
    )
    assert plan.text == "abcdefghi"
    assert [(c.id, c.name, c.arguments_json) for c in plan.tool_calls] == [("call_00000700", "f", '{"k": 1}')]
    assert plan.output_tokens == -(-(9 + 1 + 8) // 4)
    assert plan.total_output_tokens == plan.output_tokens + 3
    assert not plan.truncated


def test_plan_truncates_to_max_tokens() -> None:
    plan = plan_reply(
        ScriptedReply(text="x" * 40, reasoning_tokens=2), default_text="", max_tokens=5, tool_id_prefix="", sequence=1
    )
    assert (plan.text, plan.output_tokens, plan.reasoning_tokens, plan.truncated) == ("x" * 12, 3, 2, True)


def test_split_chunks() -> None:
    assert split_chunks("abcdefg", 3) == ["abc", "de", "fg"]
    assert split_chunks("ab", 5) == ["a", "b"]
    assert split_chunks("", 3) == []
