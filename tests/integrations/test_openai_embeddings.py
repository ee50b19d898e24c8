"""openai embeddings: recorded as `embeddings` calls, priced from input tokens, result unchanged."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import openai

from agentprof import _runtime
from agentprof.integrations import openai as openai_integration
from agentprof.testserver import TestServer

Rows = Callable[[], list[dict[str, Any]]]


def test_embeddings_are_recorded_and_priced(spool_rows: Rows) -> None:
    openai_integration.instrument()
    try:
        with TestServer() as server:
            client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
            try:
                result = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
            finally:
                client.close()
            [exchange] = server.requests
    finally:
        openai_integration.uninstrument()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    [call] = [row for row in spool_rows() if row["kind"] == "model_call"]
    assert call["operation"] == "embeddings" and call["name"] == "embeddings text-embedding-3-small"
    assert exchange.usage is not None
    assert (call["input_tokens"], call["output_tokens"]) == (exchange.usage["prompt_tokens"], 0)
    # text-embedding-3-small: $0.02 per million input tokens
    assert Decimal(call["cost_usd"]) == Decimal(exchange.usage["prompt_tokens"]) * Decimal("0.02") / 10**6
    assert _runtime.get_runtime() is not None
