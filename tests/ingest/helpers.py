"""Hand-built OTLP requests: spans as the other instrumentation families put them on the wire."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE = "0af7651916cd43dd8448eb211c80319c"
#: A minimal OTel GenAI chat span's attributes (priced: gpt-4o, 100 in, 10 out).
CHAT_CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 10,
}
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def sid(n: int) -> str:
    """A deterministic span id (16 hex digits)."""
    return f"{n:016x}"


@dataclass
class S:
    """One span to build: id number, parent number, name and attributes."""

    n: int
    parent: int | None
    name: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    error: bool = False
    trace: str = TRACE
    start: int = 0


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list | tuple):
        result = AnyValue()
        result.array_value.values.extend(any_value(item) for item in value)
        return result
    if isinstance(value, dict):
        result = AnyValue()
        result.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return result
    raise TypeError(value)


def request(
    spans: Sequence[S],
    *,
    service: str = "svc",
    scope: str = "test.scope",
    resource: Mapping[str, Any] | None = None,
) -> ExportTraceServiceRequest:
    """One request with one resource and one scope holding ``spans``."""
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    attributes = {"service.name": service, **(resource or {})}
    resource_spans.resource.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    for index, spec in enumerate(spans):
        span = Span(
            trace_id=bytes.fromhex(spec.trace),
            span_id=bytes.fromhex(sid(spec.n)),
            parent_span_id=bytes.fromhex(sid(spec.parent)) if spec.parent is not None else b"",
            name=spec.name,
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=T0 + (spec.start or index) * 1_000_000,
            end_time_unix_nano=T0 + (spec.start or index) * 1_000_000 + 500_000_000,
            status=Status(code=Status.STATUS_CODE_ERROR if spec.error else Status.STATUS_CODE_UNSET),
        )
        span.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in spec.attributes.items())
        scope_spans.spans.append(span)
    return message


def otlp_json(message: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP JSON form of a request: protobuf JSON with hex ids (as the Collector writes it)."""
    import base64

    from google.protobuf import json_format

    data: dict[str, Any] = json_format.MessageToDict(message)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return data
