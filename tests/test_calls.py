"""The model-call recorder and the exporter-side mapping: attribution, pricing, fingerprints, privacy."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import agentprof
from agentprof import _calls, _runtime, _safety, _spans
from agentprof._usage import CanonicalUsage

Rows = Callable[[], list[dict[str, Any]]]


def record(
    model: str | None,
    usage: CanonicalUsage | None,
    *,
    provider: str = "openai",
    body: dict[str, Any] | None = None,
    output: str | None = "ok",
    error: BaseException | None = None,
) -> _calls.ModelCall:
    call = _calls.start_call(provider, model)
    token = _calls.bind_request(call)
    if body is not None:
        _calls.capture_request(json.dumps(body).encode(), "https://api.openai.com/v1/chat/completions")
    _calls.unbind_request(token)
    _calls.finish_call(
        call,
        usage=usage,
        response_model=model,
        output=(lambda: output) if output is not None else None,
        error=error,
    )
    return call


def test_call_inside_steps_is_attributed_to_innermost_step(spool_rows: Rows) -> None:
    with agentprof.task("t"), agentprof.step("outer"), agentprof.step("inner", kind="tool"):
        record("gpt-4o", CanonicalUsage(input_tokens=1000, output_tokens=100))
    with agentprof.task("t2"):
        record("gpt-4o", CanonicalUsage(input_tokens=10, output_tokens=1))
    record("gpt-4o", CanonicalUsage(input_tokens=10, output_tokens=1))
    calls = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert [(c["task_name"], c["step_name"], c["step_path"]) for c in calls] == [
        ("t", "inner", "outer/inner"),
        ("t2", "(task)", None),
        ("(untracked)", "(untracked)", None),
    ]
    assert calls[0]["step_kind"] == "tool"
    assert calls[2]["task_id"] is None


def test_priced_exactly_as_decimal_with_cache_reads(spool_rows: Rows) -> None:
    usage = CanonicalUsage(input_tokens=2000, output_tokens=300, cache_read_tokens=1024)
    record("gpt-4o", usage)
    [call] = [row for row in spool_rows() if row["kind"] == "model_call"]
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens (genai-prices data)
    expected = (Decimal(976) * Decimal("2.5") + Decimal(1024) * Decimal("1.25") + Decimal(300) * 10) / Decimal(10**6)
    assert Decimal(call["cost_usd"]) == expected
    assert call["priced"] is True and call["price_version"].startswith("genai-prices ")
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"]) == (2000, 1024, 300)


def test_unknown_model_and_unknown_usage_are_unpriced_never_zero(spool_rows: Rows) -> None:
    record("my-secret-model-9000", CanonicalUsage(input_tokens=10, output_tokens=10))
    record("gpt-4o", None, error=RuntimeError("boom"))
    calls = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert [c["priced"] for c in calls] == [False, False]
    assert [c["cost_usd"] for c in calls] == [None, None]
    assert "my-secret-model-9000" in calls[0]["unpriced_reason"]
    assert calls[1]["usage_known"] is False and calls[1]["status"] == "error"
    assert calls[1]["error_type"] == "RuntimeError"


def test_fingerprints_without_text_by_default(spool_rows: Rows) -> None:
    system = {"role": "system", "content": "You are a support agent. " * 50}
    body_a = {"model": "gpt-4o", "messages": [system, {"role": "user", "content": "a"}], "stream": False}
    body_b = {"model": "gpt-4o", "messages": [system, {"role": "user", "content": "a"}], "stream": True}
    body_c = {"model": "gpt-4o", "messages": [system, {"role": "user", "content": "different"}]}
    for body in (body_a, body_b, body_c):
        record("gpt-4o", CanonicalUsage(input_tokens=400, output_tokens=2), body=body, output="secret answer")
    calls = [row for row in spool_rows() if row["kind"] == "model_call"]
    fingerprints = [c["request_fingerprint"] for c in calls]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]  # stream flag is transport, not content
    prefixes = [json.loads(c["prefix_fingerprints"]) for c in calls]
    assert prefixes[0][0]["hash"] == prefixes[2][0]["hash"]  # same system prompt prefix
    assert prefixes[0][1]["hash"] != prefixes[2][1]["hash"]
    assert prefixes[0][0]["tokens"] > 250 and prefixes[0][0]["role"] == "system"
    assert calls[0]["output_hash"] == calls[2]["output_hash"] and calls[0]["output_chars"] == len("secret answer")
    text = json.dumps(calls)
    assert "support agent" not in text and "secret answer" not in text


def test_capture_content_opt_in_stores_text(tmp_path: Path) -> None:
    runtime = _runtime.configure(db=str(tmp_path / "s"), capture_content=True)
    try:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
        record("gpt-4o", CanonicalUsage(input_tokens=3, output_tokens=2), body=body, output="general kenobi")
        assert _runtime.flush()
        rows = [
            json.loads(line)
            for f in runtime.location.spool_dir.glob("seg-*.jsonl")
            for line in f.read_text().splitlines()
        ]
    finally:
        _runtime.shutdown()
    [call] = rows
    assert json.loads(call["input_messages"]) == body["messages"]
    assert call["output_text"] == "general kenobi"


def test_not_configured_records_nothing() -> None:
    assert _runtime.get_runtime() is None
    assert _calls.start_call("openai", "gpt-4o") is None
    _calls.finish_call(None)  # accepted and ignored


def test_finish_is_idempotent(spool_rows: Rows) -> None:
    call = _calls.start_call("openai", "gpt-4o")
    _calls.finish_call(call, usage=CanonicalUsage(input_tokens=1, output_tokens=1))
    _calls.finish_call(call, usage=CanonicalUsage(input_tokens=99, output_tokens=99))
    calls = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert [c["input_tokens"] for c in calls] == [1]


def test_unwritable_spool_drops_counts_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentprof import _safety

    _safety.reset_counters()
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    _runtime.configure(db=str(blocker / "store"))
    try:
        with agentprof.task("t"):
            record("gpt-4o", CanonicalUsage(input_tokens=1, output_tokens=1))
        assert _runtime.flush() is True
        counters = _safety.counters()
    finally:
        _runtime.shutdown()
    assert counters["spool_write_failures"] >= 1
    assert counters["spans_lost"] == 2


def test_response_format_and_tool_choice_are_recorded(spool_rows: Rows) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "label", "schema": {}}},
        "tool_choice": {"type": "function", "function": {"name": "classify"}},
        "tools": [{"type": "function", "function": {"name": "classify", "parameters": {}}}],
    }
    record("gpt-4o", CanonicalUsage(input_tokens=5, output_tokens=1), body=body)
    [call] = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert (call["response_format"], call["tool_choice"], call["tool_count"]) == ("json_schema", "classify", 1)


def test_a_stalled_exporter_bounds_pending_payloads_and_counts_the_drops(tmp_path: Path) -> None:
    import threading

    runtime = _runtime.configure(db=str(tmp_path / "store"), max_queue_size=16, max_export_batch_size=8)
    release = threading.Event()
    exported: list[int] = []
    real_export = runtime.exporter.export

    def stalled(spans: Any) -> Any:
        release.wait()
        exported.append(len(spans))
        return real_export(spans)

    runtime.exporter.export = stalled  # type: ignore[method-assign]
    try:
        for _ in range(200):
            record("gpt-4o", CanonicalUsage(input_tokens=10, output_tokens=1), body={"messages": ["x" * 1000]})
        # The queue holds 16 spans and one batch of 8 may be in flight: older payloads are dropped.
        assert _calls.pending_payloads() <= 16 + 8
        assert runtime.exporter._emitted == 200
    finally:
        release.set()
        _runtime.shutdown()
    assert sum(exported) < 200  # the rest were dropped by the bounded queue, never queued forever
    assert _safety.counters().get("payloads_dropped", 0) == 0  # their spans were dropped (and counted) already


def test_request_bodies_waiting_for_a_stalled_exporter_are_bounded_by_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Late in an agent loop every body is the whole conversation: the count bound alone held gigabytes."""
    import threading

    monkeypatch.setattr(_calls, "MAX_PENDING_BODY_BYTES", 40_000)
    _safety.reset_counters()
    runtime = _runtime.configure(db=str(tmp_path / "store"))  # a queue of 8,192 spans: never the bound here
    release = threading.Event()
    real_export = runtime.exporter.export

    def stalled(spans: Any) -> Any:
        release.wait()
        return real_export(spans)

    runtime.exporter.export = stalled  # type: ignore[method-assign]
    body = {"messages": [{"role": "user", "content": "the whole history " * 300}]}  # ~5.5 kB
    try:
        calls = []
        for _ in range(60):
            calls.append(record("gpt-4o", CanonicalUsage(input_tokens=1500, output_tokens=1), body=body))
            assert 0 < _calls.pending_body_bytes() <= 40_000
        kept = _calls.pending_payloads()
        assert 0 < kept < 10
        # the queued spans still hold their calls: the bodies let go must really be gone
        assert [call.body is not None for call in calls] == [False] * (60 - kept) + [True] * kept
        assert _safety.counters()["payloads_dropped"] == 60 - kept  # every one let go is counted
        release.set()
        assert _runtime.flush()
        assert (_calls.pending_payloads(), _calls.pending_body_bytes()) == (0, 0)  # taken by the exporter
    finally:
        release.set()
        _runtime.shutdown()
    rows = [
        json.loads(line)
        for segment in (tmp_path / "store" / "spool").glob("seg-*.jsonl")
        for line in segment.read_text().splitlines()
    ]
    calls = [row for row in rows if row["kind"] == "model_call"]
    assert len(calls) == 60  # every call is stored, priced; only the dropped ones lack fingerprints
    assert sum(1 for row in calls if row.get("request_fingerprint")) == kept
    assert all(row["cost_usd"] for row in calls)


