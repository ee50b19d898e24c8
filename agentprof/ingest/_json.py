"""OTLP JSON trace requests flattened straight from the parsed JSON, without building protobuf messages.

The general route (:func:`agentprof.ingest._decode.decode_json`) rewrites the hex ids, hands the
dict to protobuf's ``json_format.ParseDict`` (pure Python, ~200 µs a span: JSON requests were
accepted ~20× slower than protobuf ones) and flattens the message. :func:`flatten_json` reads
the dict directly and gives the same :class:`~agentprof.ingest._decode.DecodedRequest`, but only
for what it is sure ``ParseDict`` reads the same way: the lowerCamelCase names OTLP exporters
write, ids as hex text, integers as JSON numbers or decimal strings in range, enums as their
numbers or names, finite doubles, no ``null``, no string with a lone surrogate. Anything else
(snake_case names, ``null``, an unexpected type, ...) raises :class:`NotPlain` and the general
route decides, so a malformed request is rejected with the same answer as before. Fields it does
not use (events, links, flags ...) are still checked, for the same reason.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from agentprof.ingest._decode import DecodedRequest, FlatSpan, invalid_ids

_STATUS_ERROR = 2
_ZERO_SPAN = bytes(8)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs: any left is alone
_DECIMAL = re.compile(r"-?[0-9]+")
_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_UINT32 = 2**32
_UINT64 = 2**64
_INT64 = 2**63
#: The protobuf field names whose JSON name differs: ParseDict takes either, this reader only the JSON one.
_SNAKE_NAMES = frozenset(
    {
        "resource_spans",
        "scope_spans",
        "schema_url",
        "dropped_attributes_count",
        "entity_refs",
        "trace_id",
        "span_id",
        "trace_state",
        "parent_span_id",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "dropped_events_count",
        "dropped_links_count",
        "time_unix_nano",
        "key_strindex",
        "string_value",
        "bool_value",
        "int_value",
        "double_value",
        "array_value",
        "kvlist_value",
        "bytes_value",
        "string_value_strindex",
        "keyStrindex",
        "stringValueStrindex",
    }
)
_VALUE_KINDS = frozenset(
    {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"}
)


class NotPlain(Exception):
    """The request is not in the plain form this reader takes: the general route decodes it."""


def flatten_json(data: Mapping[str, Any]) -> DecodedRequest:
    """The valid spans of a parsed OTLP JSON request, as ``flatten(ParseDict(...))`` gives them.

    Raises:
        NotPlain: Something this reader does not take; nothing was changed in ``data``.
    """
    _names(data)
    result = DecodedRequest(spans=[])
    for resource_spans in _list(data.get("resourceSpans", [])):
        resource_spans = _dict(resource_spans)
        _names(resource_spans)
        _string(resource_spans.get("schemaUrl", ""))
        resource_data = _dict(resource_spans.get("resource", {}))
        _names(resource_data)
        _uint(resource_data.get("droppedAttributesCount", 0), _UINT32)
        if _list(resource_data.get("entityRefs", [])):
            raise NotPlain
        resource = _attributes(resource_data.get("attributes", []))
        for scope_spans in _list(resource_spans.get("scopeSpans", [])):
            scope_spans = _dict(scope_spans)
            _names(scope_spans)
            _string(scope_spans.get("schemaUrl", ""))
            scope = _dict(scope_spans.get("scope", {}))
            _names(scope)
            scope_name = _string(scope.get("name", ""))
            _string(scope.get("version", ""))
            _attributes(scope.get("attributes", []))
            _uint(scope.get("droppedAttributesCount", 0), _UINT32)
            for span in _list(scope_spans.get("spans", [])):
                _span(span, resource, scope_name, result)
    return result


def _span(span: Any, resource: dict[str, Any], scope_name: str, result: DecodedRequest) -> None:
    span = _dict(span)
    _names(span)
    trace_id = _id(span.get("traceId", ""))
    span_id = _id(span.get("spanId", ""))
    parent_span_id = _id(span.get("parentSpanId", ""))
    name = _string(span.get("name", ""))
    _string(span.get("traceState", ""))
    _uint(span.get("flags", 0), _UINT32)
    _enum(span.get("kind", 0), _SPAN_KINDS)
    start_ns = _uint(span.get("startTimeUnixNano", 0), _UINT64)
    end_ns = _uint(span.get("endTimeUnixNano", 0), _UINT64)
    for key in ("droppedAttributesCount", "droppedEventsCount", "droppedLinksCount"):
        _uint(span.get(key, 0), _UINT32)
    for event in _list(span.get("events", [])):
        event = _dict(event)
        _names(event)
        _uint(event.get("timeUnixNano", 0), _UINT64)
        _string(event.get("name", ""))
        _attributes(event.get("attributes", []))
        _uint(event.get("droppedAttributesCount", 0), _UINT32)
    for link in _list(span.get("links", [])):
        link = _dict(link)
        _names(link)
        _id(link.get("traceId", ""))
        _id(link.get("spanId", ""))
        _string(link.get("traceState", ""))
        _attributes(link.get("attributes", []))
        _uint(link.get("droppedAttributesCount", 0), _UINT32)
        _uint(link.get("flags", 0), _UINT32)
    status = _dict(span.get("status", {}))
    _names(status)
    _string(status.get("message", ""))
    code = _enum(status.get("code", 0), _STATUS_CODES)
    attributes = _attributes(span.get("attributes", []))
    problem = invalid_ids(trace_id, span_id, parent_span_id)
    if problem:
        result.rejected += 1
        result.first_error = result.first_error or f"span {name!r}: {problem}"
        return
    result.spans.append(
        FlatSpan(
            trace_id.hex(),
            span_id.hex(),
            parent_span_id.hex() if parent_span_id and parent_span_id != _ZERO_SPAN else None,
            name,
            start_ns,
            max(end_ns, start_ns),
            code == _STATUS_ERROR,
            attributes,
            resource,
            scope_name,
        )
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in _list(pairs):
        if type(pair) is not dict:
            raise NotPlain
        key: Any = ""
        value: Any = None
        for name, item in pair.items():  # one pass: names checked, values picked
            if item is None or name in _SNAKE_NAMES:
                raise NotPlain
            if name == "key":
                key = _string(item)
            elif name == "value":
                value = _value(item)
        result[key] = value
    return result


def _value(value: Any) -> Any:
    """An ``AnyValue`` as plain Python, as ``any_value`` gives it (``None`` when no case is set)."""
    if type(value) is not dict:
        raise NotPlain
    kind = ""
    item: Any = None
    for name, given in value.items():
        if given is None or name in _SNAKE_NAMES:
            raise NotPlain
        if name in _VALUE_KINDS:
            if kind:
                raise NotPlain  # ParseDict refuses a oneof set twice
            kind, item = name, given
    if kind == "stringValue":
        return _string(item)
    if not kind:
        return None
    if kind == "intValue":
        return _int(item, -_INT64, _INT64)
    if kind == "boolValue":
        if type(item) is not bool:
            raise NotPlain
        return item
    if kind == "doubleValue":
        return _double(item)
    if kind == "bytesValue":
        return _bytes(item)
    listed = _dict(item)
    _names(listed)
    if kind == "arrayValue":
        return [_value(element) for element in _list(listed.get("values", []))]
    return _attributes(listed.get("values", []))


def _double(item: Any) -> float:
    if type(item) is not float and type(item) is not int:
        raise NotPlain
    try:
        number = float(item)
    except OverflowError:
        raise NotPlain from None
    if number != number or number in (float("inf"), float("-inf")):
        raise NotPlain  # ParseDict wants these quoted
    return number


def _bytes(item: Any) -> bytes:
    if type(item) is not str:
        raise NotPlain
    encoded = item.encode("utf-8")
    try:
        return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))
    except ValueError:
        raise NotPlain from None


def _names(data: Mapping[str, Any]) -> None:
    """Refuse names ParseDict also takes in another spelling, and ``null`` values."""
    if not _SNAKE_NAMES.isdisjoint(data.keys()) or None in data.values():
        raise NotPlain


def _dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise NotPlain
    return value


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise NotPlain
    return value


def _string(value: Any) -> str:
    if type(value) is not str or (not value.isascii() and _LONE_SURROGATE.search(value)):
        raise NotPlain
    return value


def _id(value: Any) -> bytes:
    """A hex id; malformed hex is an empty id, which validation rejects (as the general route does)."""
    try:
        return bytes.fromhex(_string(value))
    except ValueError:
        return b""


def _int(value: Any, low: int, high: int) -> int:
    if type(value) is int:
        number = value
    elif type(value) is str and value.isascii() and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise NotPlain
    if not low <= number < high:
        raise NotPlain
    return number


def _uint(value: Any, high: int) -> int:
    return _int(value, 0, high)


def _enum(value: Any, names: Mapping[str, int]) -> int:
    if type(value) is str and value in names:
        return names[value]
    if type(value) is int and value in names.values():
        return value
    raise NotPlain
