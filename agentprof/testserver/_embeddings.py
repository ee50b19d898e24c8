"""The OpenAI Embeddings wire format (``POST /v1/embeddings``).

Vectors are deterministic (derived from a hash of each input) and small (8 dimensions); usage
counts input tokens the same way chat does (characters / 4, at least 1 per input). The SDK asks
for ``encoding_format: "base64"`` by default, so both base64 and float lists are served.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any

from agentprof.testserver._provider import RequestError
from agentprof.testserver._tokens import tokens_for_chars

DIMENSIONS = 8


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [(byte - 128) / 128 for byte in digest[:DIMENSIONS]]


def embeddings_response(body: Any) -> dict[str, Any]:
    """Answer one embeddings request; raise :class:`RequestError` for an invalid body."""
    if not isinstance(body, Mapping):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, str) for item in inputs):
        raise RequestError("'input' must be a string or a non-empty array of strings.")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = _vector(text)
        encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(max(1, tokens_for_chars(len(text))) for text in inputs)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