def test_a_model_call_span_is_built_off_the_callers_thread_with_every_readable_span_field(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    _runtime.configure(db=str(tmp_path / "store"), tracer_provider=provider)
    reads: list[Any] = []

    def usage_from(raw: Any) -> CanonicalUsage:
        reads.append(raw)
        return CanonicalUsage(input_tokens=raw["in"], output_tokens=raw["out"])

    try:
        with agentprof.task("t"):
            call = _calls.start_call("openai", "gpt-4o", request_attributes={"server.address": "api.openai.com"})
            _calls.finish_call(call, raw_usage={"in": 7, "out": 3}, usage_from=usage_from, output="hi")
        assert reads == []  # nothing read the usage on the caller's thread
        spans = {span.name: span for span in exported.get_finished_spans()}
    finally:
        _runtime.shutdown()
    span = spans["chat gpt-4o"]
    task = spans["invoke_agent t"]
    assert isinstance(span, _spans.DeferredSpan)
    assert dict(span.attributes or {})["gen_ai.usage.input_tokens"] == 7 and reads == [{"in": 7, "out": 3}]
    assert span.parent is not None and span.parent.span_id == task.context.span_id
    assert span.start_time == call.start_ns and span.end_time == call.end_ns  # type: ignore[union-attr]
    assert span.kind.name == "CLIENT" and span.status.is_unset and span.resource is task.resource
    # A newer OpenTelemetry SDK that adds a field to ReadableSpan must not go unnoticed.
    assert [field for field in vars(ReadableSpan("x")) if not hasattr(span, field)] == []
    assert json.loads(span.to_json())["attributes"]["gen_ai.provider.name"] == "openai"


def test_usage_read_off_thread_that_fails_is_unknown_and_counted(
    spool_rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentprof import _safety

    monkeypatch.setenv("AGENTPROF_RAISE_INTERNAL_ERRORS", "0")

    def broken(raw: Any) -> CanonicalUsage:
        raise RuntimeError("injected")

    call = _calls.start_call("openai", "gpt-4o")
    _calls.finish_call(call, raw_usage={"in": 1}, usage_from=broken, response_model="gpt-4o")
    [row] = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert row["usage_known"] is False and row["priced"] is False
    assert _safety.counters()["internal_errors.usage_from"] == 1


def test_output_as_text_hashes_like_output_from_a_closure_and_leaves_the_call(spool_rows: Rows) -> None:
    record("gpt-4o", CanonicalUsage(input_tokens=1, output_tokens=1), output="same answer")
    call = _calls.start_call("openai", "gpt-4o")
    token = _calls.bind_request(call)
    _calls.capture_request(b'{"messages": []}', "https://api.openai.com/v1/chat/completions")
    _calls.unbind_request(token)
    _calls.finish_call(call, usage=CanonicalUsage(input_tokens=1, output_tokens=1), output="same answer")
    by_closure, by_text = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert by_text["output_hash"] == by_closure["output_hash"] and by_text["output_chars"] == len("same answer")
    assert call is not None and call.body is None and call.output is None  # the store took them


def test_a_first_chunk_after_the_call_ended_changes_nothing() -> None:
    call = _calls.ModelCall("openai", "chat", "gpt-4o", True, 1, 1, None, None, finished=True)
    _calls.mark_first_chunk(call)
    assert call.first_chunk_ns is None


def test_a_queue_smaller_than_the_default_batch_is_accepted_and_records(tmp_path: Path) -> None:
    # configure(max_queue_size=800) raised the SDK's "max_export_batch_size must be less than or
    # equal to max_queue_size" into the agent: the batch size (2048 by default) was never fitted.
    _runtime.configure(db=str(tmp_path / "store"), max_queue_size=800)
    try:
        record("gpt-4o", CanonicalUsage(input_tokens=10, output_tokens=1))
        assert _runtime.flush()
    finally:
        _runtime.shutdown()
    segments = (tmp_path / "store" / "spool").glob("seg-*.jsonl")
    rows = [json.loads(line) for path in segments for line in path.read_text().splitlines()]
    assert [row["kind"] for row in rows].count("model_call") == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_queue_size", 0), ("max_queue_size", -5), ("schedule_delay_millis", 0), ("max_export_batch_size", 0)],
)
def test_a_bad_queue_setting_is_one_clear_error_and_keeps_the_running_profiler(
    tmp_path: Path, option: str, value: float
) -> None:
    running = _runtime.configure(db=str(tmp_path / "store"))
    try:
        with pytest.raises(agentprof.ConfigError, match=f"^{option} must be"):
            _runtime.configure(db=str(tmp_path / "other"), **{option: value})
        assert _runtime.get_runtime() is running  # the profiler already recording is left as it was
    finally:
        _runtime.shutdown()
