"""What other instrumentation families put on spans, translated into agentprof's vocabulary.

One place knows the attribute names of the OTel GenAI conventions (current and legacy),
OpenLLMetry (current and legacy), OpenInference, pydantic-ai/Logfire, Langfuse, OpenLIT and
MLflow (research notes ``otel_genai.md`` §2.7). Each span is *classified* (model call, agent or
workflow, tool, other) and a model call's usage, model, provider and content are rewritten as
the ``gen_ai.*``/``agentprof.*`` attributes :class:`~agentprof._mapping.SpanMapper` reads, so
received calls are stored and priced exactly like live ones.

Tokens follow the inclusive OTel semantics (input includes cache reads and writes). An emitter
that copied Anthropic's exclusive ``input_tokens`` shows itself by cache tokens exceeding the
input; the cache tokens are then added (rule 4 of §2.8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from agentprof import _semconv as sc


class Role(Enum):
    """What a span is for the profile."""

    NATIVE = "native"  # agentprof's own span (carries agentprof.kind)
    MODEL_CALL = "model_call"
    AGENT = "agent"  # agent run or workflow: a task when outermost
    TOOL = "tool"
    OTHER = "other"


_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "completion", "generate"})
_AGENT_OPERATIONS = frozenset({"invoke_agent", "invoke_workflow", "create_agent"})
_OPENINFERENCE_LLM = frozenset({"LLM", "EMBEDDING"})
_LLM_REQUEST_TYPES = frozenset({"chat", "completion", "embedding"})
_LANGFUSE_LLM = frozenset({"generation", "embedding"})
_MLFLOW_LLM = frozenset({"LLM", "CHAT_MODEL", "EMBEDDING"})
_AGENT_KINDS = frozenset({"AGENT", "WORKFLOW", "agent", "workflow"})
_TOOL_KINDS = frozenset({"TOOL", "tool"})
_INPUT = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
    "mlflow.chat.tokenUsage.input_tokens",
    "langfuse.usage.input",
)
_OUTPUT = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
    "mlflow.chat.tokenUsage.output_tokens",
    "langfuse.usage.output",
)
_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.details.cache_read_tokens",
    "gen_ai.usage.prompt_tokens_details.cached_tokens",
    "mlflow.chat.tokenUsage.cache_read_input_tokens",
    "langfuse.usage.cache_read_input_tokens",
)
_CACHE_WRITE = (
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.details.cache_write_tokens",
    "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
    "mlflow.chat.tokenUsage.cache_creation_input_tokens",
    "langfuse.usage.cache_creation_input_tokens",
)
_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.details.reasoning_tokens",
    "gen_ai.usage.completion_tokens_details.reasoning_tokens",
)
_TOTAL = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")
_REQUEST_MODEL = (
    "gen_ai.request.model",
    "llm.request.model_name",
    "llm.invocation_parameters.model",
    "langfuse.observation.model.name",
    "mlflow.llm.model",
    "llm.model_name",
    "embedding.model_name",
    "gen_ai.response.model",
)
_STREAM = (sc.GEN_AI_REQUEST_STREAM, "gen_ai.is_streaming", "llm.is_streaming")
_RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model_name", "llm.model_name")
_PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.system", "llm.provider", "mlflow.llm.provider")
_COST = (
    "operation.cost",
    "gen_ai.usage.cost",
    "llm.cost.total",
    "mlflow.llm.cost.total_cost",
    "langfuse.cost.total",
)
_PROVIDER_ALIASES = {
    "xai": "x_ai",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "mistralai": "mistral_ai",
    "bedrock": "aws.bedrock",
}


def _marker(attributes: Mapping[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) else None


def classify(attributes: Mapping[str, Any], name: str) -> Role:
    """The span's role, by the explicit markers of each family, then the usage fallback."""
    if _marker(attributes, sc.AGENTPROF_KIND) in (sc.KIND_TASK, sc.KIND_STEP, sc.KIND_MODEL_CALL):
        return Role.NATIVE
    operation = _marker(attributes, sc.GEN_AI_OPERATION_NAME)
    openinference = _marker(attributes, "openinference.span.kind")
    traceloop = _marker(attributes, "traceloop.span.kind")
    langfuse = _marker(attributes, "langfuse.observation.type")
    mlflow = _marker(attributes, "mlflow.spanType")
    if has_explicit_llm_marker(attributes):
        return Role.MODEL_CALL
    if (
        operation in _AGENT_OPERATIONS
        or openinference in _AGENT_KINDS
        or traceloop in _AGENT_KINDS
        or langfuse == "agent"
        or mlflow in _AGENT_KINDS
        or name == "agent run"
    ):
        return Role.AGENT
    if (
        operation == sc.OPERATION_EXECUTE_TOOL
        or openinference in _TOOL_KINDS
        or traceloop in _TOOL_KINDS
        or langfuse == "tool"
        or mlflow in _TOOL_KINDS
        or sc.GEN_AI_TOOL_NAME in attributes
        or name == "running tool"
    ):
        return Role.TOOL
    if operation is None and _first_str(attributes, _REQUEST_MODEL) and has_usage(attributes):
        return Role.MODEL_CALL  # fallback, kept only when no descendant carries tokens
    return Role.OTHER


