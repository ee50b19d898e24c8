"""Fixtures for the provider integrations: a local model server, instrumented real SDK clients, records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from agentprof import _runtime
from agentprof.integrations import anthropic as anthropic_integration
from agentprof.integrations import openai as openai_integration
from agentprof.testserver import LocalModelServer
from tests.integrations.helpers import ANTHROPIC_MODEL

Calls = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def server() -> Iterator[LocalModelServer]:
    # Low minimum so a short prompt can exercise Anthropic's cache read/write paths.
    with LocalModelServer(anthropic_min_cacheable_tokens={ANTHROPIC_MODEL: 32}) as running:
        yield running


@pytest.fixture
def instrumented(profiled: _runtime.Runtime) -> Iterator[_runtime.Runtime]:
    """agentprof configured in ``tmp_path`` with both SDKs instrumented; undone afterwards."""
    openai_integration.instrument()
    anthropic_integration.instrument()
    yield profiled
    openai_integration.uninstrument()
    anthropic_integration.uninstrument()


@pytest.fixture
def calls(instrumented: _runtime.Runtime, spool_rows: Callable[[], list[dict[str, Any]]]) -> Calls:
    """Flush and return the recorded model calls, in start order."""
    return lambda: [row for row in spool_rows() if row["kind"] == "model_call"]


@pytest.fixture
def oai(server: LocalModelServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def aoai(server: LocalModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def ant(server: LocalModelServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def aant(server: LocalModelServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    yield client
    await client.close()
