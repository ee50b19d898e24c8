"""One mapping from a finished span (plus its parked payload) to a spool record.

Runs on the exporter thread. Everything expensive that the caller's thread skipped happens
here: fingerprinting the request body, hashing the output, serialising the raw usage block and
pricing the call. Pricing is separate from token extraction, so a pricing failure never loses
the tokens: the call is then stored as unpriced with the reason.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from agentprof import _safety
from agentprof import _semconv as sc
from agentprof._calls import Payload
from agentprof._fingerprint import RequestFingerprints, fingerprint_request, output_fingerprint
from agentprof._records import SpoolRow, money_text
from agentprof._usage import CanonicalUsage

if TYPE_CHECKING:
    from agentprof.pricing import ModelRef, PriceResult

_PID = os.getpid()


class Pricer(Protocol):
    """Prices one call as :func:`agentprof.pricing.price_call` does (the default)."""

    def __call__(
        self, usage: CanonicalUsage | None, ref: ModelRef, *, timestamp: datetime, user_prices: Any
    ) -> PriceResult:
        """The call's cost, or why it has none."""
        ...


@functools.lru_cache(maxsize=4096)
def _model_ref(provider: str | None, model: str | None, base_url: str | None) -> ModelRef:
    """``resolve_model``, which is pure: a service calls few models, through few endpoints."""
    from agentprof.pricing import resolve_model

    return resolve_model(provider, model, base_url)


def set_fingerprint_fields(row: SpoolRow, fingerprints: RequestFingerprints) -> None:
    """Put what the analyses read of a request's fingerprints into a spool row (live and received spans alike)."""
    row["request_fingerprint"] = fingerprints.request
    row["prefix_fingerprints"] = fingerprints.prefixes_json
    row["cache_breakpoints"] = fingerprints.cache_breakpoints
    row["tool_count"] = fingerprints.tool_count
    row["response_format"] = fingerprints.response_format
    row["tool_choice"] = fingerprints.tool_choice


#: What the analyses read of a model call beyond usage and cost, as span attributes: (attribute, spool
#: column, type). The OTLP tee adds them to exported model-call spans (:func:`agentprof._otlp.with_analysis`)
#: and the mapping reads them back when a span arrives without its payload (``agentprof serve``
#: receiving another process's spans), so a store fed over OTLP holds the fingerprints and output
#: hashes the cache, duplicate and retry rules need, as the local store does.
ANALYSIS_ATTRIBUTES: tuple[tuple[str, str, type], ...] = (
    (sc.AGENTPROF_REQUEST_FINGERPRINT, "request_fingerprint", str),
    (sc.AGENTPROF_PREFIX_FINGERPRINTS, "prefix_fingerprints", str),
    (sc.AGENTPROF_CACHE_BREAKPOINTS, "cache_breakpoints", int),
    (sc.AGENTPROF_TOOL_COUNT, "tool_count", int),
    (sc.AGENTPROF_RESPONSE_FORMAT, "response_format", str),
    (sc.AGENTPROF_TOOL_CHOICE, "tool_choice", str),
    (sc.AGENTPROF_OUTPUT_HASH, "output_hash", str),
    (sc.AGENTPROF_OUTPUT_CHARS, "output_chars", int),
    (sc.AGENTPROF_RAW_USAGE, "raw_usage", str),
)


def _analysis_from_attributes(row: SpoolRow, attributes: Mapping[str, Any]) -> None:
    """Fill a model call's :data:`ANALYSIS_ATTRIBUTES` columns from its span (values of another type are ignored)."""
    for attribute, column, kind in ANALYSIS_ATTRIBUTES:
        value = attributes.get(attribute)
        if isinstance(value, kind) and not isinstance(value, bool):
            row[column] = value


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _raw_usage_json(raw: Any) -> str | None:
    if raw is None:
        return None
    dump = getattr(raw, "model_dump", None)
    data = dump(mode="json", exclude_none=True) if callable(dump) else raw
    return json.dumps(data, separators=(",", ":"), default=str)


def usage_from_attributes(attributes: Mapping[str, Any]) -> CanonicalUsage | None:
    """Rebuild canonical usage from GenAI attributes; ``None`` when usage is unknown."""
    if attributes.get(sc.AGENTPROF_USAGE_KNOWN) is False:
        return None
    input_tokens = _int(attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS))
    output_tokens = _int(attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS))
    if input_tokens is None and output_tokens is None:
        return None
    cache_write = _int(attributes.get(sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS))
    if cache_write is None:
        cache_write = _int(attributes.get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS))
    return CanonicalUsage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=_int(attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)) or 0,
        cache_write_tokens=cache_write or 0,
        cache_write_5m_tokens=_int(attributes.get(sc.AGENTPROF_CACHE_WRITE_5M)),
        cache_write_1h_tokens=_int(attributes.get(sc.AGENTPROF_CACHE_WRITE_1H)),
        reasoning_tokens=_int(attributes.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)) or 0,
    )