def has_explicit_llm_marker(attributes: Mapping[str, Any]) -> bool:
    """Whether the model-call role came from a family marker rather than the usage fallback."""
    return (
        _marker(attributes, sc.GEN_AI_OPERATION_NAME) in _LLM_OPERATIONS
        or _marker(attributes, "openinference.span.kind") in _OPENINFERENCE_LLM
        or _marker(attributes, "llm.request.type") in _LLM_REQUEST_TYPES
        or _marker(attributes, "langfuse.observation.type") in _LANGFUSE_LLM
        or _marker(attributes, "mlflow.spanType") in _MLFLOW_LLM
    )


def has_usage(attributes: Mapping[str, Any]) -> bool:
    """Whether the span reports input or output tokens under any family's name."""
    return _first_int(attributes, _INPUT) is not None or _first_int(attributes, _OUTPUT) is not None


def usage_key(attributes: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(input, output) tokens as reported: compared to spot nested duplicates of one call."""
    return _first_int(attributes, _INPUT), _first_int(attributes, _OUTPUT)


def display_name(attributes: Mapping[str, Any], name: str, role: Role) -> str:
    """A task or step name: the agent/workflow/tool name when given, else the span name."""
    keys: Sequence[str]
    if role is Role.TOOL:
        keys = (sc.GEN_AI_TOOL_NAME, "tool.name", "traceloop.entity.name")
    else:
        keys = (
            sc.GEN_AI_AGENT_NAME,
            "gen_ai.workflow.name",
            "agent_name",
            "agent.name",
            "traceloop.entity.name",
            "traceloop.workflow.name",
            "langfuse.trace.name",
        )
    return _first_str(attributes, keys) or name or "(unnamed)"


def normalise_provider(value: str | None) -> str | None:
    """Lowercase and map historical spellings to the current ``gen_ai.provider.name`` values."""
    if not value:
        return None
    lowered = value.strip().lower()
    return _PROVIDER_ALIASES.get(lowered, lowered)


def model_call_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.*``/``agentprof.*`` attributes SpanMapper reads, from any family's names."""
    out: dict[str, Any] = {sc.AGENTPROF_KIND: sc.KIND_MODEL_CALL}
    out[sc.GEN_AI_OPERATION_NAME] = _operation(attributes)
    out[sc.GEN_AI_PROVIDER_NAME] = normalise_provider(_first_str(attributes, _PROVIDER))
    out[sc.GEN_AI_REQUEST_MODEL] = _first_str(attributes, _REQUEST_MODEL)
    out[sc.GEN_AI_RESPONSE_MODEL] = _first_str(attributes, _RESPONSE_MODEL)
    for key in (sc.GEN_AI_RESPONSE_ID, sc.SERVER_ADDRESS, sc.ERROR_TYPE):
        if isinstance(attributes.get(key), str):
            out[key] = attributes[key]
    host = attributes.get(sc.SERVER_ADDRESS)
    if isinstance(host, str) and host:
        out[sc.AGENTPROF_BASE_URL] = f"https://{host}"
    for key in _STREAM:
        if key in attributes:
            if isinstance(attributes[key], bool):
                out[sc.GEN_AI_REQUEST_STREAM] = attributes[key]
            break
    temperature = attributes.get(sc.GEN_AI_REQUEST_TEMPERATURE, attributes.get("llm.invocation_parameters.temperature"))
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out[sc.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)
    finish = attributes.get(sc.GEN_AI_RESPONSE_FINISH_REASONS) or attributes.get("llm.response.finish_reason")
    if isinstance(finish, str):
        finish = [finish]
    if isinstance(finish, list) and all(isinstance(item, str) for item in finish):
        out[sc.GEN_AI_RESPONSE_FINISH_REASONS] = finish
    ttft = _ttft_ms(attributes)
    if ttft is not None:
        out[sc.AGENTPROF_TTFT_MS] = ttft
    out.update(_usage(attributes))
    return {key: value for key, value in out.items() if value is not None}


def _operation(attributes: Mapping[str, Any]) -> str:
    operation = _marker(attributes, sc.GEN_AI_OPERATION_NAME)
    if operation in ("completion", "text_completion"):
        return "text_completion"
    if operation is not None and operation in _LLM_OPERATIONS:
        return operation
    marker = (
        _marker(attributes, "llm.request.type"),
        _marker(attributes, "openinference.span.kind"),
        _marker(attributes, "langfuse.observation.type"),
        _marker(attributes, "mlflow.spanType"),
    )
    if any(value in ("embedding", "EMBEDDING") for value in marker):
        return sc.OPERATION_EMBEDDINGS
    if marker[0] == "completion":
        return "text_completion"
    return sc.OPERATION_CHAT


def _ttft_ms(attributes: Mapping[str, Any]) -> float | None:
    for key in (
        "gen_ai.response.time_to_first_chunk",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.server.time_to_first_token",
    ):
        value = attributes.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) * 1000.0
    return None


