"""``agentprof serve`` with worker processes: the same rows as one process, whatever the sharding."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprof.ingest._decode import Shard, decode_json, decode_protobuf
from agentprof.ingest._receiver import OtlpReceiver
from agentprof.ingest._workers import WorkerPool
from tests.ingest.helpers import S, request, sid
from tests.ingest.test_receiver import AGENT, CALL, post, spooled

#: Trace ids whose last bytes put them in both shares of two workers (…00 even, …01 odd, …ff odd).
TRACES = [f"{n:030x}{last:02x}" for n, last in ((1, 0x00), (2, 0x01), (3, 0x02), (4, 0xFF), (5, 0x10), (6, 0x33))]


def _traffic() -> list[bytes]:
    """Requests as exporters send them: children before parents, a trace across two requests, a retry."""
    first, second = [], []
    for number, trace in enumerate(TRACES):
        base = 10 * number
        first.append(S(base + 2, base + 1, "chat gpt-4o", CALL, trace=trace, start=2))
        second.append(S(base + 3, base + 1, "chat gpt-4o", CALL, trace=trace, start=3))
        second.append(S(base + 1, None, "invoke_agent support", AGENT, trace=trace, start=1))
    bodies = [request(first).SerializeToString(), request(second).SerializeToString()]
    return [*bodies, bodies[0]]  # the first one again: a client's retry


def _rows(spool: Path) -> list[dict[str, Any]]:
    return sorted(spooled(spool), key=lambda row: (row["trace_id"], row["span_id"]))


@pytest.fixture
def other_thread() -> Iterator[None]:
    """A second thread in the test process: the pool must then spawn its workers, not fork them."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    yield
    done.set()
    thread.join()


def test_two_workers_spool_the_rows_one_process_spools(tmp_path: Path) -> None:
    outputs: dict[int, list[dict[str, Any]]] = {}
    for workers in (0, 2):
        spool = tmp_path / f"spool-{workers}"
        expected_start = "fork" if threading.active_count() == 1 else "spawn"  # the rule of _workers._context
        with OtlpReceiver(spool, port=0, workers=workers) as receiver:
            assert [post(receiver, body)[0] for body in _traffic()] == [200, 200, 200]
        assert receiver.stats.spans_accepted == 3 * len(TRACES)
        assert receiver.stats.spans_duplicate == len(TRACES)
        assert (receiver.totals.tasks, receiver.totals.model_calls) == (len(TRACES), 2 * len(TRACES))
        if workers:
            assert receiver.intake.start_method == expected_start  # type: ignore[union-attr]
        outputs[workers] = _rows(spool)
        writers = {segment.name.split("-")[2] for segment in spool.glob("seg-*.jsonl")}
        assert len(writers) == (2 if workers else 1)  # each worker process wrote its own share
    assert outputs[2] == outputs[0]
    assert len(outputs[0]) == 3 * len(TRACES)
    # every call kept its task: the two halves of a trace were assembled by one worker
    assert all(row["task_name"] == "support" for row in outputs[2])


def test_spawned_workers_work_as_forked_ones(tmp_path: Path, other_thread: None) -> None:
    with OtlpReceiver(tmp_path / "spool", port=0, workers=2) as receiver:
        assert [post(receiver, body)[0] for body in _traffic()] == [200, 200, 200]
    assert receiver.intake.start_method == "spawn"  # type: ignore[union-attr]
    assert len(_rows(tmp_path / "spool")) == 3 * len(TRACES)


def test_a_rejected_span_is_counted_once_and_json_is_shared_too(tmp_path: Path) -> None:
    message = request([S(1, None, "invoke_agent support", AGENT, trace=TRACES[1]), S(2, 1, "chat gpt-4o", CALL)])
    message.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"
    with OtlpReceiver(tmp_path / "spool", port=0, workers=2) as receiver:
        code, _, body = post(receiver, message.SerializeToString())
        partial = ExportTraceServiceResponse.FromString(body).partial_success
        assert code == 200 and partial.rejected_spans == 1 and "invalid span id" in partial.error_message
        chat = request([S(7, None, "chat gpt-4o", CALL, trace=trace) for trace in TRACES])
        data = json_format.MessageToDict(chat)
        for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId"):  # OTLP JSON ids are hex
                span[key] = base64.b64decode(span[key]).hex()
        assert post(receiver, json.dumps(data).encode(), "application/json")[0] == 200
        assert post(receiver, b"\x00garbage")[0] == 400
    assert receiver.stats.spans_rejected == 1
    rows = _rows(tmp_path / "spool")
    assert sorted(row["trace_id"] for row in rows if row["kind"] == "model_call") == sorted(TRACES)


def _hex_json(message: Any) -> dict[str, Any]:
    """A protobuf request as OTLP JSON exporters write it (ids as hex)."""
    data = json_format.MessageToDict(message)
    for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):
            span[key] = base64.b64decode(span[key]).hex()
    return data


