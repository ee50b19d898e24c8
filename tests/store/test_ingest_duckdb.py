"""The DuckDB bulk loader: duplicates, segment formats and failures it must tolerate or isolate."""

from __future__ import annotations

import json
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from agentprof._config import StoreLocation, resolve_store_location
from agentprof.store import IngestResult, open_store, schema
from agentprof.store._ingest_duckdb import DuckDBLoader

from .helpers import count_rows, model_call_row, model_calls, span_id, step_row, task_row, write_segments


def _write_lines(path: Path, rows: list[dict[str, Any]], *, separators: tuple[str, str] = (",", ":")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, separators=separators) + "\n" for row in rows), encoding="utf-8")
    return path


def _span_ids(location: StoreLocation, table: str) -> list[str]:
    key = next(iter(schema.metadata.tables[table].primary_key.columns))
    with open_store(location) as store, store.engine.connect() as conn:
        return list(conn.scalars(select(key).order_by(key)))


def test_a_span_repeated_within_a_segment_is_stored_once(location: StoreLocation, spool: Path) -> None:
    rows = [task_row(1), task_row(1), step_row(2, task=1), model_call_row(3, task=1), model_call_row(3, task=1)]
    write_segments(spool, [rows])
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=1, rows=5)
    assert _span_ids(location, "spans") == [span_id(1), span_id(2)]  # a model call is in model_calls alone
    assert _span_ids(location, "tasks") == [span_id(1)]
    assert _span_ids(location, "model_calls") == [span_id(3)]


def test_spans_repeated_across_segments_and_ingests_are_stored_once(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [[task_row(1), *model_calls(10, 3, task=1)]])
    with open_store(location) as store:
        assert (count_rows(store.engine, "spans"), count_rows(store.engine, "model_calls")) == (1, 3)
    # Again: the task and a call already stored, a call twice in the new batch, two new calls.
    write_segments(spool, [[task_row(1), model_call_row(10, task=1), model_call_row(13)], model_calls(13, 2)])
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=2, rows=5)
        assert count_rows(store.engine, "tasks") == 1
        assert count_rows(store.engine, "spans") == 1
        assert count_rows(store.engine, "model_calls") == 5
    assert _span_ids(location, "model_calls") == [span_id(n) for n in range(10, 15)]


def test_an_old_span_sent_again_among_new_ones_is_stored_once(location: StoreLocation, spool: Path) -> None:
    old, recent = 5, 1_000_000  # stored spans are looked up within the time range of the new batch
    write_segments(spool, [[model_call_row(old)]])
    with open_store(location):
        pass
    write_segments(spool, [[model_call_row(old), model_call_row(recent)]])
    assert _span_ids(location, "model_calls") == [span_id(old), span_id(recent)]


def test_the_copy_from_the_oldest_segment_is_kept(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [[model_call_row(7, response_id="first")], [model_call_row(7, response_id="second")]])
    with open_store(location) as store, store.engine.connect() as conn:
        assert conn.scalars(select(schema.model_calls.c.response_id)).all() == ["first"]


def test_spans_without_ids_are_not_merged_but_condemn_their_segment(location: StoreLocation, spool: Path) -> None:
    nameless = [model_call_row(1, span_id=None), model_call_row(2, span_id=None)]
    write_segments(spool, [model_calls(10, 2), nameless])
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=1, rows=2, bad_segments=1)


def test_segments_in_other_json_styles_load(location: StoreLocation, spool: Path) -> None:
    # Spaces after separators, keys in another order, CRLF and blank lines: what older or foreign
    # writers may leave in a spool must load like the compact lines SpoolWriter writes.
    spaced = _write_lines(spool / "seg-1-1-000001-spaced.jsonl", model_calls(0, 2), separators=(", ", ": "))
    shuffled = [dict(reversed(list(row.items()))) for row in model_calls(2, 2)]
    reordered = _write_lines(spool / "seg-1-1-000002-reordered.jsonl", shuffled)
    crlf = spool / "seg-1-1-000003-crlf.jsonl"
    crlf.write_bytes(b"\r\n".join(json.dumps(row).encode() for row in model_calls(4, 2)) + b"\r\n  \r\n\n")
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=3, rows=6)
    assert not any(path.exists() for path in (spaced, reordered, crlf))
    assert _span_ids(location, "model_calls") == [span_id(n) for n in range(6)]