def _usage(attributes: Mapping[str, Any]) -> dict[str, Any]:
    input_tokens = _first_int(attributes, _INPUT)
    output_tokens = _first_int(attributes, _OUTPUT)
    total = _first_int(attributes, _TOTAL)
    if input_tokens is None and output_tokens is None:
        return {sc.AGENTPROF_USAGE_KNOWN: False}
    if input_tokens is None and total is not None and output_tokens is not None:
        input_tokens = max(0, total - output_tokens)
    if output_tokens is None and total is not None and input_tokens is not None:
        output_tokens = max(0, total - input_tokens)
    cache_read = _first_int(attributes, _CACHE_READ) or 0
    cache_write = _first_int(attributes, _CACHE_WRITE) or 0
    if input_tokens is not None and cache_read + cache_write > input_tokens:
        input_tokens += cache_read + cache_write  # an exclusive (Anthropic-raw) input count
    return {
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens or 0,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens or 0,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: cache_write,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: _first_int(attributes, _REASONING) or 0,
    }


def provided_cost(attributes: Mapping[str, Any]) -> Decimal | None:
    """The emitter's own cost in USD (pydantic-ai/Logfire, OpenLIT, OpenInference, MLflow, Langfuse)."""
    for key in _COST:
        value = attributes.get(key)
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                cost = Decimal(str(value))
            except InvalidOperation:
                continue
            if cost.is_finite() and cost >= 0:
                return cost
    return None


def _first_int(attributes: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        value = attributes.get(key)
        if value is None:  # most names of most tables are absent
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return max(0, value)
        if isinstance(value, float) and value.is_integer():
            return max(0, int(value))
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _first_str(attributes: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value and isinstance(value, str):
            return value
    return None
