"""A local server speaking the OpenAI and Anthropic HTTP APIs, for tests and the demo.

The real ``openai`` and ``anthropic`` SDKs work against it unchanged, streaming included,
with deterministic token counts, a principled prompt-cache simulation
(:mod:`agentprof.testserver._cache`) and replies scripted from the conversation itself
(:mod:`agentprof.testserver._script`)::

    with TestServer() as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "[[reply:hi]]"}])
        assert server.requests[0].usage["completion_tokens"] == 1
"""

from __future__ import annotations

from agentprof.testserver._exchange import RecordedExchange
from agentprof.testserver._script import ScriptedReply
from agentprof.testserver._server import TestServer

LocalModelServer = TestServer
"""Alias for code where a class named ``Test*`` would confuse pytest collection."""

__all__ = ["LocalModelServer", "RecordedExchange", "ScriptedReply", "TestServer"]