def test_empty_and_blank_segments_are_recorded_and_deleted(location: StoreLocation, spool: Path) -> None:
    good = write_segments(spool, [model_calls(0, 2)])
    empty = spool / "seg-1-1-000001-empty.jsonl"
    empty.write_bytes(b"")
    blank = spool / "seg-1-1-000002-blank.jsonl"
    blank.write_text("\n  \n", encoding="utf-8")
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=3, rows=2)
        assert count_rows(store.engine, "ingested_segments") == 3
    assert not any(path.exists() for path in (*good, empty, blank))


def test_a_value_of_the_wrong_type_becomes_null(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [[model_call_row(1, output_tokens="many", ttft_ms="soon"), model_call_row(2)]])
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=1, rows=2)
        with store.engine.connect() as conn:
            calls = {row.span_id: row for row in conn.execute(select(schema.model_calls))}
    assert calls[span_id(1)].output_tokens is None and calls[span_id(1)].ttft_ms is None
    assert calls[span_id(1)].input_tokens == 1200
    assert calls[span_id(2)].output_tokens == 300


def test_unreadable_amounts_and_impossible_times_condemn_only_their_segment(
    location: StoreLocation, spool: Path
) -> None:
    write_segments(
        spool,
        [
            model_calls(0, 2),
            [model_call_row(10, cost="a lot")],
            [model_call_row(11, start_time_ns=-(2**63) + 1, end_time_ns=2**63 - 1)],  # duration overflows
            model_calls(20, 2),
        ],
    )
    with open_store(location, ingest=False) as store:
        assert store.ingest_spool() == IngestResult(segments=2, rows=4, bad_segments=2)
    assert len(list((spool / "bad").iterdir())) == 2


def test_ingest_leaves_the_connection_settings_as_it_found_them(location: StoreLocation, spool: Path) -> None:
    write_segments(spool, [model_calls(0, 2)])
    with open_store(location, ingest=False) as store:
        store.ingest_spool()
        with store.engine.connect() as conn:  # the pooled connection the ingest used
            setting = conn.exec_driver_sql("SELECT current_setting('preserve_insertion_order')").scalar()
    assert setting is True


