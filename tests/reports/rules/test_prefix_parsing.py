"""Prefix boundaries as the rules read them: incremental along loops, exact for any JSON layout."""

from __future__ import annotations

import json

import pytest

from agentprof.reports.rules import _prefixes
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


def compact(prefixes: list[tuple[str, int, int, str]]) -> str:
    return json.dumps(
        [{"hash": h, "tokens": n, "index": i, "role": r} for h, n, i, r in prefixes], separators=(",", ":")
    )


def full_parse(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """What a parse from scratch gives (the incremental paths must give the same)."""
    clear_parse_caches()
    return _prefixes.parse_boundaries(text)


@pytest.mark.parametrize("new", [1, 2, 3])
def test_a_list_extending_one_parsed_before_by_new_boundaries_parses_like_a_full_parse(new: int) -> None:
    head, longer = compact(boundaries(5)), compact(boundaries(5 + new))
    expected = full_parse(longer)
    clear_parse_caches()
    _prefixes.parse_boundaries(head)
    assert _prefixes.known_boundaries(longer) is None
    assert _prefixes.parse_unseen(longer) == expected
    assert _prefixes.known_boundaries(longer) == expected


def test_new_boundaries_in_another_layout_after_a_known_head_are_parsed_by_json() -> None:
    head = compact(boundaries(3))
    spaced_tail = head[:-1] + ',{"hash":"h03","tokens":2800,"role":"user","index":2}]'  # other key order
    clear_parse_caches()
    _prefixes.parse_boundaries(head)
    assert _prefixes.parse_boundaries(spaced_tail) == (("h00", "h01", "h02", "h03"), (700, 1400, 2100, 2800))


def test_an_earlier_list_that_differs_before_the_new_boundary_is_not_reused() -> None:
    clear_parse_caches()
    _prefixes.parse_boundaries(compact([("a", 100, -1, "system"), ("b", 200, 0, "user")]))
    other = compact([("a", 100, -1, "system"), ("b", 250, 0, "user"), ("c", 300, 1, "assistant")])
    assert _prefixes.parse_boundaries(other) == (("a", "b", "c"), (100, 250, 300))


def test_lists_of_one_and_two_boundaries_and_odd_texts() -> None:
    clear_parse_caches()
    assert _prefixes.parse_boundaries(compact([("a", 5, -1, "system")])) == (("a",), (5,))
    assert _prefixes.parse_boundaries(compact([("a", 5, -1, "system"), ("b", 9, 0, "user")])) == (("a", "b"), (5, 9))
    assert _prefixes.parse_boundaries("[]") == ((), ())
    floats = '[{"hash":"a","tokens":5.0,"index":-1,"role":"system"},{"hash":"b","tokens":9,"index":0,"role":"user"}]'
    assert _prefixes.parse_boundaries(floats) == (("a", "b"), (5, 9))  # as the recorder-layout reading always did


def test_the_cache_is_emptied_when_full_and_results_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prefixes, "_LIMIT", 3)
    clear_parse_caches()
    parsed = [_prefixes.parse_boundaries(compact(boundaries(n))) for n in range(1, 9)]
    assert len(_prefixes._BOUNDARIES) <= 3
    assert parsed == [(tuple(b[0] for b in boundaries(n)), tuple(b[1] for b in boundaries(n))) for n in range(1, 9)]
