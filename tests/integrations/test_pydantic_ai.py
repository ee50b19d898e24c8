"""The pydantic-ai integration: the real framework drives the real openai SDK over real HTTP.

Every run goes through pydantic-ai's ``OpenAIChatModel`` to the local model server, so the numbers
to check against are the server's own (``server.requests``). The server plays the model through
``server.enqueue``: the scripted answers are the same with and without agentprof.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import agentprof
from agentprof import _runtime, _safety
from agentprof._context import current_frame
from agentprof.cli import main as cli
from agentprof.examples import pydantic_ai_agent as example
from agentprof.integrations import openai as openai_integration
from agentprof.integrations import pydantic_ai as integration
from agentprof.testserver import LocalModelServer, ScriptedReply
from tests.integrations.helpers import (
    assert_openai_calls_match_server,
    call_places,
    of_kind,
    sent_bodies,
    steps_by_path,
)

MODEL = "gpt-4o-mini"
Rows = Callable[[], list[dict[str, Any]]]


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer() as running:
        yield running


def internal_errors() -> dict[str, int]:
    return {name: n for name, n in _safety.counters().items() if name.startswith("internal_errors")}


@pytest.fixture(autouse=True)
def _nothing_left_open() -> Iterator[None]:
    """Fail a test that leaves a mapped span open, hits a bug, or leaves pydantic-ai instrumented."""
    before = internal_errors()
    if integration._settings is not None:  # another test module's agentprof.instrument() left it on
        integration.uninstrument()
    assert Agent._instrument_default is False
    yield
    processor = integration._processor
    if processor is not None:
        assert processor._open == {}, "a task or step was never ended"
        assert processor._frames.by_frame == {} and processor._by_root == {}
    new = {name: n for name, n in internal_errors().items() if n > before.get(name, 0)}
    assert new == {}, "agentprof failed inside pydantic-ai's span callbacks"
    assert Agent._instrument_default is False, "pydantic-ai's instrumentation setting was not restored"


@contextmanager
def instrumented() -> Iterator[None]:
    """openai and pydantic-ai instrumented for the duration of the block."""
    openai_integration.instrument()
    integration.instrument()
    try:
        yield
    finally:
        integration.uninstrument()
        openai_integration.uninstrument()


@pytest.fixture
def recording(profiled: _runtime.Runtime) -> Iterator[None]:
    with instrumented():
        yield


@pytest.fixture
async def model(server: LocalModelServer) -> AsyncIterator[OpenAIChatModel]:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client))
    await client.close()


# --- helpers ----------------------------------------------------------------------------------
def assert_calls_match_server(rows: list[dict[str, Any]], server: LocalModelServer) -> None:
    """Every HTTP request recorded exactly once, with the server's tokens and an independently computed cost."""
    assert_openai_calls_match_server(rows, server.requests, MODEL)
    # Nothing else carries usage: the run's aggregated usage is not a row of its own.
    assert all(row.get("input_tokens") is None for row in rows if row["kind"] != "model_call")


# --- the agents -------------------------------------------------------------------------------
def weather_agent(model: OpenAIChatModel, name: str | None = "Forecaster") -> Agent[None, str]:
    agent = Agent(model, name=name, instructions="Answer with the weather.")

    @agent.tool_plain
    async def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"{city}: sunny, 21C"

    return agent


def script_tool_loop(server: LocalModelServer) -> None:
    server.enqueue(
        ScriptedReply(tool_calls=[("get_weather", {"city": "Paris"})]),
        ScriptedReply(text="It is sunny in Paris.", chunks=4),
    )


class Forecast(BaseModel):
    city: str
    celsius: int


@dataclass(frozen=True)
class Outcome:
    """What a run returned, in a form two runs can be compared by."""

    output: Any
    messages: str
    streamed: tuple[str, ...] = ()


def outcome_of(result: Any, streamed: list[str] | None = None) -> Outcome:
    return Outcome(result.output, outcome_of_messages(result), tuple(streamed or ()))


def outcome_of_messages(result: Any) -> str:
    parts = [
        (type(part).__name__, str(getattr(part, "content", "")), str(getattr(part, "args", "")))
        for message in result.all_messages()
        for part in message.parts
    ]
    return json.dumps(parts)