def test_threads_ingesting_overlapping_segments_store_each_span_once(location: StoreLocation, spool: Path) -> None:
    # Each segment repeats half of the previous one: only serialised loads keep the span count exact.
    write_segments(spool, [model_calls(index * 10, 20) for index in range(20)])
    with open_store(location, create=True, ingest=False) as first, open_store(location, ingest=False) as second:
        results: list[IngestResult] = []
        threads = [threading.Thread(target=lambda s=s: results.append(s.ingest_spool())) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(result.segments for result in results) == 20
        with first.engine.connect() as conn:
            stored = conn.execute(select(func.count(), func.count(schema.model_calls.c.span_id.distinct()))).one()
    assert tuple(stored) == (210, 210)


# Each ingest is a list of segments, each segment a list of span numbers (repeats allowed).
_INGESTS = st.lists(st.lists(st.lists(st.integers(0, 30), max_size=12), min_size=1, max_size=4), min_size=1, max_size=3)


@settings(max_examples=12, deadline=None)
@given(ingests=_INGESTS)
def test_every_span_is_stored_exactly_once_however_it_was_spooled(ingests: list[list[list[int]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        location = resolve_store_location(str(Path(folder) / "store"))
        with open_store(location, create=True):
            pass
        lines = 0
        for segments in ingests:
            write_segments(location.spool_dir, [[_span_row(n) for n in numbers] for numbers in segments])
            with open_store(location, ingest=False) as store:
                result = store.ingest_spool()
            lines += result.rows
            assert result.rows == sum(len(numbers) for numbers in segments)
        assert lines == sum(len(numbers) for segments in ingests for numbers in segments)
        spooled = {n for segments in ingests for numbers in segments for n in numbers}
        assert _span_ids(location, "model_calls") == sorted(span_id(n) for n in spooled if n % 3)
        assert _span_ids(location, "spans") == sorted(span_id(n) for n in spooled if not n % 3)


def _span_row(number: int) -> dict[str, Any]:
    """Every third span a step (stored in ``spans``), the others model calls (in ``model_calls``)."""
    return model_call_row(number) if number % 3 else step_row(number, task=1000)


def _compact(rows: list[dict[str, Any]], end: bytes = b"\n") -> bytes:
    return b"".join(json.dumps(row, separators=(",", ":")).encode() + end for row in rows)


# Segment contents on which the bulk reader (read_ndjson_objects) and the tolerant one (read_text
# cut into lines by the query) must agree: both load the same rows, or both condemn the segment.
_READER_CASES: dict[str, bytes] = {
    "blank lines": b"\n" + _compact(model_calls(0, 2), b"\n\n") + b"\n",
    "whitespace-only lines": _compact(model_calls(0, 2), b"\n \t \n"),
    "CRLF": _compact(model_calls(0, 3), b"\r\n"),
    "no final newline": _compact(model_calls(0, 2))[:-1],
    # A captured prompt of 17 MB: above read_ndjson_objects' default maximum_object_size (16 MB).
    "a 17 MB line": _compact([model_call_row(0, input_messages="x" * 17_000_000), model_call_row(1)]),
    "a wrong type": _compact([model_call_row(0, output_tokens="many")]),
    "truncated JSON": _compact(model_calls(0, 1)) + b'{"kind":"model_call","span_id":"00',
    "invalid UTF-8": _compact(model_calls(0, 1)) + b'{"span_id":"\xff"}\n',
    "two objects on a line": _compact(model_calls(0, 1))[:-1] + b" " + _compact(model_calls(1, 1)),
}


def _load_with_reader(folder: Path, contents: bytes, *, isolating: bool) -> object:
    """Rows stored (or "condemned") when one segment is loaded with the bulk or the tolerant reader."""
    folder = folder / ("tolerant" if isolating else "bulk")
    folder.mkdir()
    location = resolve_store_location(folder / "store")
    segment = folder / "seg-1-1-000001-a.jsonl"
    segment.write_bytes(contents)
    loader = DuckDBLoader()
    with open_store(location, create=True) as store, store.engine.connect() as conn:
        try:
            with loader.session(conn), conn.begin():
                counts = loader.load(conn, [segment], datetime(2026, 1, 1), isolating=isolating)
        except Exception as exc:
            assert loader.is_segment_error(exc), exc
            return "condemned"
        stored = conn.execute(select(schema.model_calls).order_by(schema.model_calls.c.span_id)).all()
    return counts, [tuple(row) for row in stored]


def test_the_bulk_and_the_tolerant_reader_agree(tmp_path: Path) -> None:
    outcomes = {}
    for name, contents in _READER_CASES.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        bulk = _load_with_reader(folder, contents, isolating=False)
        assert bulk == _load_with_reader(folder, contents, isolating=True), name
        outcomes[name] = bulk if bulk == "condemned" else len(bulk[1])  # type: ignore[index]
    assert outcomes == {
        "blank lines": 2,
        "whitespace-only lines": 2,
        "CRLF": 3,
        "no final newline": 2,
        "a 17 MB line": 2,
        "a wrong type": 1,
        "truncated JSON": "condemned",
        "invalid UTF-8": "condemned",
        "two objects on a line": "condemned",
    }
