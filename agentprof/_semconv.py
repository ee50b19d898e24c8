"""Every span attribute name agentprof reads or writes, in one place.

The GenAI names follow the OpenTelemetry GenAI semantic conventions (v1.41 plus the
``cache_write`` rename from semantic-conventions-genai, which we dual-emit). What the
conventions lack lives under ``agentprof.*``.
"""

from __future__ import annotations

# --- OpenTelemetry GenAI conventions -------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated alias, read only
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST = "gen_ai.usage.cost"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
SERVICE_NAME = "service.name"

OPERATION_CHAT = "chat"
OPERATION_EMBEDDINGS = "embeddings"
OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_EXECUTE_TOOL = "execute_tool"

# --- agentprof's own ----------------------------------------------------------------
AGENTPROF_KIND = "agentprof.kind"  # "task" | "step" | "model_call"
AGENTPROF_TASK_ID = "agentprof.task.id"
AGENTPROF_TASK_NAME = "agentprof.task.name"
AGENTPROF_TASK_SUCCESS = "agentprof.task.success"
AGENTPROF_TASK_SCORE = "agentprof.task.score"
AGENTPROF_TASK_OUTCOME_EXPLICIT = "agentprof.task.outcome_explicit"
AGENTPROF_STEP_NAME = "agentprof.step.name"
AGENTPROF_STEP_KIND = "agentprof.step.kind"  # "step" | "tool"
AGENTPROF_STEP_PATH = "agentprof.step.path"
AGENTPROF_ATTRIBUTE_PREFIX = "agentprof.attr."  # user attributes of @task(attributes=...)
AGENTPROF_USAGE_KNOWN = "agentprof.usage_known"
AGENTPROF_STREAM_COMPLETE = "agentprof.stream.complete"
AGENTPROF_TTFT_MS = "agentprof.ttft_ms"
AGENTPROF_ATTEMPTS = "agentprof.attempts"
AGENTPROF_RAW_USAGE = "agentprof.usage.raw"  # JSON text of the provider's usage block
AGENTPROF_CACHE_WRITE_5M = "agentprof.usage.cache_write_5m.input_tokens"
AGENTPROF_CACHE_WRITE_1H = "agentprof.usage.cache_write_1h.input_tokens"
AGENTPROF_REQUEST_FINGERPRINT = "agentprof.request.fingerprint"
AGENTPROF_PREFIX_FINGERPRINTS = "agentprof.request.prefix_fingerprints"  # JSON text
AGENTPROF_CACHE_BREAKPOINTS = "agentprof.request.cache_breakpoints"
AGENTPROF_TOOL_COUNT = "agentprof.request.tool_count"
AGENTPROF_RESPONSE_FORMAT = "agentprof.request.response_format"  # "json_schema" | "json_object" | "text"
AGENTPROF_TOOL_CHOICE = "agentprof.request.tool_choice"
AGENTPROF_TOOL_ARGS_HASH = "agentprof.tool.args_hash"
AGENTPROF_TOOL_RESULT_HASH = "agentprof.tool.result_hash"
AGENTPROF_OUTPUT_HASH = "agentprof.output.hash"
AGENTPROF_OUTPUT_CHARS = "agentprof.output.chars"
AGENTPROF_COST_USD = "agentprof.cost_usd"
AGENTPROF_PRICE_VERSION = "agentprof.price.version"
AGENTPROF_UNPRICED = "agentprof.price.unpriced"
AGENTPROF_BASE_URL = "agentprof.request.base_url"

KIND_TASK = "task"
KIND_STEP = "step"
KIND_MODEL_CALL = "model_call"

UNTRACKED_TASK = "(untracked)"
TASK_LEVEL_STEP = "(task)"