async def run_tool_loop(model: OpenAIChatModel, server: LocalModelServer) -> Outcome:
    script_tool_loop(server)
    return outcome_of(await weather_agent(model).run("Weather in Paris?"))


async def run_streamed(model: OpenAIChatModel, server: LocalModelServer) -> Outcome:
    script_tool_loop(server)
    async with weather_agent(model).run_stream("Weather in Paris?") as result:
        chunks = [chunk async for chunk in result.stream_text(delta=True)]
        output = await result.get_output()
    return Outcome(output, outcome_of_messages(result), tuple(chunks))


async def run_structured(model: OpenAIChatModel, server: LocalModelServer) -> Outcome:
    server.enqueue(
        ScriptedReply(tool_calls=[("get_weather", {"city": "Oslo"})]),
        ScriptedReply(tool_calls=[("final_result", {"city": "Oslo", "celsius": 4})]),
    )
    return outcome_of(await weather_agent(model).run("Weather in Oslo?", output_type=Forecast))


async def run_iterated(model: OpenAIChatModel, server: LocalModelServer) -> Outcome:
    script_tool_loop(server)
    nodes: list[str] = []
    async with weather_agent(model).iter("Weather in Paris?") as run:
        async for node in run:
            nodes.append(type(node).__name__)
    assert run.result is not None
    return outcome_of(run.result, nodes)


# --- runs map onto tasks and steps ------------------------------------------------------------
async def test_tool_loop_is_one_task_with_a_tool_step(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_tool_loop(model, server)

    assert outcome.output == "It is sunny in Paris."
    assert current_frame.get() is None
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["name"], task["status"], task["success"]) == (
        "Forecaster",
        "invoke_agent Forecaster",
        "ok",
        True,
    )
    [tool] = of_kind(rows, "step")
    assert (tool["step_name"], tool["step_kind"], tool["name"]) == ("get_weather", "tool", "execute_tool get_weather")
    assert tool["parent_span_id"] == task["span_id"] and tool["status"] == "ok"
    assert tool["tool_args_hash"] is None  # content capture is off: pydantic-ai puts no arguments on its span
    assert call_places(rows) == [("Forecaster", "(task)", None)] * 2
    assert {row["parent_span_id"] for row in of_kind(rows, "model_call")} == {task["span_id"]}
    assert {row["task_id"] for row in rows} == {task["span_id"]}
    assert {row["trace_id"] for row in rows} == {task["trace_id"]}
    assert_calls_match_server(rows, server)