class SpanFields(NamedTuple):
    """The span fields a spool row needs besides attributes: ids as lowercase hex, times in ns.

    A named tuple rather than a frozen dataclass: one is built per span, and a receiver maps
    tens of thousands a second (a frozen dataclass takes four times as long to build).
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    error: bool


_PRICED_BY_REQUEST_MODEL = frozenset({"aws.bedrock", "gcp.vertex_ai"})


class SpanMapper:
    """Turns spans into spool rows; holds what is loaded once (user prices)."""

    def __init__(self, service_name: str, *, pricer: Pricer | None = None) -> None:
        self.service_name = service_name
        self._user_prices: Any = None
        self._user_prices_loaded = False
        self._pricer = pricer

    def _prices(self) -> Any:
        if not self._user_prices_loaded:
            self._user_prices_loaded = True
            try:
                from agentprof.pricing import UserPrices

                self._user_prices = UserPrices.load()
            except Exception as exc:  # a bad prices table must not stop recording
                _safety.count("user_prices_errors")
                _safety.logger.warning("agentprof: user prices ignored: %s", exc)
        return self._user_prices

    def map(self, span: ReadableSpan, payload: Payload | None) -> SpoolRow | None:
        """Return the spool row for ``span``, or ``None`` for spans agentprof does not store."""
        context = span.context
        assert context is not None
        fields = SpanFields(
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
            parent_span_id=format(span.parent.span_id, "016x") if span.parent else None,
            name=span.name,
            start_ns=span.start_time or 0,
            end_ns=span.end_time or 0,
            error=span.status.status_code is StatusCode.ERROR,
        )
        return self.map_fields(fields, span.attributes or {}, payload)

    def map_fields(
        self,
        fields: SpanFields,
        attributes: Mapping[str, Any],
        payload: Payload | None,
        *,
        service_name: str | None = None,
        pid: int | None = _PID,
    ) -> SpoolRow | None:
        """Map a span given as plain fields plus agentprof/GenAI attributes.

        The one mapping shared by live spans (:meth:`map`) and spans received over OTLP or
        imported from files (:mod:`agentprof.ingest`), so both are stored and priced alike.
        ``service_name`` and ``pid`` default to this mapper's service and this process.
        """
        kind = attributes.get(sc.AGENTPROF_KIND)
        if kind not in (sc.KIND_TASK, sc.KIND_STEP, sc.KIND_MODEL_CALL):
            return None
        row: SpoolRow = {
            "kind": kind,
            "trace_id": fields.trace_id,
            "span_id": fields.span_id,
            "parent_span_id": fields.parent_span_id,
            "name": fields.name,
            "start_time_ns": fields.start_ns,
            "end_time_ns": fields.end_ns,
            "status": "error" if fields.error else "ok",
            "error_type": attributes.get(sc.ERROR_TYPE),
            "task_id": attributes.get(sc.AGENTPROF_TASK_ID),
            "task_name": attributes.get(sc.AGENTPROF_TASK_NAME, sc.UNTRACKED_TASK),
            "step_name": attributes.get(sc.AGENTPROF_STEP_NAME),
            "step_kind": attributes.get(sc.AGENTPROF_STEP_KIND),
            "step_path": attributes.get(sc.AGENTPROF_STEP_PATH),
            "tool_args_hash": attributes.get(sc.AGENTPROF_TOOL_ARGS_HASH),
            "tool_result_hash": attributes.get(sc.AGENTPROF_TOOL_RESULT_HASH),
            "service_name": service_name or self.service_name,
            "pid": pid,
        }
        if kind == sc.KIND_TASK:
            user = {
                key[len(sc.AGENTPROF_ATTRIBUTE_PREFIX) :]: value
                for key, value in attributes.items()
                if key.startswith(sc.AGENTPROF_ATTRIBUTE_PREFIX)
            }
            row["attributes"] = json.dumps(user, default=str) if user else None
            row["success"] = attributes.get(sc.AGENTPROF_TASK_SUCCESS)
            row["score"] = attributes.get(sc.AGENTPROF_TASK_SCORE)
            row["outcome_explicit"] = bool(attributes.get(sc.AGENTPROF_TASK_OUTCOME_EXPLICIT, False))
        elif kind == sc.KIND_MODEL_CALL:
            self._map_model_call(row, fields.start_ns, attributes, payload)
        return row

    def _map_model_call(
        self, row: SpoolRow, start_ns: int, attributes: Mapping[str, Any], payload: Payload | None
    ) -> None:
        provider = attributes.get(sc.GEN_AI_PROVIDER_NAME) or attributes.get(sc.GEN_AI_SYSTEM)
        if not isinstance(provider, str):  # a received span may carry any value (a list crashed the look-up below)
            provider = None
        request_model = attributes.get(sc.GEN_AI_REQUEST_MODEL)
        response_model = attributes.get(sc.GEN_AI_RESPONSE_MODEL)
        usage = usage_from_attributes(attributes)
        finish = attributes.get(sc.GEN_AI_RESPONSE_FINISH_REASONS)
        row.update(
            operation=attributes.get(sc.GEN_AI_OPERATION_NAME),
            provider=provider,
            request_model=request_model,
            response_model=response_model,
            server_address=attributes.get(sc.SERVER_ADDRESS),
            stream=attributes.get(sc.GEN_AI_REQUEST_STREAM),
            stream_complete=attributes.get(sc.AGENTPROF_STREAM_COMPLETE),
            usage_known=usage is not None,
            ttft_ms=attributes.get(sc.AGENTPROF_TTFT_MS),
            finish_reasons=json.dumps(list(finish)) if finish else None,
            temperature=attributes.get(sc.GEN_AI_REQUEST_TEMPERATURE),
            response_id=attributes.get(sc.GEN_AI_RESPONSE_ID),
            attempts=attributes.get(sc.AGENTPROF_ATTEMPTS),
            step_name=row["step_name"] or sc.UNTRACKED_TASK,
        )
        if usage is not None:
            row.update(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_write_5m_tokens=usage.cache_write_5m_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            )
        base_url = payload.base_url if payload is not None else attributes.get(sc.AGENTPROF_BASE_URL)
        if payload is not None:
            self._map_payload(row, payload, str(provider or ""))
        else:
            _analysis_from_attributes(row, attributes)
        # Bedrock and Vertex answer with Anthropic's model name, but bill by their own model id
        # (a `global.` inference profile costs more than a regional one): price by the request.
        priced_model = (
            (request_model or response_model)
            if provider in _PRICED_BY_REQUEST_MODEL
            else (response_model or request_model)
        )
        self._price(row, usage, provider, priced_model, base_url, start_ns)

    def _map_payload(self, row: SpoolRow, payload: Payload, provider: str) -> None:
        try:
            row["raw_usage"] = _raw_usage_json(payload.raw_usage)
        except Exception as exc:
            _safety.internal_error("mapping.raw_usage", exc)
        if payload.body is not None:
            fingerprints = fingerprint_request(payload.body, provider)
            if fingerprints is not None:
                set_fingerprint_fields(row, fingerprints)
                messages = fingerprints.messages if payload.capture_content else None  # parsed on demand
                if messages is not None:
                    row["input_messages"] = json.dumps(messages, ensure_ascii=False)
        if payload.output is not None:
            try:
                text = payload.output()
            except Exception as exc:
                _safety.internal_error("mapping.output", exc)
            else:
                row["output_hash"], row["output_chars"] = output_fingerprint(text)
                if payload.capture_content:
                    row["output_text"] = text

    def _price(
        self,
        row: SpoolRow,
        usage: CanonicalUsage | None,
        provider: Any,
        model: Any,
        base_url: Any,
        start_ns: int,
    ) -> None:
        if self._pricer is None:
            from agentprof.pricing import price_call  # imported when first needed: `import agentprof` stays fast

            self._pricer = price_call
        ref = _model_ref(
            provider if isinstance(provider, str) else None,
            model if isinstance(model, str) else None,
            base_url if isinstance(base_url, str) else None,
        )
        result = self._pricer(
            usage,
            ref,
            timestamp=datetime.fromtimestamp(start_ns / 1e9, tz=UTC),
            user_prices=self._prices(),
        )
        row.update(
            priced=result.priced,
            cost_usd=money_text(result.cost_usd) if result.cost_usd is not None else None,
            input_cost_usd=money_text(result.input_cost_usd) if result.input_cost_usd is not None else None,
            output_cost_usd=money_text(result.output_cost_usd) if result.output_cost_usd is not None else None,
            price_source=result.source,
            price_version=result.version,
            priced_provider=result.priced_provider,
            priced_model=result.priced_model,
            unpriced_reason=result.unpriced_reason,
        )
