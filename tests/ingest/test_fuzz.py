"""Property tests: random and truncated payloads never crash ingest nor store partial garbage."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentprof._records import SPOOL_COLUMNS
from agentprof.ingest import RequestDecodeError, TraceMapper, _traces, decode_json, decode_protobuf
from agentprof.ingest._receiver import OtlpReceiver
from tests.ingest.helpers import CHAT_CALL, S, request

KNOWN_KEYS = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.id",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.agent.name",
    "gen_ai.request.temperature",
    "gen_ai.response.time_to_first_chunk",
    "openinference.span.kind",
    "llm.token_count.prompt",
    "llm.input_messages.0.message.content",
    "llm.invocation_parameters",
    "mlflow.spanType",
    "mlflow.chat.tokenUsage",
    "mlflow.spanInputs",
    "operation.cost",
    "langfuse.observation.usage_details",
    "traceloop.span.kind",
    "agentprof.kind",
    "agentprof.task.name",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["chat", "invoke_agent", "LLM", "AGENT", '"LLM"', "[1,2]", '{"input_tokens": 3}', "model_call"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_protobuf_bytes_decode_or_fail_cleanly(body: bytes) -> None:
    try:
        decoded = decode_protobuf(body)
    except RequestDecodeError:
        return
    TraceMapper().map_spans(decoded.spans)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200).map(str.encode), values.map(lambda v: json.dumps(v).encode())))
def test_random_json_decodes_or_fails_cleanly(body: bytes) -> None:
    try:
        decode_json(body)
    except RequestDecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=8), min_size=1, max_size=5))
def test_arbitrary_attribute_values_map_to_well_formed_rows(attribute_sets: list[dict[str, Any]]) -> None:
    spans = [
        S(n + 1, n if n else None, f"span{n}", {k: v for k, v in attrs.items() if v is not None and not _bad(v)})
        for n, attrs in enumerate(attribute_sets)
    ]
    decoded = decode_protobuf(request(spans).SerializeToString())
    for row in TraceMapper().map_spans(decoded.spans).rows:
        assert set(row) <= set(SPOOL_COLUMNS)
        json.dumps(row)  # what the spool writer does
        for key in ("input_tokens", "output_tokens", "cache_read_tokens"):
            assert row.get(key) is None or (isinstance(row[key], int) and row[key] >= 0)


def _bad(value: Any) -> bool:
    """Values OTLP cannot carry (nested nulls are dropped by the helper's encoder)."""
    if isinstance(value, list):
        return any(item is None or _bad(item) for item in value)
    if isinstance(value, dict):
        return any(item is None or _bad(item) for item in value.values())
    return False


CALL = CHAT_CALL


def _full_request() -> bytes:
    """Three resource spans, each a whole trace: truncation can only keep whole traces."""
    message = request([S(1, None, "invoke_agent a", {"gen_ai.operation.name": "invoke_agent"}, trace="a" * 32)])
    for n, trace in ((10, "b" * 32), (20, "c" * 32)):
        extra = request([S(n, None, "agent run", {}, trace=trace), S(n + 1, n, "chat gpt-4o", CALL, trace=trace)])
        message.resource_spans.extend(extra.resource_spans)
    return message.SerializeToString()


FULL = _full_request()


def _post(url: str, body: bytes, content_type: str) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:  # closes the connection now, not when a collection finds it (a ResourceWarning)
            return int(error.code)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_and_random_payloads_over_http(tmp_path_factory: Any, data: st.DataObject) -> None:
    spool: Path = tmp_path_factory.mktemp("spool")
    with OtlpReceiver(spool, port=0) as receiver:
        for _ in range(3):
            kind = data.draw(st.sampled_from(["truncated", "random", "json"]))
            if kind == "truncated":
                body, content_type = FULL[: data.draw(st.integers(0, len(FULL)))], "application/x-protobuf"
            elif kind == "random":
                body, content_type = data.draw(st.binary(max_size=200)), "application/x-protobuf"
            else:
                text = json.dumps(json.loads(json.dumps({"resourceSpans": []})))
                body, content_type = text[: data.draw(st.integers(0, len(text)))].encode(), "application/json"
            assert _post(receiver.url + "/v1/traces", body, content_type) in (200, 400)
        assert _post(receiver.url + "/v1/traces", FULL, "application/x-protobuf") == 200  # still serving
    expected = {row["span_id"]: row for row in TraceMapper().map_spans(decode_protobuf(FULL).spans).rows}
    stored = [json.loads(line) for segment in spool.glob("seg-*.jsonl") for line in segment.read_text().splitlines()]
    assert {row["span_id"] for row in stored} == set(expected)
    for row in stored:  # each stored row is exactly what the whole request gives: nothing partial
        assert row == expected[row["span_id"]]


def _column_accepts(kind: str, value: Any) -> Any:
    """The spec of a received value in a column of DuckDB type ``kind``: the value to store, or ``_DROP``."""
    if kind == "VARCHAR":
        return value if type(value) is str else _DROP
    if kind in ("BIGINT", "INTEGER"):
        limit = 2**63 if kind == "BIGINT" else 2**31
        return value if type(value) is int and -limit < value < limit else _DROP
    if kind == "BOOLEAN":
        return value if type(value) is bool else _DROP
    if kind == "DOUBLE":
        if type(value) is float:
            return value if math.isfinite(value) else _DROP
        if type(value) is int:
            return float(value) if abs(value) < 2**1023 else _DROP
    return _DROP


_DROP = object()
_COLUMNS = sorted(SPOOL_COLUMNS)
_any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), 2**63 - 1, 2**63, 2**1100]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*_COLUMNS, "not_a_column"]), _any_value, max_size=12))
def test_received_values_are_kept_only_when_their_column_can_hold_them(values: dict[str, Any]) -> None:
    row = {**values, "kind": "model_call", "span_id": "00000000000000aa"}
    typed = _traces._typed(row)
    assert typed is not None
    for key, value in values.items():
        if key in ("kind", "span_id"):
            continue
        wanted = _column_accepts(SPOOL_COLUMNS.get(key, ""), value)
        if wanted is _DROP or value is None:
            assert key not in typed, (key, value)
        else:
            assert typed[key] == wanted and type(typed[key]) is type(wanted), (key, value, typed.get(key))


def test_a_row_without_a_known_kind_or_a_span_id_is_dropped() -> None:
    assert _traces._typed({"kind": "model_call", "span_id": "aa"}) == {"kind": "model_call", "span_id": "aa"}
    assert _traces._typed({"kind": "log", "span_id": "aa"}) is None
    assert _traces._typed({"kind": "model_call", "span_id": ""}) is None
    assert _traces._typed({"kind": "model_call", "span_id": 7}) is None


def test_edge_values_per_column_type() -> None:
    row = {
        "kind": "model_call",
        "span_id": "aa",
        "temperature": 2**1100,  # DOUBLE: an int with no float is dropped, not an error
        "ttft_ms": 3,  # DOUBLE: an int becomes a float
        "input_tokens": True,  # BIGINT: a bool is not a count
        "output_tokens": 2**63,  # BIGINT: out of range
        "stream": 1,  # BOOLEAN: an int is not a bool
        "response_id": 5,  # VARCHAR: an int is not text
    }
    assert _traces._typed(row) == {"kind": "model_call", "span_id": "aa", "ttft_ms": 3.0}
