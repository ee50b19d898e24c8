"""Prefix boundaries as the rules read them: incremental along loops, exact for any JSON layout."""

from __future__ import annotations

import json

import pytest

from agentprof.reports.rules._base import clear_parse_caches
from tests.reports.rules._call_factory import call


def boundaries(n: int) -> list[tuple[str, int, int, str]]:
    roles = ("user", "assistant")
    return [(f"h{i:02d}", 700 * (i + 1), i - 1, "system" if i == 0 else roles[i % 2]) for i in range(n)]


@pytest.mark.parametrize("step", [1, 2, 3])
def test_a_growing_loop_parses_to_the_same_boundaries_as_a_full_parse(step: int) -> None:
    clear_parse_caches()
    for n in range(1, 14, step):
        record = call(f"c{n}", prefixes=boundaries(n))
        expected = boundaries(n)
        assert record.boundaries == (tuple(b[0] for b in expected), tuple(b[1] for b in expected))
        assert record.prefixes == tuple(expected)
        assert record.first_segment == (-1, "system")


def test_another_json_layout_is_parsed_by_json() -> None:
    clear_parse_caches()
    spaced = json.dumps([{"role": "user", "index": 0, "tokens": 42, "hash": "abc"}])  # other key order, spaces
    record = call("c1", prefix_fingerprints_json=spaced)
    assert record.boundaries == (("abc",), (42,))
    assert record.prefixes == (("abc", 42, 0, "user"),)
    assert record.first_segment == (0, "user")


def test_no_prefixes() -> None:
    for text in (None, "[]"):
        record = call("c1", prefix_fingerprints_json=text)
        assert record.boundaries == ((), ()) and record.prefixes == ()
