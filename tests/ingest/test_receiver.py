"""``agentprof serve``'s receiver over real HTTP: every transport rule and error path."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprof.ingest._intake import PROTOBUF, Intake
from agentprof.ingest._receiver import OtlpReceiver
from tests.ingest.helpers import TRACE, S, request, sid

CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}
AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}


def agent_trace(trace: str = TRACE) -> bytes:
    return request(
        [S(1, None, "invoke_agent support", AGENT, trace=trace), S(2, 1, "chat gpt-4o", CALL, trace=trace)]
    ).SerializeToString()


def post(
    receiver: OtlpReceiver,
    body: bytes,
    content_type: str = "application/x-protobuf",
    *,
    path: str = "/v1/traces",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        receiver.url + path, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:  # closes the connection now, not when a collection finds it (a ResourceWarning)
            return error.code, dict(error.headers), error.read()


def spooled(spool: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for segment in sorted(spool.glob("seg-*.jsonl")):
        rows.extend(json.loads(line) for line in segment.read_text().splitlines())
    return rows


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    running = OtlpReceiver(tmp_path / "spool", port=0).start()
    yield running
    running.stop()


def test_protobuf_is_accepted_and_spooled_at_shutdown(receiver: OtlpReceiver) -> None:
    code, headers, body = post(receiver, agent_trace())
    assert code == 200 and headers["Content-Type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(body)
    assert not response.HasField("partial_success")
    receiver.stop()  # graceful shutdown writes the trace still waiting to settle
    rows = spooled(receiver.spool_dir)
    assert [(row["kind"], row["task_name"]) for row in rows] == [("task", "support"), ("model_call", "support")]
    assert rows[1]["input_tokens"] == 1000 and rows[1]["priced"] is True


def test_json_with_hex_ids_and_gzip(receiver: OtlpReceiver) -> None:
    payload = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-agent"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "x"},
                        "spans": [
                            {
                                "traceId": TRACE.upper(),
                                "spanId": sid(7),
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1767225600000000000",
                                "endTimeUnixNano": "1767225601000000000",
                                "attributes": [
                                    {
                                        "key": k,
                                        "value": {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)},
                                    }
                                    for k, v in CALL.items()
                                ],
                                "unknownField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(payload).encode())
    code, headers, answer = post(
        receiver, body, "application/json; charset=utf-8", headers={"Content-Encoding": "gzip"}
    )
    assert (code, headers["Content-Type"], json.loads(answer)) == (200, "application/json", {})
    receiver.stop()
    [row] = spooled(receiver.spool_dir)
    assert (row["trace_id"], row["span_id"], row["service_name"]) == (TRACE, sid(7), "js-agent")
    assert row["task_name"] == "(untracked)" and row["output_tokens"] == 100


def test_other_paths_are_404_and_other_content_types_415(receiver: OtlpReceiver) -> None:
    code, _, body = post(receiver, agent_trace(), path="/v1/metrics")
    assert code == 404 and "/v1/traces" in Status.FromString(body).message
    code, _, body = post(receiver, b"{}", "application/json", path="/")
    assert code == 404 and "/v1/traces" in json.loads(body)["message"]
    code, _, body = post(receiver, b"{}", "text/plain")
    assert code == 415 and "application/x-protobuf" in json.loads(body)["message"]


def test_undecodable_data_is_400_with_a_status_body(receiver: OtlpReceiver) -> None:
    code, _, body = post(receiver, b"\xff\xff\xff garbage")
    assert code == 400 and "ExportTraceServiceRequest" in Status.FromString(body).message
    code, _, body = post(receiver, b'{"resourceSpans": [', "application/json")
    assert code == 400 and json.loads(body)["message"].startswith("not JSON")
    code, _, _ = post(receiver, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert code == 400
    receiver.stop()
    assert spooled(receiver.spool_dir) == []


def test_bodies_over_the_limit_are_413_before_and_after_decompression(tmp_path: Path) -> None:
    with OtlpReceiver(tmp_path / "spool", port=0, max_body_bytes=4096) as small:
        code, _, body = post(small, b"\x00" * 5000)
        assert code == 413 and "4096" in Status.FromString(body).message
        bomb = gzip.compress(b"\x00" * 100_000)  # ~100 bytes on the wire
        code, _, _ = post(small, bomb, headers={"Content-Encoding": "gzip"})
        assert code == 413
        code, _, _ = post(small, agent_trace())  # still serving
        assert code == 200


def test_invalid_spans_are_rejected_with_partial_success(receiver: OtlpReceiver) -> None:
    message = request([S(1, None, "invoke_agent support", AGENT), S(2, 1, "chat gpt-4o", CALL)])
    message.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"  # 2 bytes, not 8
    code, _, body = post(receiver, message.SerializeToString())
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert code == 200 and partial.rejected_spans == 1 and "invalid span id" in partial.error_message
    receiver.stop()
    assert [row["kind"] for row in spooled(receiver.spool_dir)] == ["task"]


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    accepted: list[str] = []
    with OtlpReceiver(tmp_path / "spool", port=0, queue_size=1) as busy:
        with busy.hold_writer():  # the writer holds at most one batch; the queue one more
            for digit in "123":
                code, headers, _ = post(busy, agent_trace(digit * 32))
                if code == 503:
                    assert headers["Retry-After"] == "1"
                    break
                assert code == 200
                accepted.append(digit * 32)
            else:
                pytest.fail("the queue never filled")
        for _ in range(100):  # the client's retries, until the writer has caught up
            if post(busy, agent_trace(digit * 32))[0] == 200:
                accepted.append(digit * 32)
                break
            time.sleep(0.02)
    assert {row["trace_id"] for row in spooled(tmp_path / "spool")} == set(accepted)
    assert busy.stats.throttled >= 1 and len(accepted) == len(set(accepted)) >= 2


def sized_trace(trace: str, chars: int) -> bytes:
    """A one-span trace whose messages are ``chars`` characters (what the intake's byte budget weighs)."""
    content = {"gen_ai.operation.name": "invoke_agent", "gen_ai.input.messages": "x" * chars}
    return request([S(1, None, "invoke_agent support", content, trace=trace)]).SerializeToString()


def test_the_queue_is_bounded_by_bytes_as_well_as_by_requests(tmp_path: Path) -> None:
    """Large spans fill the queue long before its request count (a collector flushing a backlog)."""

    intake = Intake(tmp_path / "spool", queue_size=256, queue_bytes=4_000).start()
    try:
        with intake.hold_writer():  # the writer may take a batch, but not hand it on
            assert intake.submit(sized_trace("1" * 32, 5_000), PROTOBUF).status == "ok"  # alone over the bytes: taken
            assert intake.submit(sized_trace("2" * 32, 5_000), PROTOBUF).status == "busy"  # 255 requests free, no bytes
            # refused before it is read: under overload every refused request comes back, and decoding
            # each one only to refuse it took the CPU the writer needed to catch up
            assert intake.submit(b"not protobuf", PROTOBUF).status == "busy"
        for _ in range(100):  # the client's retries, until the writer has caught up
            if intake.submit(sized_trace("2" * 32, 5_000), PROTOBUF).status == "ok":
                break
            time.sleep(0.02)
        for _ in range(100):
            outcome = intake.submit(b"not protobuf", PROTOBUF)
            if outcome.status != "busy":
                break
            time.sleep(0.02)
        assert outcome.status == "invalid"  # read once there is room
    finally:
        intake.stop()
    assert intake.stats.throttled >= 2
    assert sorted(row["trace_id"] for row in spooled(tmp_path / "spool")) == ["1" * 32, "2" * 32]


def test_a_request_larger_than_the_byte_budget_waits_only_for_a_quarter_full_queue(tmp_path: Path) -> None:
    """Not for an empty one: steady traffic from other clients may never leave the queue empty."""
    intake = Intake(tmp_path / "spool", queue_size=256, queue_bytes=40_000).start()
    try:
        with intake.hold_writer():
            assert intake.submit(sized_trace("1" * 32, 1_000), PROTOBUF).status == "ok"
            assert intake.submit(sized_trace("2" * 32, 50_000), PROTOBUF).status == "ok"  # over budget, queue under 1/4
            assert intake.submit(sized_trace("3" * 32, 1_000), PROTOBUF).status == "busy"  # over 1/4 and no room
    finally:
        intake.stop()
    assert sorted(row["trace_id"] for row in spooled(tmp_path / "spool")) == ["1" * 32, "2" * 32]


def test_a_small_request_is_not_refused_for_the_size_of_another_clients_large_ones(tmp_path: Path) -> None:
    intake = Intake(tmp_path / "spool", queue_size=256, queue_bytes=40_000).start()
    try:
        with intake.hold_writer():
            assert intake.submit(sized_trace("1" * 32, 1_000), PROTOBUF).status == "ok"
            assert intake.submit(sized_trace("2" * 32, 25_000), PROTOBUF).status == "ok"  # the queue is now over 1/4
            assert intake.submit(sized_trace("3" * 32, 25_000), PROTOBUF).status == "busy"  # does not fit
            assert intake.submit(sized_trace("4" * 32, 1_000), PROTOBUF).status == "ok"  # fits: not refused unread
    finally:
        intake.stop()
    assert len(spooled(tmp_path / "spool")) == 3


def test_retries_are_idempotent(receiver: OtlpReceiver) -> None:
    for _ in range(3):
        assert post(receiver, agent_trace())[0] == 200
    receiver.stop()
    assert len(spooled(receiver.spool_dir)) == 2
    assert receiver.stats.spans_duplicate == 4


def test_a_token_is_required_when_set(tmp_path: Path) -> None:
    with OtlpReceiver(tmp_path / "spool", port=0, token="s3cret") as guarded:
        assert post(guarded, agent_trace())[0] == 401
        assert post(guarded, agent_trace(), headers={"Authorization": "Bearer wrong"})[0] == 401
        assert post(guarded, agent_trace(), headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert len(spooled(tmp_path / "spool")) == 2


def test_the_real_otlp_exporter_delivers_to_serve(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with OtlpReceiver(tmp_path / "spool", port=0, token="t") as running:
        exporter = OTLPSpanExporter(
            endpoint=running.url + "/v1/traces", headers={"authorization": "Bearer t"}, compression=Compression.Gzip
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
        with tracer.start_as_current_span("invoke_agent helper", attributes=AGENT | {"gen_ai.agent.name": "helper"}):
            with tracer.start_as_current_span("chat gpt-4o", attributes=CALL):
                pass
        provider.shutdown()
    rows = spooled(tmp_path / "spool")
    assert {(row["kind"], row["task_name"], row["service_name"]) for row in rows} == {
        ("task", "helper", "otel-app"),
        ("model_call", "helper", "otel-app"),
    }


def _abort_mid_body(receiver: OtlpReceiver) -> None:
    """Send headers and part of a body, then reset the connection (SO_LINGER 0: an RST, not a FIN)."""
    host, port = receiver.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 100000\r\n\r\n" + agent_trace()[:10]
        )
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_client_that_drops_the_connection_mid_request_leaves_no_traceback(
    receiver: OtlpReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    _abort_mid_body(receiver)
    deadline = time.monotonic() + 10
    while not receiver.client_disconnects and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.client_disconnects == 1
    code, _, _ = post(receiver, agent_trace())  # still serving
    assert code == 200
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception occurred" not in captured.err
