"""Other families' real OpenAI instrumentations, exported over real OTLP to ``agentprof serve``.

The openai SDK calls :class:`~agentprof.testserver.TestServer`; OpenInference's, OpenLLMetry's
or the official ``opentelemetry-instrumentation-genai-openai`` instrumentor records the calls
(or pydantic-ai's own instrumentation, for its agent runs); the SDK's OTLP/HTTP exporter sends
them to a running receiver; ``agentprof report`` on that store must show exactly the server's
own token counts. The packages are dev dependencies: these tests run in CI.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from agentprof.cli import main
from agentprof.ingest._receiver import OtlpReceiver
from agentprof.testserver import TestServer

SYSTEM = "You are a meticulous travel agent. " * 200  # long enough for the prompt cache
CITIES = ("Rome", "Oslo")


@pytest.fixture
def model_server() -> Iterator[TestServer]:
    with TestServer() as running:
        yield running


def _instrumentor(family: str) -> Any:
    if family == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif family == "genai-openai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    return OpenAIInstrumentor()


@pytest.fixture(autouse=True)
def openai_restored() -> Iterator[None]:
    """Put back every openai SDK attribute a peer's instrumentor changed.

    OpenLLMetry's ``uninstrument()`` restores none of the methods it wraps (its ``unwrap`` calls
    no longer match opentelemetry-instrumentation's signature): without this, its wrappers would
    stay on the SDK for every later test.
    """
    import inspect
    import sys

    saved = [
        (cls, name, value)
        for module_name, module in list(sys.modules.items())
        if module_name == "openai" or module_name.startswith("openai.")
        for cls in vars(module).values()
        if inspect.isclass(cls) and cls.__module__.startswith("openai")
        for name, value in list(vars(cls).items())
        if callable(value) or isinstance(value, staticmethod | classmethod | property)
    ]
    yield
    for cls, name, value in saved:
        if vars(cls).get(name) is not value:
            setattr(cls, name, value)


def _truth(server: TestServer) -> dict[str, tuple[int, int, int, int]]:
    """model -> (calls, input, output, cache read) as the server counted them."""
    totals: dict[str, list[int]] = {}
    for exchange in server.requests:
        usage = exchange.usage or {}
        entry = totals.setdefault(str(exchange.model), [0, 0, 0, 0])
        entry[0] += 1
        entry[1] += usage.get("prompt_tokens", 0)
        entry[2] += usage.get("completion_tokens", 0)
        entry[3] += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {model: (a, b, c, d) for model, (a, b, c, d) in totals.items()}


@pytest.mark.parametrize(
    "family",
    [
        "openinference",
        "genai-openai",
        # OpenLLMetry's own imports use pydantic's deprecated class-based config
        pytest.param("openllmetry", marks=pytest.mark.filterwarnings("ignore::DeprecationWarning")),
    ],
)
def test_report_totals_equal_the_servers_ground_truth(tmp_path: Path, model_server: TestServer, family: str) -> None:
    instrumentor = _instrumentor(family)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    store = tmp_path / "store"
    with OtlpReceiver(store / "spool", port=0) as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": f"{family}-agent"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url + "/v1/traces")))
        instrumentor.instrument(tracer_provider=provider)
        try:
            client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-test", max_retries=0)
            tracer = provider.get_tracer("app")
            for city in ("Lisbon", "Porto"):
                with tracer.start_as_current_span("plan trip"):  # the app's own root span: the task
                    for model in ("gpt-4o-mini", "gpt-4o"):
                        client.chat.completions.create(
                            model=model,
                            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": city}],
                        )
                    stream = client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": f"{city} [[chunks:5]]"}],
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    for _ in stream:
                        pass
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
    result = CliRunner().invoke(main, ["report", "--db", str(store), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    reported = {
        row["model"]: (row["model_calls"], row["input_tokens"], row["output_tokens"], row["cache_read_tokens"])
        for row in report["models"]
    }
    truth = _truth(model_server)
    assert truth["gpt-4o"][3] > 0  # the cache really was read, so its mapping is exercised
    assert reported == truth
    assert report["summary"]["tasks"] == 2 and report["summary"]["unpriced_calls"] == 0


def test_pydantic_ai_runs_are_tasks_and_their_aggregated_usage_is_not_counted_twice(
    tmp_path: Path, model_server: TestServer
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    store = tmp_path / "store"
    with OtlpReceiver(store / "spool", port=0) as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "pydantic-ai-agent"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url + "/v1/traces")))

        async def plan_all() -> list[str]:
            async with openai.AsyncOpenAI(base_url=model_server.openai_base_url, api_key="sk-test") as client:
                model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
                agent = Agent(model, name="planner")
                agent.instrument = InstrumentationSettings(tracer_provider=provider)  # this agent only
                return [(await agent.run(f"Plan a day in {city} [[reply:plan for {city}]]")).output for city in CITIES]

        answers = asyncio.run(plan_all())
        provider.shutdown()
    assert answers == ["plan for Rome", "plan for Oslo"]
    result = CliRunner().invoke(main, ["report", "--db", str(store), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    truth = _truth(model_server)
    reported = {
        row["model"]: (row["model_calls"], row["input_tokens"], row["output_tokens"], row["cache_read_tokens"])
        for row in report["models"]
    }
    assert reported == truth  # each HTTP call once: the agent-run spans' aggregated usage is not added
    assert report["summary"]["tasks"] == 2
    assert {row["task"] for row in report["steps"]} == {"planner"}