@contextmanager
def sync_agent(server: LocalModelServer, name: str) -> Iterator[Agent[None, str]]:
    """An agent for ``run_sync``, which drives the thread's default loop: this helper owns and closes it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    try:
        yield weather_agent(OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client)), name=name)
        loop.run_until_complete(client.close())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_run_sync_records_the_same_shape(recording: None, server: LocalModelServer, spool_rows: Rows) -> None:
    script_tool_loop(server)
    with sync_agent(server, "sync") as agent:
        result = agent.run_sync("Weather in Paris?")

    assert result.output == "It is sunny in Paris."
    assert current_frame.get() is None
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["sync"]
    assert [row["step_path"] for row in of_kind(rows, "step")] == ["get_weather"]
    assert call_places(rows) == [("sync", "(task)", None)] * 2
    assert_calls_match_server(rows, server)


async def test_streamed_run_consumed_to_the_end(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_streamed(model, server)

    assert "".join(outcome.streamed) == outcome.output == "It is sunny in Paris."
    assert current_frame.get() is None
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["status"], task["success"]) == ("Forecaster", "ok", True)
    assert [row["step_path"] for row in of_kind(rows, "step")] == ["get_weather"]
    calls = of_kind(rows, "model_call")
    assert call_places(rows) == [("Forecaster", "(task)", None)] * 2
    assert all(row["stream"] and row["stream_complete"] and row["usage_known"] for row in calls)
    assert all(exchange.stream for exchange in server.requests)
    assert task["end_time_ns"] >= max(row["end_time_ns"] for row in calls)  # the task ends with the stream
    assert_calls_match_server(rows, server)


async def test_streamed_run_closed_early_still_ends_its_task(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(ScriptedReply(text="a long answer in many pieces", chunks=8, chunk_delay_ms=10))
    async with weather_agent(model).run_stream("talk") as result:
        async for _ in result.stream_text(delta=True):
            break

    assert current_frame.get() is None
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert task["task_name"] == "Forecaster"
    assert (task["status"], task["error_type"]) == ("error", "CancelledError")  # it never produced its answer
    assert call_places(rows) == [("Forecaster", "(task)", None)]
    # The server records an abandoned stream when its next write fails, on its own thread: wait for it.
    deadline = time.monotonic() + 10
    while not server.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(server.requests) == 1


async def test_iterated_run_is_one_task(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_iterated(model, server)

    assert outcome.output == "It is sunny in Paris."
    assert "CallToolsNode" in outcome.streamed and outcome.streamed[-1] == "End"
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["Forecaster"]
    assert [row["step_path"] for row in of_kind(rows, "step")] == ["get_weather"]
    assert_calls_match_server(rows, server)


async def test_structured_output_records_the_tool_but_no_output_step(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_structured(model, server)

    assert outcome.output == Forecast(city="Oslo", celsius=4)
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["Forecaster"]
    assert [row["step_path"] for row in of_kind(rows, "step")] == ["get_weather"]  # validation runs no user code
    assert_calls_match_server(rows, server)


async def test_default_agent_name_is_pydantic_ais(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(ScriptedReply(text="hi"))
    await Agent(model).run("hello")
    librarian = Agent(model)
    server.enqueue(ScriptedReply(text="hi again"))
    await librarian.run("hello")  # pydantic-ai names an unnamed agent after the variable it is called through

    assert [row["task_name"] for row in of_kind(spool_rows(), "task")] == ["agent", "librarian"]


async def test_model_calls_inside_tools_belong_to_the_tool_step(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    sync_client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    async_client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    agent = Agent(model, name="Editor")

    @agent.tool_plain
    def summarise(text: str) -> str:
        """Summarise with a sync client: pydantic-ai runs sync tools in a worker thread."""
        reply = sync_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""

    @agent.tool_plain
    async def translate(text: str) -> str:
        """Translate with an async client."""
        reply = await async_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""

    server.enqueue(
        ScriptedReply(tool_calls=[("summarise", {"text": "long"})]),
        ScriptedReply(text="short"),
        ScriptedReply(tool_calls=[("translate", {"text": "short"})]),
        ScriptedReply(text="court"),
        ScriptedReply(text="done"),
    )
    try:
        result = await agent.run("edit this")
    finally:
        sync_client.close()
        await async_client.close()

    assert result.output == "done"
    rows = spool_rows()
    assert call_places(rows) == [
        ("Editor", "(task)", None),
        ("Editor", "summarise", "summarise"),
        ("Editor", "(task)", None),
        ("Editor", "translate", "translate"),
        ("Editor", "(task)", None),
    ]
    steps = steps_by_path(rows)
    calls = of_kind(rows, "model_call")
    assert calls[1]["parent_span_id"] == steps["summarise"]["span_id"]
    assert calls[3]["parent_span_id"] == steps["translate"]["span_id"]
    assert_calls_match_server(rows, server)


async def test_parallel_tool_calls_each_get_their_step(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(
        ScriptedReply(tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]),
        ScriptedReply(text="Sunny in both."),
    )
    result = await weather_agent(model).run("Paris and Rome?")

    assert result.output == "Sunny in both."
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    tools = of_kind(rows, "step")
    assert [(row["step_name"], row["parent_span_id"]) for row in tools] == [("get_weather", task["span_id"])] * 2
    assert_calls_match_server(rows, server)


async def test_run_inside_a_users_task_is_a_step_of_it(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    async with agentprof.task("ticket"):
        with agentprof.step("answer"):
            await run_tool_loop(model, server)
            frame = current_frame.get()
            assert frame is not None and frame.step_name == "answer"

    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert task["task_name"] == "ticket"
    steps = steps_by_path(rows)
    assert set(steps) == {"answer", "answer/Forecaster", "answer/Forecaster/get_weather"}
    assert steps["answer/Forecaster"]["parent_span_id"] == steps["answer"]["span_id"]
    assert steps["answer/Forecaster"]["step_kind"] == "step"
    assert call_places(rows) == [("ticket", "Forecaster", "answer/Forecaster")] * 2


async def test_an_agent_delegated_to_from_a_tool_nests_under_the_tool_step(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    translator = Agent(model, name="Translator", instructions="Translate to French.")
    orchestrator = Agent(model, name="Orchestrator")

    @orchestrator.tool_plain
    async def translate(text: str) -> str:
        """Translate to French."""
        return (await translator.run(text)).output

    server.enqueue(
        ScriptedReply(tool_calls=[("translate", {"text": "good morning"})]),
        ScriptedReply(text="bonjour"),
        ScriptedReply(text="In French: bonjour"),
    )
    result = await orchestrator.run("Say good morning in French")

    assert result.output == "In French: bonjour"
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["Orchestrator"]
    assert sorted(steps_by_path(rows)) == ["translate", "translate/Translator"]
    assert call_places(rows) == [
        ("Orchestrator", "(task)", None),
        ("Orchestrator", "Translator", "translate/Translator"),
        ("Orchestrator", "(task)", None),
    ]
    assert_calls_match_server(rows, server)


async def test_concurrent_runs_keep_their_own_tasks(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    async def ask(city: str) -> Any:
        prompt = f'[[tool:get_weather {{"city": "{city}"}}]] [[delay_ms:30]]'
        return await weather_agent(model, name=f"weather {city}").run(prompt)

    await asyncio.gather(ask("Paris"), ask("Rome"), ask("Oslo"))

    assert current_frame.get() is None
    rows = spool_rows()
    tasks = {row["span_id"]: row["task_name"] for row in of_kind(rows, "task")}
    assert sorted(tasks.values()) == ["weather Oslo", "weather Paris", "weather Rome"]
    for task_id, name in tasks.items():
        mine = [row for row in rows if row["task_id"] == task_id]
        assert {row["task_name"] for row in mine} == {name}
        assert [row["step_path"] for row in of_kind(mine, "step")] == ["get_weather"]
        assert len(of_kind(mine, "model_call")) == 2
    assert len(of_kind(rows, "model_call")) == len(server.requests) == 6


# --- failures ---------------------------------------------------------------------------------
class InventoryDown(RuntimeError):
    pass


async def run_failing_tool(model: OpenAIChatModel, server: LocalModelServer) -> BaseException:
    server.enqueue(ScriptedReply(tool_calls=[("check_stock", {"sku": "A-1"})]))
    agent = Agent(model, name="Stock")

    @agent.tool_plain
    def check_stock(sku: str) -> str:
        """Stock level of a product (its backend is down)."""
        raise InventoryDown(f"inventory service down for {sku}")

    with pytest.raises(BaseException) as caught:
        await agent.run("Is A-1 in stock?")
    return caught.value


async def test_a_tool_exception_propagates_unchanged_and_fails_the_task(
    profiled: _runtime.Runtime, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    plain = await run_failing_tool(model, server)
    with instrumented():
        profiled_error = await run_failing_tool(model, server)

    assert type(profiled_error) is type(plain) is InventoryDown
    assert str(profiled_error) == str(plain)
    assert current_frame.get() is None
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["status"], task["success"], task["error_type"]) == (
        "Stock",
        "error",
        False,
        "InventoryDown",
    )
    [tool] = of_kind(rows, "step")
    assert (tool["step_name"], tool["step_kind"], tool["status"], tool["error_type"]) == (
        "check_stock",
        "tool",
        "error",
        "InventoryDown",
    )
    assert len(of_kind(rows, "model_call")) == 1


async def test_a_tool_retry_fails_only_the_tool_step(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    agent = Agent(model, name="Stock")

    @agent.tool_plain
    def flaky(sku: str) -> str:
        """A tool that asks the model to try again."""
        raise ModelRetry("try another sku")

    server.enqueue(ScriptedReply(tool_calls=[("flaky", {"sku": "A-1"})]), ScriptedReply(text="Try later."))
    result = await agent.run("stock?")

    assert result.output == "Try later."
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["status"], task["success"]) == ("ok", True)
    [tool] = of_kind(rows, "step")
    assert (tool["step_name"], tool["status"]) == ("flaky", "error")
    assert_calls_match_server(rows, server)


async def test_set_outcome_inside_a_tool_sets_the_runs_outcome(
    recording: None, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    agent = Agent(model, name="Desk")

    @agent.tool_plain
    def escalate(reason: str) -> str:
        """Hand the case to a human."""
        agentprof.set_outcome(success=False, score=0.25)
        return "escalated"

    server.enqueue(
        ScriptedReply(tool_calls=[("escalate", {"reason": "angry"})]), ScriptedReply(text="A human will call.")
    )
    await agent.run("help")

    [task] = of_kind(spool_rows(), "task")
    assert (task["status"], task["success"], task["outcome_explicit"], task["score"]) == ("ok", False, True, 0.25)


# --- profiling never changes the framework's behaviour ----------------------------------------
@pytest.mark.parametrize(
    "scenario",
    [run_tool_loop, run_streamed, run_structured, run_iterated],
    ids=["tools", "stream", "structured", "iter"],
)
async def test_results_are_identical_with_and_without_agentprof(
    scenario: Callable[[OpenAIChatModel, LocalModelServer], Any],
    profiled: _runtime.Runtime,
    model: OpenAIChatModel,
    server: LocalModelServer,
    spool_rows: Rows,
) -> None:
    plain = await scenario(model, server)
    plain_bodies = sent_bodies(server.requests)
    server.reset()
    with instrumented():
        profiled_outcome = await scenario(model, server)

    assert profiled_outcome == plain
    assert sent_bodies(server.requests) == plain_bodies
    assert len(of_kind(spool_rows(), "task")) == 1  # and the second run was really profiled


# --- instrument / uninstrument ----------------------------------------------------------------
async def test_instrument_is_idempotent_and_uninstrument_restores_pydantic_ai(
    profiled: _runtime.Runtime, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    openai_integration.instrument()
    try:
        integration.instrument()
        installed = Agent._instrument_default
        assert isinstance(installed, InstrumentationSettings) and installed.include_content is False
        integration.instrument()
        assert Agent._instrument_default is installed and integration.is_instrumented()
        await run_tool_loop(model, server)
        assert len(of_kind(spool_rows(), "task")) == 1  # one processor: one task, not two

        integration.uninstrument()
        assert Agent._instrument_default is False and not integration.is_instrumented()
        await run_tool_loop(model, server)
        rows = spool_rows()
        assert len(of_kind(rows, "task")) == 1 and len(of_kind(rows, "step")) == 1
        assert call_places(rows)[2:] == [("(untracked)", "(untracked)", None)] * 2  # still recorded

        integration.instrument()
        await run_tool_loop(model, server)
        assert len(of_kind(spool_rows(), "task")) == 2
    finally:
        integration.uninstrument()
        openai_integration.uninstrument()


async def test_content_capture_follows_agentprof(
    tmp_path: Path, model: OpenAIChatModel, server: LocalModelServer
) -> None:
    _runtime.configure(db=str(tmp_path / "store"), schedule_delay_millis=60_000, capture_content=True)
    try:
        with instrumented():
            settings = Agent._instrument_default
            assert isinstance(settings, InstrumentationSettings) and settings.include_content is True
            script_tool_loop(server)
            await weather_agent(model).run("Weather in Paris?")
            assert _runtime.flush()
    finally:
        location = _runtime.get_runtime()
        _runtime.shutdown()
    assert location is not None
    rows = [
        json.loads(line)
        for segment in sorted(location.location.spool_dir.glob("seg-*.jsonl"))
        for line in segment.read_text().splitlines()
    ]
    [tool] = of_kind(rows, "step")
    assert tool["tool_args_hash"] and tool["tool_result_hash"]  # from pydantic-ai's own span content


async def test_a_users_own_instrumentation_is_kept_and_joined(
    profiled: _runtime.Runtime, model: OpenAIChatModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    users = InstrumentationSettings(tracer_provider=provider, include_content=False)
    Agent.instrument_all(users)
    try:
        with instrumented():
            assert Agent._instrument_default is users and integration.is_instrumented()
            await run_tool_loop(model, server)
        assert Agent._instrument_default is users  # uninstrument leaves the user's setting alone
        await run_tool_loop(model, server)  # agentprof's processor, still on their provider, is inert
    finally:
        Agent.instrument_all(False)
        provider.shutdown()

    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["Forecaster"]
    assert [row["step_path"] for row in of_kind(rows, "step")] == ["get_weather"]
    assert call_places(rows)[:2] == [("Forecaster", "(task)", None)] * 2
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("invoke_agent Forecaster") == 2 and names.count("execute_tool get_weather") == 2
    assert names.count(f"chat {MODEL}") == 4  # the user's own spans are all still exported


def test_nothing_is_recorded_when_agentprof_is_not_configured(server: LocalModelServer) -> None:
    _runtime.shutdown()  # whatever an earlier test left configured
    with instrumented(), sync_agent(server, "unconfigured") as agent:
        script_tool_loop(server)
        assert agent.run_sync("Weather in Paris?").output == "It is sunny in Paris."
    assert _runtime.get_runtime() is None and integration._processor is not None
    assert integration._processor._open == {}


# --- frames stay consistent whatever order spans end in ----------------------------------------
def test_spans_ended_out_of_order_or_elsewhere_never_leak_a_frame(recording: None, spool_rows: Rows) -> None:
    """Drive pydantic-ai's own tracer (agentprof's private provider) the way its spans could end."""
    settings = Agent._instrument_default
    assert isinstance(settings, InstrumentationSettings)
    tracer = settings.tracer

    def shown() -> str | None:
        frame = current_frame.get()
        return frame.step_path or frame.task_name if frame is not None else None

    def run_span(name: str) -> Any:
        return tracer.start_span(
            f"invoke_agent {name}", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}
        )

    def tool_span(name: str) -> Any:
        return tracer.start_span(
            f"execute_tool {name}", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        )

    run = run_span("manual")
    assert shown() == "manual"
    chat = tracer.start_span("chat gpt-4o-mini", attributes={"gen_ai.operation.name": "chat"})
    assert shown() == "manual"  # model requests are no step
    chat.end()
    first, second = tool_span("first"), tool_span("second")
    assert shown() == "first/second"
    first.end()  # the parent ends first: the running child keeps its frame
    assert shown() == "first/second"
    second.end()  # ...and ending it skips the finished parent
    assert shown() == "manual"

    elsewhere = tool_span("elsewhere")
    worker = threading.Thread(target=elsewhere.end)  # ended from another context
    worker.start()
    worker.join()
    assert shown() == "elsewhere"  # nothing can change this context from there
    late = tool_span("late")
    assert shown() == "late"  # not nested under the finished step
    contextvars.copy_context().run(late.end)  # ended in a copy of this context
    assert shown() == "late"
    forgotten = tool_span("forgotten")
    run.end()  # the run ends what pydantic-ai left open inside it, and this context shows nothing again
    assert current_frame.get() is None
    forgotten.end()  # a late end is a no-op

    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert task["task_name"] == "manual"
    assert sorted(steps_by_path(rows)) == ["elsewhere", "first", "first/second", "forgotten", "late"]
    assert {row["step_kind"] for row in of_kind(rows, "step")} == {"tool"}
    assert {row["task_id"] for row in rows} == {task["span_id"]}


def test_spans_of_other_libraries_on_a_shared_provider_are_ignored(recording: None, spool_rows: Rows) -> None:
    provider = TracerProvider()
    provider.add_span_processor(integration.span_processor())
    other = provider.get_tracer("not-pydantic-ai")
    with other.start_as_current_span("invoke_agent x", attributes={"gen_ai.operation.name": "invoke_agent"}):
        assert current_frame.get() is None
    provider.shutdown()
    assert of_kind(spool_rows(), "task") == []


# --- the example ------------------------------------------------------------------------------
async def test_example_agent_is_recorded_against_the_local_server(
    recording: None, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(*example.SCRIPT)
    answers = await example.run(server.openai_base_url)

    assert answers[1].startswith("You were charged twice for INV-1001")
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["support"] * len(example.QUESTIONS)
    assert [row["step_path"] for row in of_kind(rows, "step")] == ["lookup_invoice"]
    assert_calls_match_server(rows, server)


def test_example_main_runs_end_to_end_and_reports(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "AGENTPROF_DB": str(store)}
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run(
        [sys.executable, "-m", "agentprof.examples.pydantic_ai_agent"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "agentprof report" in done.stdout

    report = CliRunner().invoke(cli, ["report", "--db", str(store), "--format", "json"])
    assert report.exit_code == 0, report.output
    data = json.loads(report.output)
    assert data["summary"]["tasks"] == len(example.QUESTIONS)
    assert data["summary"]["model_calls"] == len(example.SCRIPT)
    assert data["summary"]["unpriced_calls"] == 0
    # The tool makes no model call: every call is the agent's own, at task level.
    assert [(row["task"], row["step"], row["model_calls"]) for row in data["steps"]] == [
        ("support", "(task)", len(example.SCRIPT))
    ]
