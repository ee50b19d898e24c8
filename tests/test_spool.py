"""Spool lines: orjson's bytes where it can, the standard library's where it cannot, never a half segment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentprof._spool import SpoolWriter, encode_row

_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)


def _stdlib(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


@given(st.dictionaries(st.text(), _values, max_size=12))
def test_a_line_reads_back_as_the_row_the_standard_library_would_write(row: dict[str, Any]) -> None:
    try:
        expected = _stdlib(row)
    except UnicodeEncodeError:  # a lone surrogate: neither writes it
        with pytest.raises(UnicodeEncodeError):
            encode_row(row)
        return
    line = encode_row(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == json.loads(expected)


def test_strings_ints_and_booleans_are_byte_identical_to_the_standard_library() -> None:
    row = {"kind": "model_call", "span_id": "00f0", "input_tokens": 1200, "stream": True, "error_type": None}
    row["task_name"] = "résumé ✓ 日本"
    assert encode_row(row) == _stdlib(row)


def test_what_orjson_refuses_takes_the_standard_path() -> None:
    huge = {"tokens": 2**70, 3: "int key"}
    assert encode_row(huge) == _stdlib(huge)  # type: ignore[arg-type]
    for not_finite in (float("nan"), float("inf")):
        assert json.loads(encode_row({"ttft_ms": not_finite})) == {"ttft_ms": None}  # not the invalid NaN


def test_a_row_that_cannot_be_written_leaves_no_segment(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    with pytest.raises(UnicodeEncodeError):
        writer.write_segment([{"kind": "task", "span_id": "1"}, {"name": "lone \ud800 surrogate"}])
    assert list(tmp_path.iterdir()) == []
    assert writer.write_segment([{"kind": "task", "span_id": "2"}]) == 1
    (segment,) = tmp_path.glob("seg-*.jsonl")
    assert segment.read_bytes() == b'{"kind":"task","span_id":"2"}\n'
