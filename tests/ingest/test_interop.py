"""Other families' real OpenAI instrumentations, exported over real OTLP to ``agentprof serve``.

The openai SDK calls :class:`~agentprof.testserver.TestServer`; OpenInference's or OpenLLMetry's
instrumentor records the calls; the SDK's OTLP/HTTP exporter sends them to a running receiver;
``agentprof report`` on that store must show exactly the server's own token counts. Skipped
when the instrumentation package is not installed (they are not agentprof dependencies).
"""

from __future__ import annotations

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


@pytest.fixture
def model_server() -> Iterator[TestServer]:
    with TestServer() as running:
        yield running


def _instrumentor(family: str) -> Any:
    if family == "openinference":
        module = pytest.importorskip("openinference.instrumentation.openai")
    else:
        module = pytest.importorskip("opentelemetry.instrumentation.openai")
    return module.OpenAIInstrumentor()


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
