"""The OpenAI Agents SDK integration: the real framework drives the real openai SDK over real HTTP.

Every run goes through ``OpenAIChatCompletionsModel`` to the local model server, so the numbers
to check against are the server's own (``server.requests``). The local server plays the model
through ``server.enqueue``: the scripted answers are the same with and without agentprof.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import agents
import openai
import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    RunConfig,
    Runner,
    function_tool,
    set_trace_processors,
)
from agents.tracing import agent_span, function_span, get_trace_provider, handoff_span
from click.testing import CliRunner
from openai.types.responses import ResponseTextDeltaEvent
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import agentprof
from agentprof import _runtime, _safety
from agentprof._context import current_frame
from agentprof.cli import main as cli
from agentprof.examples import openai_agents_agent as example
from agentprof.integrations import openai as openai_integration
from agentprof.integrations import openai_agents as integration
from agentprof.testserver import LocalModelServer, ScriptedReply
from tests.integrations.helpers import (
    assert_openai_calls_match_server,
    call_places,
    of_kind,
    openai_truth,
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


@pytest.fixture(autouse=True)
def _no_trace_export() -> Iterator[None]:
    """Drop the SDK's default processor (it uploads traces to OpenAI) and restore it afterwards."""
    provider = get_trace_provider()
    saved = provider._multi_processor._processors  # type: ignore[attr-defined]
    set_trace_processors([])
    yield
    set_trace_processors(list(saved))


def internal_errors() -> dict[str, int]:
    return {name: n for name, n in _safety.counters().items() if name.startswith("internal_errors")}


@pytest.fixture(autouse=True)
def _nothing_left_open() -> Iterator[None]:
    """Fail a test that leaves a mapped span open or hits a bug the SDK would swallow and only log."""
    before = internal_errors()
    yield
    processor = integration._processor
    if processor is not None:
        assert processor._open == {}, "a task or step was never ended"
        assert processor._frames.by_frame == {} and processor._by_trace == {}
    new = {name: n for name, n in internal_errors().items() if n > before.get(name, 0)}
    assert new == {}, "agentprof failed inside the SDK's processor callbacks (the SDK only logs that)"


@contextmanager
def instrumented() -> Iterator[None]:
    """openai and the Agents SDK instrumented for the duration of the block."""
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
async def model(server: LocalModelServer) -> AsyncIterator[OpenAIChatCompletionsModel]:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    await client.close()


# --- helpers ----------------------------------------------------------------------------------
def assert_calls_match_server(rows: list[dict[str, Any]], server: LocalModelServer) -> None:
    """Every HTTP request recorded exactly once, with the server's tokens and an independently computed cost."""
    assert_openai_calls_match_server(rows, server.requests, MODEL)


# --- the agents -------------------------------------------------------------------------------
@function_tool
async def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"{city}: sunny, 21C"


def weather_agent(model: OpenAIChatCompletionsModel, *, streamed_usage: bool = False) -> Agent[Any]:
    settings = ModelSettings(include_usage=True) if streamed_usage else ModelSettings()
    return Agent(
        name="Forecaster",
        instructions="Answer with the weather.",
        model=model,
        tools=[get_weather],
        model_settings=settings,
    )


def script_tool_loop(server: LocalModelServer) -> None:
    server.enqueue(
        ScriptedReply(tool_calls=[("get_weather", {"city": "Paris"})]),
        ScriptedReply(text="It is sunny in Paris.", chunks=4),
    )


def triage_agents(model: OpenAIChatCompletionsModel) -> Agent[Any]:
    refunds = Agent(name="Refunds", instructions="Handle refunds.", model=model, tools=[get_weather])
    return Agent(name="Triage", instructions="Route the customer.", model=model, handoffs=[refunds])


def script_handoff(server: LocalModelServer) -> None:
    server.enqueue(
        ScriptedReply(tool_calls=[("transfer_to_refunds", {})]),
        ScriptedReply(text="Your refund is on its way.", chunks=3),
    )


