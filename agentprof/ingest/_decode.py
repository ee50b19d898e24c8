"""OTLP trace requests (protobuf bytes, OTLP JSON) decoded into flat, validated spans.

The receiver and the importer both end here, so the rules live once: ids must have their OTLP
lengths (16-byte trace, 8-byte span, empty or 8-byte parent) and must not be all zero; a span
that breaks them is *rejected* (counted for ``partial_success``), never stored half-right.
Attribute values become plain Python (``AnyValue`` decoded recursively; ``*_strindex`` fields,
used only by profiles, are ignored). OTLP JSON differs from the protobuf JSON mapping in one
way that matters: ids are hex, not base64, so they are converted before parsing. The plain form
exporters write is read directly (:mod:`._json`), ~20x faster than protobuf's JSON parser,
which still decides everything else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_STATUS_ERROR = 2
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class RequestDecodeError(ValueError):
    """The request body is not an ``ExportTraceServiceRequest`` (answered with 400)."""


@dataclass(slots=True)
class FlatSpan:
    """One received span with its resource and scope, ids as lowercase hex."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    error: bool
    attributes: dict[str, Any]
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    #: What the span holds in memory, roughly (see :func:`weigh`); 0 until first weighed.
    weight: int = 0


#: What a span costs in memory besides its attribute values (the object, its ids, its dict).
SPAN_OVERHEAD = 512


def weigh(span: FlatSpan) -> int:
    """The span's approximate size in bytes: its attribute values' characters plus a fixed overhead.

    Why: what a received span costs is nearly all content (messages, system instructions, tool
    definitions: kilobytes to megabytes per span), so queues and buffers bounded by span *counts*
    alone let a burst of large spans take gigabytes. Computed once per span (~1 µs) and kept.
    """
    weight = span.weight
    if not weight:
        weight = SPAN_OVERHEAD + len(span.name)
        for key, value in span.attributes.items():  # most values are strings: no call for those
            weight += len(key) + (len(value) if type(value) is str else value_weight(value))
        span.weight = weight
    return weight


def value_weight(value: Any) -> int:
    """Characters of the strings in an attribute value (nested lists and maps included), 8 per other item."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)
    if kind is dict:
        return sum(len(key) + value_weight(item) for key, item in value.items())
    if kind is list or kind is tuple:
        return sum(map(value_weight, value)) + 8 * len(value)
    return 8


@dataclass(frozen=True, slots=True)
class Shard:
    """Share ``index`` of ``count`` disjoint shares of all traces, by the last byte of the trace id.

    Every span of a trace is in the same share (a receiver process assembles whole traces), and
    random trace ids spread evenly. A rejected span (broken ids) belongs to share 0 only, so that
    the shares' counts add up to the request's.
    """

    index: int
    count: int

    def owns(self, trace_id: bytes) -> bool:
        """Whether a valid (16-byte) trace id is in this share."""
        return trace_id[-1] % self.count == self.index

    def restrict(self, decoded: DecodedRequest) -> DecodedRequest:
        """The part of an already decoded request in this share."""
        owns = self.index
        count = self.count
        return DecodedRequest(
            spans=[span for span in decoded.spans if int(span.trace_id[-2:], 16) % count == owns],
            rejected=decoded.rejected if owns == 0 else 0,
            first_error=decoded.first_error if owns == 0 else "",
        )


@dataclass(slots=True)
class DecodedRequest:
    """The valid spans of one request and how many were rejected (and why, for the first)."""

    spans: list[FlatSpan]
    rejected: int = 0
    first_error: str = ""


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as plain Python (``None`` when unset)."""
    kind = value.WhichOneof("value")
    if kind is None or kind == "string_value_strindex":
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


