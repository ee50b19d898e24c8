"""OTLP export beside the store: real OTLP/HTTP to a local receiver, with cost attributes, never in the agent's way."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentprof
from agentprof import _runtime, _safety
from agentprof.exceptions import ConfigError
from agentprof.integrations import openai as openai_integration
from agentprof.testserver import TestServer


@dataclass
class Collector:
    """A minimal OTLP/HTTP trace receiver: decodes every request it gets."""

    port: int = 0
    requests: list[tuple[dict[str, str], ExportTraceServiceRequest]] = field(default_factory=list)

    def spans(self) -> list[dict[str, Any]]:
        found = []
        for _, request in self.requests:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {a.key: _value(a.value) for a in span.attributes}
                        found.append({"name": span.name, "attributes": attributes})
        return found


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    state = Collector()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, request))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sdk_exporter_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("opentelemetry.exporter")]


def _otlp_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "agentprof" and "OTLP export failed" in record.getMessage()
    ]


def run_agent(model_server: TestServer, model: str = "gpt-4o-mini") -> None:
    openai_integration.instrument()
    try:
        # Closed here: a client left to the garbage collector closes its socket with a ResourceWarning
        # in whichever later test the collection happens.
        with openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-test-secret", max_retries=0) as client:
            with agentprof.task("support"), agentprof.step("classify"):
                messages = [{"role": "user", "content": "hi [[reply:billing]]"}]
                client.chat.completions.create(model=model, messages=messages)
    finally:
        openai_integration.uninstrument()


def store_calls(store: Path) -> list[dict[str, Any]]:
    rows = []
    for segment in sorted((store / "spool").glob("seg-*.jsonl")):
        rows.extend(json.loads(line) for line in segment.read_text().splitlines())
    return [row for row in rows if row["kind"] == "model_call"]


def test_spans_go_to_the_collector_with_cost_and_to_the_store(
    tmp_path: Path, collector: Collector, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer collector-token")
    agentprof.configure(db=str(tmp_path / "store"), otlp=True)
    run_agent(model_server)
    agentprof.shutdown()

    spans = {span["name"]: span["attributes"] for span in collector.spans()}
    assert set(spans) == {"invoke_agent support", "classify", "chat gpt-4o-mini"}
    call = spans["chat gpt-4o-mini"]
    truth = model_server.requests[0].usage or {}
    assert call["gen_ai.usage.input_tokens"] == truth["prompt_tokens"]
    assert call["gen_ai.usage.output_tokens"] == truth["completion_tokens"]
    assert call["agentprof.task.name"] == "support" and call["agentprof.step.name"] == "classify"
    [stored] = store_calls(tmp_path / "store")  # the local store recorded the same call (a live tee)
    assert Decimal(call["agentprof.cost_usd"]) == Decimal(stored["cost_usd"]) > 0
    assert call["gen_ai.usage.cost"] == pytest.approx(float(stored["cost_usd"]))
    assert call["agentprof.price.unpriced"] is False and "genai-prices" in call["agentprof.price.version"]
    # What the analyses read of the call travels too (hashes and counts: no prompt or completion text).
    analysis = {
        "agentprof.request.fingerprint": "request_fingerprint",
        "agentprof.request.prefix_fingerprints": "prefix_fingerprints",
        "agentprof.request.tool_count": "tool_count",
        "agentprof.output.hash": "output_hash",
        "agentprof.output.chars": "output_chars",
        "agentprof.usage.raw": "raw_usage",
    }
    assert {name: call[name] for name in analysis} == {name: stored[column] for name, column in analysis.items()}
    assert stored["request_fingerprint"] and stored["output_chars"] == len("billing")
    assert "hi [[reply" not in json.dumps(collector.spans()) and "billing" not in json.dumps(call)
    headers, _ = collector.requests[0]
    assert headers["authorization"] == "Bearer collector-token"
    assert headers["content-type"] == "application/x-protobuf"
    # Neither the collector's token nor the provider's API key is recorded anywhere.
    exported = json.dumps(collector.spans())
    stored_text = "".join(p.read_text() for p in (tmp_path / "store" / "spool").glob("*.jsonl"))
    for secret in ("collector-token", "sk-test-secret"):
        assert secret not in exported and secret not in stored_text


def test_shutting_down_with_otlp_logs_no_warning(
    tmp_path: Path,
    collector: Collector,
    model_server: TestServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The exporter is stopped early to end a back-off, and then again by its processor: the SDK's
    # exporter warned "Exporter already shutdown" on stderr at every exit of a program with OTLP on.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.port}")
    agentprof.configure(db=str(tmp_path / "store"), otlp=True)
    run_agent(model_server)
    with caplog.at_level(logging.WARNING):
        agentprof.shutdown()
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert len(collector.spans()) == 3  # the spans still went out before the exporter stopped


def test_an_unpriced_call_is_flagged_not_zero(
    tmp_path: Path, collector: Collector, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{collector.port}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("AGENTPROF_OTLP", "1")
    agentprof.configure(db=str(tmp_path / "store"))
    run_agent(model_server, model="my-private-model")
    agentprof.shutdown()
    headers, _ = collector.requests[0]
    assert headers["content-encoding"] == "gzip"
    [call] = [span["attributes"] for span in collector.spans() if span["name"].startswith("chat")]
    assert call["agentprof.price.unpriced"] is True and "unknown model" in call["agentprof.price.unpriced_reason"]
    assert "gen_ai.usage.cost" not in call and "agentprof.cost_usd" not in call


def test_a_collector_that_is_down_never_reaches_the_agent(
    tmp_path: Path, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed_port = _closed_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    _safety.reset_counters()
    agentprof.configure(db=str(tmp_path / "store"), otlp=True, schedule_delay_millis=10)
    run_agent(model_server)  # returns normally: the export happens on the processor's thread
    agentprof.shutdown()  # the exporter is stopped first, so no back-off outlives the program
    assert len(store_calls(tmp_path / "store")) == 1  # the store kept recording
    assert _safety.counters().get("otlp_spans_failed", 0) >= 1
    assert _safety.counters().get("otlp_spans_exported", 0) == 0


def test_a_collector_that_stays_down_is_one_warning_not_a_line_per_retry(
    tmp_path: Path, model_server: TestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDK exporter logs a warning per retry and an error per batch into the agent's stderr for as
    # long as the collector is down; the user gets one line from agentprof, and doctor has the counts.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    _safety.reset_counters()
    agentprof.configure(db=str(tmp_path / "store"), otlp=True, schedule_delay_millis=10)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):  # three tasks, each exported (and failing) on its own
            run_agent(model_server)
            deadline = time.monotonic() + 10
            failed = _safety.counters().get("otlp_spans_failed", 0)
            while _safety.counters().get("otlp_spans_failed", 0) == failed and time.monotonic() < deadline:
                time.sleep(0.02)
        agentprof.shutdown()
    assert _safety.counters()["otlp_spans_failed"] == 9  # 3 spans a task, none delivered
    assert _sdk_exporter_records(caplog) == []
    [warning] = _otlp_warnings(caplog)
    assert "span(s) not delivered" in warning and "agentprof doctor" in warning
    assert "the exporter gave no reason" not in warning  # the SDK's own reason is quoted


def test_a_refusing_collector_is_warned_of_with_its_answer(
    tmp_path: Path, model_server: TestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        _safety.reset_counters()
        agentprof.configure(db=str(tmp_path / "store"), otlp=True)
        with caplog.at_level(logging.DEBUG):
            run_agent(model_server)
            agentprof.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    assert _sdk_exporter_records(caplog) == []
    [warning] = _otlp_warnings(caplog)
    assert "3 span(s) not delivered" in warning and "400" in warning
    assert len(store_calls(tmp_path / "store")) == 1


def test_the_applications_own_otlp_exporter_still_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Only records made while agentprof's exporter runs are held back: the same SDK exporter used by the
    # application's own pipeline (on its own threads) logs as before.
    agentprof.configure(db=str(tmp_path / "store"), otlp=True)
    try:
        with caplog.at_level(logging.WARNING):
            logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").warning("the app's exporter")
    finally:
        agentprof.shutdown()
    assert _sdk_exporter_records(caplog) == ["the app's exporter"]


def test_joining_an_applications_tracer_provider(tmp_path: Path, model_server: TestServer) -> None:
    application_exporter = InMemorySpanExporter()
    application = TracerProvider()
    application.add_span_processor(SimpleSpanProcessor(application_exporter))
    agentprof.configure(db=str(tmp_path / "store"), tracer_provider=application)
    with application.get_tracer("app").start_as_current_span("handle request"):
        run_agent(model_server)
    agentprof.shutdown()
    names = {span.name for span in application_exporter.get_finished_spans()}
    assert {"handle request", "invoke_agent support", "classify", "chat gpt-4o-mini"} <= names
    by_name = {span.name: span for span in application_exporter.get_finished_spans()}
    request_context = by_name["handle request"].context
    assert request_context is not None and by_name["invoke_agent support"].parent is not None
    assert by_name["invoke_agent support"].parent.span_id == request_context.span_id  # one trace
    assert len(store_calls(tmp_path / "store")) == 1
    application.shutdown()


def test_joining_a_tracer_provider_with_otlp_exports_the_applications_spans_too(
    tmp_path: Path, collector: Collector, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store exporter, added to the application's provider, hands every span it sees on to OTLP.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.port}")
    application = TracerProvider()
    agentprof.configure(db=str(tmp_path / "store"), tracer_provider=application, otlp=True)
    with application.get_tracer("app").start_as_current_span("handle request"):
        run_agent(model_server)
    agentprof.shutdown()
    application.shutdown()
    spans = {span["name"]: span["attributes"] for span in collector.spans()}
    assert set(spans) == {"handle request", "invoke_agent support", "classify", "chat gpt-4o-mini"}
    [stored] = store_calls(tmp_path / "store")
    call = spans["chat gpt-4o-mini"]
    assert call["agentprof.request.fingerprint"] == stored["request_fingerprint"]
    assert call["agentprof.cost_usd"] == stored["cost_usd"]


def test_an_unsupported_protocol_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="OTLP protocol 'http/json' is not supported"):
        agentprof.configure(db=str(tmp_path / "store"), otlp=True)
    assert _runtime.get_runtime() is None  # nothing half-configured is left running


def test_doctor_shows_what_the_collector_refused(
    tmp_path: Path, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from agentprof.cli import main

    closed_port = _closed_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("AGENTPROF_OTLP", "1")
    _safety.reset_counters()
    agentprof.configure(db=str(tmp_path / "store"), schedule_delay_millis=10)
    run_agent(model_server)
    agentprof.shutdown()
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["doctor", "--db", str(tmp_path / "store")])
    output = " ".join(result.output.split())
    assert f"on (AGENTPROF_OTLP): http://127.0.0.1:{closed_port}" in output
    assert "problem OTLP export 0 spans delivered to the OTLP collector, 3 refused or undeliverable" in output


def test_spans_the_full_export_queue_dropped_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed_port = _closed_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    _safety.reset_counters()
    runtime = _runtime.configure(
        db=str(tmp_path / "store"), otlp=True, max_queue_size=8, max_export_batch_size=4, schedule_delay_millis=10
    )
    assert runtime.otlp_processor is not None
    for index in range(200):  # far more than the OTLP queue holds while the collector is unreachable...
        with agentprof.task(f"t{index}"):
            pass
        time.sleep(0.005)  # ...but slow enough for the store exporter, which hands spans on to it
    agentprof.shutdown()
    counters = _safety.counters()
    handled = counters.get("otlp_spans_exported", 0) + counters.get("otlp_spans_failed", 0)
    assert counters["otlp_spans_dropped"] == runtime.otlp_processor.received - handled > 0