@dataclass(frozen=True)
class Outcome:
    """What a run returned, in a form two runs can be compared by."""

    final_output: Any
    last_agent: str
    items: tuple[tuple[str, str], ...]
    streamed_text: str | None = None
    events: tuple[str, ...] = ()


def outcome_of(result: agents.RunResultBase, streamed: list[Any] | None = None) -> Outcome:
    items = tuple((item.type, str(getattr(item, "output", ""))) for item in result.new_items)
    if streamed is None:
        return Outcome(result.final_output, result.last_agent.name, items)
    text = "".join(
        event.data.delta
        for event in streamed
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    )
    names = tuple(f"{event.type}:{getattr(event, 'name', '')}" for event in streamed)
    return Outcome(result.final_output, result.last_agent.name, items, text, names)


async def run_tool_loop(model: OpenAIChatCompletionsModel, server: LocalModelServer) -> Outcome:
    script_tool_loop(server)
    result = await Runner.run(weather_agent(model), "Weather in Paris?", run_config=RunConfig(workflow_name="weather"))
    return outcome_of(result)


async def run_handoff(model: OpenAIChatCompletionsModel, server: LocalModelServer) -> Outcome:
    script_handoff(server)
    result = await Runner.run(
        triage_agents(model), "I want my money back", run_config=RunConfig(workflow_name="support")
    )
    return outcome_of(result)


async def run_streamed(model: OpenAIChatCompletionsModel, server: LocalModelServer) -> Outcome:
    script_tool_loop(server)
    result = Runner.run_streamed(
        weather_agent(model, streamed_usage=True), "Weather in Paris?", run_config=RunConfig(workflow_name="weather")
    )
    events = [event async for event in result.stream_events()]
    return outcome_of(result, events)


async def run_streamed_handoff(model: OpenAIChatCompletionsModel, server: LocalModelServer) -> Outcome:
    server.enqueue(
        ScriptedReply(tool_calls=[("transfer_to_refunds", {})]),
        ScriptedReply(tool_calls=[("get_weather", {"city": "Oslo"})]),
        ScriptedReply(text="Refunded, and it is sunny in Oslo.", chunks=5),
    )
    triage = triage_agents(model)
    for agent in (triage, *triage.handoffs):
        assert isinstance(agent, Agent)
        agent.model_settings = ModelSettings(include_usage=True)
    result = Runner.run_streamed(triage, "Refund me", run_config=RunConfig(workflow_name="support"))
    events = [event async for event in result.stream_events()]
    return outcome_of(result, events)


# --- runs map onto tasks and steps ------------------------------------------------------------
async def test_tool_loop_is_one_task_with_agent_and_tool_steps(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_tool_loop(model, server)

    assert outcome.final_output == "It is sunny in Paris."
    assert current_frame.get() is None  # the run's task was entered in this very context, and left
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["status"], task["success"]) == ("weather", "ok", True)
    steps = steps_by_path(rows)
    assert set(steps) == {"Forecaster", "Forecaster/get_weather"}
    agent, tool = steps["Forecaster"], steps["Forecaster/get_weather"]
    assert (agent["step_kind"], tool["step_kind"]) == ("step", "tool")
    assert tool["name"] == "execute_tool get_weather"
    assert tool["tool_args_hash"] and tool["tool_result_hash"]
    assert agent["parent_span_id"] == task["span_id"] and tool["parent_span_id"] == agent["span_id"]
    assert call_places(rows) == [("weather", "Forecaster", "Forecaster")] * 2
    assert {row["parent_span_id"] for row in of_kind(rows, "model_call")} == {agent["span_id"]}
    assert {row["task_id"] for row in rows} == {task["span_id"]}
    assert {row["trace_id"] for row in rows} == {task["trace_id"]}
    assert_calls_match_server(rows, server)