def test_json_goes_to_the_workers_decoded_and_a_refused_body_stores_nothing(tmp_path: Path) -> None:
    data = _hex_json(request([S(7, None, "chat gpt-4o", CALL, trace=trace) for trace in TRACES]))
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[-1]["startTimeUnixNano"] = "soon"  # one span of the last trace's share: the whole request is refused
    refused = json.dumps(data).encode()
    spans[-1]["startTimeUnixNano"] = "1"
    spans[-1]["spanId"] = "0102"  # now only that span is rejected (counted once, by share 0)
    partial = json.dumps(data).encode()
    with OtlpReceiver(tmp_path / "spool", port=0, workers=2) as receiver:
        code, _, body = post(receiver, refused, "application/json")
        assert code == 400 and b"startTimeUnixNano" in body
        code, _, body = post(receiver, partial, "application/json")
        assert code == 200 and json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
        assert receiver.stats.requests == 2
    assert receiver.stats.spans_rejected == 1
    assert receiver.stats.spans_accepted == len(TRACES) - 1
    rows = _rows(tmp_path / "spool")
    assert sorted(row["trace_id"] for row in rows) == sorted(TRACES[:-1])
    assert len({segment.name.split("-")[2] for segment in (tmp_path / "spool").glob("seg-*.jsonl")}) == 2


def test_json_the_front_end_cannot_pickle_goes_to_the_workers_as_the_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(_hex_json(request([S(7, None, "chat gpt-4o", CALL, trace=trace) for trace in TRACES]))).encode()
    outputs = []
    for pickled in (True, False):
        if not pickled:  # what a value nested beyond the recursion limit would do
            monkeypatch.setattr(WorkerPool, "_decoded_shares", lambda self, decoded: None)
        spool = tmp_path / f"spool-{pickled}"
        with OtlpReceiver(spool, port=0, workers=2) as receiver:
            assert post(receiver, body, "application/json")[0] == 200
            assert post(receiver, _traffic()[0])[0] == 200  # a protobuf body after it: the protocol is in step
        outputs.append(_rows(spool))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 2 * len(TRACES)


def test_a_worker_that_dies_is_replaced_and_the_request_retried(tmp_path: Path) -> None:
    traffic = _traffic()
    with OtlpReceiver(tmp_path / "spool", port=0, workers=2) as receiver:
        assert post(receiver, traffic[0])[0] == 200
        pool = receiver.intake
        victim = pool._workers[1].process  # type: ignore[union-attr]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(timeout=10)
        codes = [post(receiver, traffic[1])[0]]
        if codes[0] == 503:  # the client's retry reaches the new worker
            codes.append(post(receiver, traffic[1])[0])
        assert codes[-1] == 200
        assert pool._workers[1].process is not victim  # type: ignore[union-attr]
    stored = {row["span_id"] for row in _rows(tmp_path / "spool")}
    # What the dead worker held of the first request is gone; everything sent after it is there.
    assert {sid(10 * n + k) for n in range(len(TRACES)) for k in (1, 3)} <= stored
    assert receiver.stats.throttled >= 1


def test_shards_split_every_trace_the_same_way_in_both_encodings() -> None:
    body = request([S(n + 1, None, "chat gpt-4o", CALL, trace=trace) for n, trace in enumerate(TRACES)])
    whole = decode_protobuf(body.SerializeToString())
    shards = [Shard(index, 3) for index in range(3)]
    from_protobuf = [decode_protobuf(body.SerializeToString(), shard).spans for shard in shards]
    from_decoded = [shard.restrict(whole).spans for shard in shards]
    assert [[span.trace_id for span in spans] for spans in from_protobuf] == [
        [span.trace_id for span in spans] for spans in from_decoded
    ]
    assert sorted(span.trace_id for spans in from_protobuf for span in spans) == sorted(TRACES)
    assert all(spans for spans in from_protobuf)  # every share got something from these ids
    assert decode_json({"resourceSpans": []}, Shard(1, 2)).spans == []


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_write_what_they_hold_and_exit_when_the_front_end_is_killed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    server = subprocess.Popen(
        [sys.executable, "-c", "from agentprof.cli import main; main()", "serve", "--port", "0", "--workers", "2"]
        + ["--db", str(store)],
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: list[int] = []
    try:
        assert server.stderr is not None
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1/traces", server.stderr.readline())
        assert match
        workers = _children(server.pid)
        assert len(workers) == 2
        for body in _traffic()[:2]:
            req = urllib.request.Request(
                match.group(1) + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
            )
            with urllib.request.urlopen(req, timeout=10) as response:
                assert response.status == 200
        server.kill()  # no shutdown: the workers only see their pipes close
        server.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_running, workers)), "orphaned workers kept running"
    finally:
        # Orphans would hold the stderr pipe open: end them here so a failure cannot hang the suite.
        for pid in [server.pid, *workers]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        server.wait(timeout=10)
        assert server.stderr is not None
        server.stderr.close()
    assert len(_rows(store / "spool")) == 3 * len(TRACES)
