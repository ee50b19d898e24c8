"""OTLP JSON read directly gives exactly what protobuf's JSON parser gives, or steps aside.

``flatten_json`` takes the plain form exporters write and raises ``NotPlain`` for anything else;
whenever it answers, ``decode_json_message`` (the ParseDict route) must answer the same.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentprof.ingest import RequestDecodeError, decode_json
from agentprof.ingest._decode import DecodedRequest, decode_json_message
from agentprof.ingest._json import NotPlain, flatten_json
from tests.ingest.helpers import S, otlp_json, request

VALUES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.request.temperature": 0.25,
    "gen_ai.request.stream": True,
    "gen_ai.response.finish_reasons": ["stop", "length"],
    "llm.invocation_parameters": {"model": "gpt-4o", "n": 2, "nested": {"deep": [1, "x"]}},
    "empty": "",
    "zero": 0,
    "unicode": "héllo ✓ 😀",
}


def base() -> dict[str, Any]:
    message = request(
        [
            S(1, None, "invoke_agent support", {"gen_ai.operation.name": "invoke_agent"}),
            S(2, 1, "chat gpt-4o", VALUES, error=True),
            S(3, 2, "http", {"http.method": "POST"}, start=9),
        ],
        resource={"process.pid": 42, "host.arch": ["x", "y"]},
    )
    span = message.resource_spans[0].scope_spans[0].spans[1]
    event = span.events.add(name="gen_ai.choice", time_unix_nano=5)
    event.attributes.add(key="index", value=request([]).resource_spans[0].resource.attributes[0].value)
    link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(1, 9)))
    link.attributes.add(key="k").value.bool_value = True
    span.attributes.add(key="blob").value.bytes_value = b"\x00\xff"
    return otlp_json(message)


def both(data: dict[str, Any]) -> tuple[DecodedRequest | None, DecodedRequest | str]:
    """(the direct reader's answer or None when it stepped aside, the general route's answer or "error")."""
    try:
        fast: DecodedRequest | None = flatten_json(copy.deepcopy(data))
    except NotPlain:
        fast = None
    try:
        slow: DecodedRequest | str = decode_json_message(copy.deepcopy(data))
    except RequestDecodeError:
        slow = "error"
    return fast, slow


def test_what_exporters_send_is_read_directly_and_alike() -> None:
    fast, slow = both(base())
    assert fast is not None and fast == slow
    assert [span.name for span in fast.spans] == ["invoke_agent support", "chat gpt-4o", "http"]
    assert fast.spans[1].attributes["blob"] == b"\x00\xff" and fast.spans[1].error


def test_the_general_route_still_decides_the_rest() -> None:
    data = base()
    spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["kind"] = "SPAN_KIND_NO_SUCH"  # unknown enum name: ParseDict's rule applies
    spans[1]["start_time_unix_nano"] = "5"  # the proto name: ParseDict takes it too
    spans[2]["spanId"] = "zz"  # malformed hex: the span is rejected, the rest kept
    assert both(data)[0] is None
    decoded = decode_json(json.dumps(data))
    assert decoded.rejected == 1 and "invalid span id" in decoded.first_error
    assert [span.start_ns for span in decoded.spans][1] == 5
    spans[0]["attributes"] = "not a list"
    with pytest.raises(RequestDecodeError):
        decode_json(json.dumps(data))


def paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every dict in ``node``, by path."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        found.append(at)
        for key, value in node.items():
            found += paths(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*at, index))
    return found


NAMES = [
    "resourceSpans", "resource_spans", "scopeSpans", "spans", "resource", "scope", "attributes", "name",
    "traceId", "spanId", "parentSpanId", "trace_id", "kind", "flags", "status", "code", "message", "events",
    "links", "startTimeUnixNano", "endTimeUnixNano", "droppedAttributesCount", "key", "value", "stringValue",
    "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue", "bytesValue", "values", "string_value",
    "timeUnixNano", "traceState", "schemaUrl", "version", "entityRefs", "unknownField",
]  # fmt: skip
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "1", "-3", "007", "1.5", "1e3", "0a0b", "AP8=", "STATUS_CODE_ERROR", "SPAN_KIND_SERVER"])
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(NAMES), inner, max_size=2),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whenever_the_direct_reader_answers_it_agrees(data: st.DataObject) -> None:
    request_data = base()
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths(request_data)))
        node: Any = request_data
        for step in where:
            node = node[step]
        key = data.draw(st.sampled_from(NAMES))
        if data.draw(st.booleans()) and key in node:
            del node[key]
        else:
            node[key] = data.draw(json_values)
    fast, slow = both(request_data)
    if fast is not None:
        assert fast == slow


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_body_decodes_as_the_standard_librarys_parse_of_it_would(data: st.DataObject) -> None:
    # decode_json parses text with orjson, which reads integers beyond 64 bits as floats: the answer
    # must still be the one the standard library's parse gets, error or not.
    request_data = base()
    where = data.draw(st.sampled_from(paths(request_data)))
    node: Any = request_data
    for step in where:
        node = node[step]
    node[data.draw(st.sampled_from(NAMES))] = data.draw(json_values)
    text = json.dumps(request_data)
    fast, slow = both(json.loads(text))
    expected = fast if fast is not None else slow
    try:
        got: DecodedRequest | str = decode_json(text)
    except RequestDecodeError:
        got = "error"
    assert got == expected


def test_integers_beyond_64_bits_get_the_standard_librarys_answer() -> None:
    data = base()
    attributes = data["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"]
    attributes.append({"key": "big", "value": {"intValue": -(2**63) - 1}})  # orjson: -2**63 as a float
    with pytest.raises(RequestDecodeError):
        decode_json_message(json.loads(json.dumps(data)))
    with pytest.raises(RequestDecodeError):
        decode_json(json.dumps(data).encode())