async def test_handoff_is_a_step_between_the_two_agents(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_handoff(model, server)

    assert (outcome.final_output, outcome.last_agent) == ("Your refund is on its way.", "Refunds")
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert task["task_name"] == "support"
    steps = steps_by_path(rows)
    assert set(steps) == {"Triage", "Triage/handoff: Triage -> Refunds", "Refunds"}
    handoff = steps["Triage/handoff: Triage -> Refunds"]
    assert handoff["step_name"] == "handoff: Triage -> Refunds" and handoff["step_kind"] == "step"
    assert handoff["parent_span_id"] == steps["Triage"]["span_id"]
    assert steps["Refunds"]["parent_span_id"] == task["span_id"]
    assert call_places(rows) == [("support", "Triage", "Triage"), ("support", "Refunds", "Refunds")]
    assert_calls_match_server(rows, server)


def test_run_sync_records_the_same_shape(recording: None, server: LocalModelServer, spool_rows: Rows) -> None:
    loop = asyncio.new_event_loop()  # run_sync drives the thread's default loop; this test owns and closes it
    asyncio.set_event_loop(loop)
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    try:
        script_tool_loop(server)
        agent = weather_agent(OpenAIChatCompletionsModel(model=MODEL, openai_client=client))
        result = Runner.run_sync(agent, "Weather in Paris?", run_config=RunConfig(workflow_name="weather sync"))
        loop.run_until_complete(client.close())
    finally:
        asyncio.set_event_loop(None)
        loop.close()

    assert result.final_output == "It is sunny in Paris."
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["weather sync"]
    assert set(steps_by_path(rows)) == {"Forecaster", "Forecaster/get_weather"}
    assert call_places(rows) == [("weather sync", "Forecaster", "Forecaster")] * 2
    assert_calls_match_server(rows, server)


async def test_streamed_run_consumed_to_the_end(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_streamed(model, server)

    assert outcome.streamed_text == outcome.final_output == "It is sunny in Paris."
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["success"]) == ("weather", True)
    assert set(steps_by_path(rows)) == {"Forecaster", "Forecaster/get_weather"}
    calls = of_kind(rows, "model_call")
    assert call_places(rows) == [("weather", "Forecaster", "Forecaster")] * 2
    assert all(row["stream"] and row["stream_complete"] and row["usage_known"] for row in calls)
    assert all(exchange.stream for exchange in server.requests)
    assert_calls_match_server(rows, server)


async def test_streamed_run_with_a_handoff_and_a_tool(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    outcome = await run_streamed_handoff(model, server)

    assert outcome.last_agent == "Refunds"
    assert outcome.streamed_text == outcome.final_output == "Refunded, and it is sunny in Oslo."
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["support"]
    assert sorted(steps_by_path(rows)) == [
        "Refunds",
        "Refunds/get_weather",
        "Triage",
        "Triage/handoff: Triage -> Refunds",
    ]
    assert [place[2] for place in call_places(rows)] == ["Triage", "Refunds", "Refunds"]
    assert_calls_match_server(rows, server)


async def test_default_workflow_name_and_trace_ids_are_kept(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(ScriptedReply(text="hi"))
    await Runner.run(weather_agent(model), "hello", run_config=RunConfig(group_id="thread-7"))

    [task] = of_kind(spool_rows(), "task")
    assert task["task_name"] == "Agent workflow"
    attributes = json.loads(task["attributes"])
    assert attributes["openai_agents.group_id"] == "thread-7"
    assert attributes["openai_agents.trace_id"].startswith("trace_")


async def test_model_calls_inside_tools_belong_to_the_tool_step(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    sync_client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    async_client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)

    @function_tool
    def summarise(text: str) -> str:
        """Summarise with a sync client: the SDK runs sync tools in a worker thread."""
        reply = sync_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""

    @function_tool
    async def translate(text: str) -> str:
        """Translate with an async client, in the tool's own task."""
        reply = await async_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""

    server.enqueue(
        ScriptedReply(tool_calls=[("summarise", {"text": "long"})]),
        ScriptedReply(text="short"),
        ScriptedReply(tool_calls=[("translate", {"text": "short"})]),
        ScriptedReply(text="court"),
        ScriptedReply(text="done"),
    )
    agent = Agent(name="Editor", model=model, tools=[summarise, translate])
    try:
        result = await Runner.run(agent, "edit this", run_config=RunConfig(workflow_name="edit"))
    finally:
        sync_client.close()
        await async_client.close()

    assert result.final_output == "done"
    rows = spool_rows()
    assert call_places(rows) == [
        ("edit", "Editor", "Editor"),
        ("edit", "summarise", "Editor/summarise"),
        ("edit", "Editor", "Editor"),
        ("edit", "translate", "Editor/translate"),
        ("edit", "Editor", "Editor"),
    ]
    steps = steps_by_path(rows)
    calls = of_kind(rows, "model_call")
    assert calls[1]["parent_span_id"] == steps["Editor/summarise"]["span_id"]
    assert calls[3]["parent_span_id"] == steps["Editor/translate"]["span_id"]
    assert_calls_match_server(rows, server)


async def test_run_inside_a_users_task_is_a_step_of_it(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    async with agentprof.task("ticket"):
        with agentprof.step("answer"):
            await run_handoff(model, server)
            frame = current_frame.get()
            assert frame is not None and frame.step_name == "answer"

    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert task["task_name"] == "ticket"
    steps = steps_by_path(rows)
    assert set(steps) == {
        "answer",
        "answer/support",
        "answer/support/Triage",
        "answer/support/Triage/handoff: Triage -> Refunds",
        "answer/support/Refunds",
    }
    assert steps["answer/support"]["parent_span_id"] == steps["answer"]["span_id"]
    assert call_places(rows) == [
        ("ticket", "Triage", "answer/support/Triage"),
        ("ticket", "Refunds", "answer/support/Refunds"),
    ]


async def test_concurrent_runs_keep_their_own_tasks(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    agent = weather_agent(model)

    async def ask(city: str) -> Any:
        prompt = f'[[tool:get_weather {{"city": "{city}"}}]] [[delay_ms:30]]'
        return await Runner.run(agent, prompt, run_config=RunConfig(workflow_name=f"weather {city}"))

    await asyncio.gather(ask("Paris"), ask("Rome"), ask("Oslo"))

    assert current_frame.get() is None
    rows = spool_rows()
    tasks = {row["span_id"]: row["task_name"] for row in of_kind(rows, "task")}
    assert sorted(tasks.values()) == ["weather Oslo", "weather Paris", "weather Rome"]
    for task_id, name in tasks.items():
        mine = [row for row in rows if row["task_id"] == task_id]
        assert {row["task_name"] for row in mine} == {name}
        assert sorted(row["step_path"] for row in of_kind(mine, "step")) == ["Forecaster", "Forecaster/get_weather"]
        assert [row["step_name"] for row in of_kind(mine, "model_call")] == ["Forecaster"] * 2
    assert len(of_kind(rows, "model_call")) == len(server.requests) == 6


# --- failures ---------------------------------------------------------------------------------
class InventoryDown(RuntimeError):
    pass


@function_tool(failure_error_function=None)
def check_stock(sku: str) -> str:
    """Stock level of a product (its backend is down)."""
    raise InventoryDown(f"inventory service down for {sku}")


async def run_failing_tool(model: OpenAIChatCompletionsModel, server: LocalModelServer) -> BaseException:
    server.enqueue(ScriptedReply(tool_calls=[("check_stock", {"sku": "A-1"})]))
    agent = Agent(name="Stock", model=model, tools=[check_stock])
    with pytest.raises(Exception) as caught:
        await Runner.run(agent, "Is A-1 in stock?", run_config=RunConfig(workflow_name="stock"))
    return caught.value


async def test_a_tool_exception_propagates_unchanged_and_fails_the_task(
    profiled: _runtime.Runtime, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    plain = await run_failing_tool(model, server)
    with instrumented():
        profiled_error = await run_failing_tool(model, server)

    assert type(profiled_error) is type(plain) and str(profiled_error) == str(plain)
    assert type(profiled_error.__cause__) is InventoryDown
    assert current_frame.get() is None
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["status"], task["success"]) == ("stock", "error", False)
    assert task["error_type"] == type(plain).__name__
    tool = steps_by_path(rows)["Stock/check_stock"]
    assert (tool["status"], tool["step_kind"]) == ("error", "tool")
    assert steps_by_path(rows)["Stock"]["status"] == "error"


async def test_a_tool_error_the_sdk_handles_fails_only_the_tool_step(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    @function_tool  # the default failure handler turns the exception into a message for the model
    def flaky(sku: str) -> str:
        """A tool that fails."""
        raise InventoryDown(sku)

    server.enqueue(ScriptedReply(tool_calls=[("flaky", {"sku": "A-1"})]), ScriptedReply(text="Try later."))
    result = await Runner.run(Agent(name="Stock", model=model, tools=[flaky]), "stock?")

    assert result.final_output == "Try later."
    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["status"], task["success"]) == ("ok", True)
    tool = steps_by_path(rows)["Stock/flaky"]
    assert (tool["status"], tool["error_type"]) == ("error", "SpanError")
    assert steps_by_path(rows)["Stock"]["status"] == "ok"


async def test_set_outcome_inside_a_tool_sets_the_runs_outcome(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    @function_tool
    def escalate(reason: str) -> str:
        """Hand the case to a human."""
        agentprof.set_outcome(success=False, score=0.25)
        return "escalated"

    server.enqueue(
        ScriptedReply(tool_calls=[("escalate", {"reason": "angry"})]), ScriptedReply(text="A human will call.")
    )
    await Runner.run(Agent(name="Desk", model=model, tools=[escalate]), "help")

    [task] = of_kind(spool_rows(), "task")
    assert (task["status"], task["success"], task["outcome_explicit"], task["score"]) == ("ok", False, True, 0.25)


# --- profiling never changes the framework's behaviour ----------------------------------------
@pytest.mark.parametrize(
    "scenario",
    [run_tool_loop, run_handoff, run_streamed, run_streamed_handoff],
    ids=["tools", "handoff", "stream", "stream-handoff"],
)
async def test_results_are_identical_with_and_without_agentprof(
    scenario: Callable[[OpenAIChatCompletionsModel, LocalModelServer], Any],
    profiled: _runtime.Runtime,
    model: OpenAIChatCompletionsModel,
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
async def test_instrument_is_idempotent_and_uninstrument_makes_the_processor_inert(
    profiled: _runtime.Runtime, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    openai_integration.instrument()
    try:
        integration.instrument()
        integration.instrument()
        assert integration.is_instrumented()
        await run_tool_loop(model, server)
        assert len(of_kind(spool_rows(), "task")) == 1  # registered once: one task, not two

        integration.uninstrument()
        assert not integration.is_instrumented()
        await run_tool_loop(model, server)
        rows = spool_rows()
        assert len(of_kind(rows, "task")) == 1 and len(of_kind(rows, "step")) == 2
        assert call_places(rows)[2:] == [("(untracked)", "(untracked)", None)] * 2  # still recorded

        integration.instrument()
        await run_tool_loop(model, server)
        assert len(of_kind(spool_rows(), "task")) == 2
    finally:
        integration.uninstrument()
        openai_integration.uninstrument()


async def test_uninstrument_mid_run_still_ends_what_was_started(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    @function_tool
    def switch_off(reason: str) -> str:
        """Turn agentprof off while the run is going."""
        integration.uninstrument()
        return "off"

    server.enqueue(ScriptedReply(tool_calls=[("switch_off", {"reason": "x"})]), ScriptedReply(text="bye"))
    await Runner.run(Agent(name="Ops", model=model, tools=[switch_off]), "go")

    assert current_frame.get() is None
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["Agent workflow"]
    assert set(steps_by_path(rows)) == {"Ops", "Ops/switch_off"}


async def test_set_trace_processors_after_instrument_is_repaired_by_instrument(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    set_trace_processors([])  # drops agentprof's processor too
    integration.instrument()
    await run_tool_loop(model, server)

    assert len(of_kind(spool_rows(), "task")) == 1


# --- frames stay consistent whatever order spans end in ----------------------------------------
def test_spans_ended_out_of_order_or_elsewhere_never_leak_a_frame(recording: None, spool_rows: Rows) -> None:
    def shown() -> str | None:
        frame = current_frame.get()
        return frame.step_path or frame.task_name if frame is not None else None

    with agents.trace("manual"):
        assert shown() == "manual"
        outer = agent_span(name="Outer")
        outer.start(mark_as_current=True)
        inner = function_span(name="lookup")
        inner.start(mark_as_current=True)
        assert shown() == "Outer/lookup"
        outer.finish()  # the parent ends first: the running child keeps its frame
        assert shown() == "Outer/lookup"
        inner.finish()  # ...and ending it skips the finished parent
        assert shown() == "manual"

        elsewhere = agent_span(name="Elsewhere")
        elsewhere.start(mark_as_current=True)
        assert shown() == "Elsewhere"
        worker = threading.Thread(target=elsewhere.finish)  # ended from another context
        worker.start()
        worker.join()
        assert shown() == "Elsewhere"  # nothing can change this context from there (nor does the SDK)
        with handoff_span(from_agent="Elsewhere", to_agent="Next"):
            assert shown() == "handoff: Elsewhere -> Next"  # not nested under the finished step
        assert shown() == "manual"  # and leaving it repairs this context

        late = agent_span(name="Late")
        late.start(mark_as_current=True)
        contextvars.copy_context().run(late.finish)  # ended in a copy of this context
        assert shown() == "Late"
    assert current_frame.get() is None

    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["manual"]
    assert sorted(steps_by_path(rows)) == [
        "Elsewhere",
        "Late",
        "Outer",
        "Outer/lookup",
        "handoff: Elsewhere -> Next",
    ]


def test_spans_the_sdk_never_ends_are_ended_with_their_trace(recording: None, spool_rows: Rows) -> None:
    with agents.trace("abandoned"):
        agent_span(name="Forgotten").start(mark_as_current=True)
        assert current_frame.get() is not None
    assert current_frame.get() is None
    assert sorted(steps_by_path(spool_rows())) == ["Forgotten"]


def test_nothing_is_recorded_when_agentprof_is_not_configured() -> None:
    _runtime.shutdown()  # whatever an earlier test left configured
    assert _runtime.get_runtime() is None
    with instrumented():
        with agents.trace("unconfigured"):
            with agent_span(name="A"):
                assert current_frame.get() is None


async def test_a_stream_cancelled_by_its_consumer_still_ends_its_task(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(ScriptedReply(text="a long answer", chunks=8, chunk_delay_ms=20))
    result = Runner.run_streamed(
        weather_agent(model, streamed_usage=True), "talk", run_config=RunConfig(workflow_name="chat")
    )
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            result.cancel()
    assert result.is_complete
    if result.run_loop_task is not None:
        await asyncio.wait([result.run_loop_task])

    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (task["task_name"], task["status"], task["error_type"]) == ("chat", "error", "CancelledError")
    assert [(row["step_name"], row["status"]) for row in of_kind(rows, "step")] == [("Forecaster", "error")]
    assert call_places(rows) == [("chat", "Forecaster", "Forecaster")]


async def test_opentelemetry_context_follows_the_steps_and_is_restored(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    seen: list[int] = []

    @function_tool
    def probe(x: str) -> str:
        """Note which OpenTelemetry span is current inside the tool."""
        seen.append(otel_trace.get_current_span().get_span_context().span_id)
        return "ok"

    app_span = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1)))
    server.enqueue(ScriptedReply(tool_calls=[("probe", {"x": "1"})]), ScriptedReply(text="done"))
    with otel_trace.use_span(app_span):
        await Runner.run(Agent(name="Prober", model=model, tools=[probe]), "go")
        assert otel_trace.get_current_span() is app_span
    assert otel_trace.get_current_span() is otel_trace.INVALID_SPAN

    rows = spool_rows()
    [task] = of_kind(rows, "task")
    assert (int(task["trace_id"], 16), int(task["parent_span_id"], 16)) == (0xABC, 0xDEF)  # joins the app's trace
    assert seen == [int(steps_by_path(rows)["Prober/probe"]["span_id"], 16)]


async def test_a_guardrail_that_runs_its_own_agent_is_a_step(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    classifier = Agent(name="Classifier", instructions="Is this polite? yes/no", model=model)

    @agents.input_guardrail
    async def politeness(context: Any, agent: Any, text: Any) -> agents.GuardrailFunctionOutput:
        verdict = await Runner.run(classifier, "[[reply:yes]]", context=context.context)
        return agents.GuardrailFunctionOutput(output_info=verdict.final_output, tripwire_triggered=False)

    agent = Agent(name="Greeter", model=model, input_guardrails=[politeness])
    result = await Runner.run(agent, "[[reply:Hello there!]]", run_config=RunConfig(workflow_name="greet"))

    assert result.final_output == "Hello there!"
    rows = spool_rows()
    assert sorted(steps_by_path(rows)) == [
        "Greeter",
        "Greeter/guardrail: politeness",
        "Greeter/guardrail: politeness/Classifier",
    ]
    assert len(of_kind(rows, "task")) == 1  # the guardrail's nested run joins the outer trace
    # The guardrail runs alongside the agent's own model call: compare as sets, not in order.
    assert sorted(call_places(rows)) == [
        ("greet", "Classifier", "Greeter/guardrail: politeness/Classifier"),
        ("greet", "Greeter", "Greeter"),
    ]
    truth = sorted(openai_truth(exchange.usage or {})["output_tokens"] for exchange in server.requests)
    assert sorted(row["output_tokens"] for row in of_kind(rows, "model_call")) == truth


async def test_an_agent_used_as_a_tool_nests_under_the_tool_step(
    recording: None, model: OpenAIChatCompletionsModel, server: LocalModelServer, spool_rows: Rows
) -> None:
    translator = Agent(name="Translator", instructions="Translate to French.", model=model)
    orchestrator = Agent(
        name="Orchestrator",
        model=model,
        tools=[translator.as_tool(tool_name="translate", tool_description="Translate to French.")],
    )
    server.enqueue(
        ScriptedReply(tool_calls=[("translate", {"input": "good morning"})]),
        ScriptedReply(text="bonjour"),
        ScriptedReply(text="In French: bonjour"),
    )
    result = await Runner.run(orchestrator, "Say good morning in French", run_config=RunConfig(workflow_name="i18n"))

    assert result.final_output == "In French: bonjour"
    rows = spool_rows()
    assert len(of_kind(rows, "task")) == 1
    assert steps_by_path(rows)["Orchestrator/translate"]["step_kind"] == "tool"
    assert call_places(rows) == [
        ("i18n", "Orchestrator", "Orchestrator"),
        ("i18n", "Translator", "Orchestrator/translate/Translator"),
        ("i18n", "Orchestrator", "Orchestrator"),
    ]
    assert_calls_match_server(rows, server)


# --- the example ------------------------------------------------------------------------------
async def test_example_agent_is_recorded_against_the_local_server(
    recording: None, server: LocalModelServer, spool_rows: Rows
) -> None:
    server.enqueue(*example.SCRIPT)
    answers = await example.run(server.openai_base_url)

    assert answers[1].startswith("You were charged twice for INV-1001")
    rows = spool_rows()
    assert [row["task_name"] for row in of_kind(rows, "task")] == ["support question"] * len(example.QUESTIONS)
    assert sorted(row["step_path"] for row in of_kind(rows, "step")) == [
        "Billing",
        "Billing/lookup_invoice",
        "Triage",  # the first question, answered by triage itself
        "Triage",
        "Triage/handoff: Triage -> Billing",
    ]
    assert [place[1] for place in call_places(rows)] == ["Triage", "Triage", "Billing", "Billing"]
    assert_calls_match_server(rows, server)


def test_example_main_runs_end_to_end_and_reports(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "AGENTPROF_DB": str(store)}
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run(
        [sys.executable, "-m", "agentprof.examples.openai_agents_agent"],
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
    assert {(row["task"], row["step"]) for row in data["steps"]} == {
        ("support question", "Triage"),
        ("support question", "Billing"),
    }