def attributes_of(pairs: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict (later duplicates win, as in the SDK)."""
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        value = pair.value
        # Most values are strings: a non-empty string_value can only be the oneof's case, which
        # saves asking which case is set (the decoder's largest cost per attribute).
        text = value.string_value
        result[pair.key] = text if text else any_value(value)
    return result


def decode_protobuf(body: bytes, shard: Shard | None = None) -> DecodedRequest:
    """Decode a binary ``ExportTraceServiceRequest`` (only the spans in ``shard``, if given).

    Raises:
        RequestDecodeError: The bytes are not a valid message.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise RequestDecodeError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    return flatten(request, shard)


def decode_json(body: bytes | str | Mapping[str, Any], shard: Shard | None = None) -> DecodedRequest:
    """Decode an OTLP JSON ``ExportTraceServiceRequest`` (hex ids; unknown fields ignored).

    With ``shard``, only its spans are kept (the whole body is still read and checked).

    Raises:
        RequestDecodeError: Not JSON, not an object, or not the message's shape.
    """
    # orjson parses twice as fast, but reads an integer beyond 64 bits as a float: its result only
    # feeds the direct reader, which refuses such numbers (NotPlain) or reads them as doubles
    # alike; the general route always gets the standard library's parse.
    reparse: bytes | str | None = None  # the text orjson parsed, if it did
    if isinstance(body, Mapping):
        data: Any = body
    else:
        try:
            data, reparse = orjson.loads(body), body
        except orjson.JSONDecodeError:
            data = _stdlib_json(body)
    if not isinstance(data, dict):
        raise RequestDecodeError("not an OTLP JSON ExportTraceServiceRequest: the top level is not an object")
    from agentprof.ingest._json import NotPlain, flatten_json

    try:
        decoded = flatten_json(data)  # the plain form exporters send, read directly: ~20x faster than ParseDict
    except (NotPlain, RecursionError):  # anything else: the general route decides
        decoded = decode_json_message(data if reparse is None else _stdlib_json(reparse))
    return decoded if shard is None else shard.restrict(decoded)


def _stdlib_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestDecodeError(f"not JSON: {exc}") from None


def decode_json_message(data: dict[str, Any]) -> DecodedRequest:
    """Decode a parsed OTLP JSON request through protobuf's JSON parser (rewrites ``data``'s ids in place).

    Raises:
        RequestDecodeError: Not the message's shape.
    """
    try:
        _hex_ids_to_base64(data)
        request = json_format.ParseDict(data, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RequestDecodeError(f"not an OTLP JSON ExportTraceServiceRequest: {message}") from None
    return flatten(request)


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    """Rewrite hex ids in place into the base64 the protobuf JSON parser expects.

    A malformed id becomes empty, so the span is rejected by validation rather than the
    whole request failing.
    """
    for resource_spans in _list(data, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _fix_ids(span)
                for link in _list(span, "links"):
                    _fix_ids(link)


def _list(container: Any, *keys: str) -> Iterator[Any]:
    if not isinstance(container, dict):
        return
    for key in keys:
        value = container.get(key)
        if isinstance(value, list):
            yield from value


def _fix_ids(span: Any) -> None:
    if not isinstance(span, dict):
        return
    for key in _ID_KEYS:
        value = span.get(key)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = b""
            span[key] = base64.b64encode(raw).decode("ascii")


def flatten(request: ExportTraceServiceRequest, shard: Shard | None = None) -> DecodedRequest:
    """Validate and flatten every span of ``request`` (only those in ``shard``, if given).

    Spans of other shares are skipped before their attributes are read: that is most of the cost.
    """
    result = DecodedRequest(spans=[])
    counts_rejections = shard is None or shard.index == 0
    append = result.spans.append
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                trace_id, span_id, parent_span_id = span.trace_id, span.span_id, span.parent_span_id
                problem = invalid_ids(trace_id, span_id, parent_span_id)
                if problem:
                    if counts_rejections:
                        result.rejected += 1
                        result.first_error = result.first_error or f"span {span.name!r}: {problem}"
                    continue
                if shard is not None and not shard.owns(trace_id):
                    continue
                start_ns = span.start_time_unix_nano
                append(
                    FlatSpan(
                        trace_id.hex(),
                        span_id.hex(),
                        parent_span_id.hex() if parent_span_id and parent_span_id != _ZERO_SPAN else None,
                        span.name,
                        start_ns,
                        max(span.end_time_unix_nano, start_ns),
                        span.status.code == _STATUS_ERROR,
                        attributes_of(span.attributes),
                        resource,
                        scope_name,
                    )
                )
    return result


def invalid_ids(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str:
    """Why these ids make a span invalid (empty when they are valid)."""
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return f"invalid trace id ({len(trace_id)} bytes)"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return f"invalid span id ({len(span_id)} bytes)"
    if parent_span_id and len(parent_span_id) != 8:
        return f"invalid parent span id ({len(parent_span_id)} bytes)"
    return ""
