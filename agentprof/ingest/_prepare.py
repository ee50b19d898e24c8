"""Received attributes made ready to read: JSON text parsed, nested usage blocks flattened.

MLflow encodes every attribute value as JSON text, and several families put messages, tool
definitions or usage in JSON text too; the dialect tables (:mod:`._dialects`) read plain values,
so a span's attributes are prepared once, before it is classified. Text that repeats from call to
call is parsed once (:class:`JsonCache`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Attribute values that arrive as JSON text and are needed structured.
_JSON_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "llm.invocation_parameters",
        "langfuse.observation.usage_details",
        "langfuse.observation.cost_details",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.observation.model.parameters",
    }
)

#: JSON attributes that are usually the same text in every call of an agent.
_REPEATED_JSON_KEYS = frozenset({"gen_ai.system_instructions", "gen_ai.tool.definitions"})
#: Nested blocks flattened into dotted keys: (attribute, prefix of the flattened keys).
_BLOCKS = (
    ("mlflow.chat.tokenUsage", "mlflow.chat.tokenUsage."),
    ("mlflow.llm.cost", "mlflow.llm.cost."),
    ("langfuse.observation.usage_details", "langfuse.usage."),
    ("langfuse.observation.cost_details", "langfuse.cost."),
    ("llm.invocation_parameters", "llm.invocation_parameters."),
)
#: The attributes :func:`prepare` flattens (kept by spans held only as context: their usage counts).
BLOCK_KEYS = frozenset(key for key, _ in _BLOCKS)
_MISSING = object()


def prepare(attributes: Mapping[str, Any], json_cache: JsonCache | None = None) -> dict[str, Any]:
    """Decode JSON-in-string values (MLflow encodes every value) and flatten nested usage blocks.

    Returns a new dict; ``mlflow.chat.tokenUsage`` and Langfuse ``usage_details``/``cost_details``
    are flattened into dotted keys so token lookup is one table. With ``json_cache``, values that
    repeat from call to call (system instructions, tool definitions) are parsed once and *shared*
    between spans: nothing may mutate a value of the result.
    """
    result = dict(attributes)
    for key, value in attributes.items():
        if isinstance(value, str) and (key in _JSON_KEYS or key.startswith("mlflow.")):
            if json_cache is not None and key in _REPEATED_JSON_KEYS:
                result[key] = json_cache.parse(value)
            else:
                result[key] = _json_or_text(value)
    for key, prefix in _BLOCKS:
        block = result.get(key)
        if isinstance(block, dict):
            for name, value in block.items():
                result.setdefault(prefix + str(name), value)
    return result


class JsonCache:
    """JSON text attributes parsed once per distinct text, bounded by the text it holds.

    An agent sends the same system instructions and tool definitions with every call; parsing
    them once also keeps the parsed object's identity stable, which lets
    :class:`~agentprof.ingest._fingerprints.FingerprintCache` canonicalise them once.
    """

    def __init__(self, max_chars: int = 16 * 1024 * 1024) -> None:
        self.max_chars = max_chars
        self._parsed: dict[str, Any] = {}
        self._chars = 0

    def parse(self, text: str) -> Any:
        """``text`` parsed as JSON when it looks like JSON, else ``text`` itself."""
        parsed = self._parsed.get(text, _MISSING)
        if parsed is _MISSING:
            parsed = _json_or_text(text)
            self._chars += len(text)
            if self._chars > self.max_chars:
                self._parsed.clear()
                self._chars = len(text)
            self._parsed[text] = parsed
        return parsed


def _json_or_text(value: str) -> Any:
    text = value.strip()
    if not text or text[0] not in '{["' and text not in ("true", "false", "null") and not _numeric(text):
        return value
    try:
        return json.loads(text)
    except ValueError:
        return value


def _numeric(text: str) -> bool:
    return text[0].isdigit() or (text[0] == "-" and text[1:2].isdigit())
