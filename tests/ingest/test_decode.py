"""Attribute values of every ``AnyValue`` kind decode to plain Python, empty strings included."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentprof.ingest import decode_protobuf
from tests.ingest.helpers import S, request


def test_every_value_kind() -> None:
    values = {
        "text": "x",
        "empty": "",
        "zero": 0,
        "number": -7,
        "ratio": 0.5,
        "flag": False,
        "list": ["a", 1, ["b"]],
        "map": {"k": "v", "n": {"m": 2}},
    }
    message = request([S(1, None, "span", values)])
    span = message.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.append(KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\x01")))
    span.attributes.append(KeyValue(key="unset", value=AnyValue()))
    span.attributes.append(KeyValue(key="text", value=AnyValue(string_value="later wins")))
    [decoded] = decode_protobuf(message.SerializeToString()).spans
    assert decoded.attributes == {**values, "text": "later wins", "blob": b"\x00\x01", "unset": None}
    assert type(decoded.attributes["zero"]) is int and type(decoded.attributes["flag"]) is bool
