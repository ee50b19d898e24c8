"""The LangGraph integration: real LangGraph and ChatOpenAI driving the real openai SDK over HTTP to the local server.

Ground truth is what the server billed (``server.requests[i].usage``), priced independently with
genai-prices; the agentprof rows must carry the same numbers, in the task and steps LangGraph ran.
"""

from __future__ import annotations

import asyncio
import json
import operator
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner
from genai_prices import Usage, calc_price
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool, tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint
from langgraph.func import task as graph_task
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.pregel import Pregel
from langgraph.pregel import _runner as pregel_runner
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

import agentprof
from agentprof import _runtime
from agentprof.cli import main as cli_main
from agentprof.examples import langgraph_agent
from agentprof.integrations import langgraph as integration
from agentprof.integrations import openai as openai_integration
from agentprof.testserver import LocalModelServer, RecordedExchange
from tests.integrations.helpers import openai_truth, usage_of

MODEL = "gpt-4o-mini"
Rows = Callable[[], list[dict[str, Any]]]
Graph = CompiledStateGraph[Any, Any, Any, Any]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def rows(profiled: _runtime.Runtime, spool_rows: Rows) -> Iterator[Rows]:
    """agentprof on a fresh store with openai and LangGraph instrumented; flushes and returns every row."""
    openai_integration.instrument()
    integration.instrument()
    yield spool_rows
    integration.uninstrument()
    openai_integration.uninstrument()


def chat_model(base_url: str) -> ChatOpenAI:
    # stream_usage: ask for usage on streams, as the server's ground truth only exists then.
    return ChatOpenAI(base_url=base_url, api_key="test", model=MODEL, max_retries=0, stream_usage=True)


@pytest.fixture
def llm(server: LocalModelServer) -> ChatOpenAI:
    return chat_model(server.openai_base_url)


# --- helpers -------------------------------------------------------------------------------


def of_kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["kind"] == kind]


def steps_named(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [row for row in of_kind(rows, "step") if row["step_name"] == name]


def server_cost(exchange: RecordedExchange) -> Decimal:
    """What the server's billed usage costs, priced without any agentprof code."""
    truth = openai_truth(exchange.usage or {})
    usage = Usage(
        input_tokens=truth["input_tokens"],
        output_tokens=truth["output_tokens"],
        cache_read_tokens=truth["cache_read_tokens"],
    )
    return calc_price(usage, MODEL, provider_id="openai").total_price


def assert_calls_match_server(calls: list[dict[str, Any]], server: LocalModelServer) -> None:
    """Each recorded call carries the tokens and cost the server billed for it (calls were sequential)."""
    assert len(calls) == len(server.requests)
    for row, exchange in zip(calls, server.requests, strict=True):
        assert exchange.usage is not None, "every call here asks for usage"
        truth = openai_truth(exchange.usage)
        assert usage_of(row, truth) == truth
        assert row["usage_known"] is True
        assert Decimal(row["cost_usd"]) == server_cost(exchange)


# --- graphs under test ---------------------------------------------------------------------


class Pipeline(TypedDict, total=False):
    ticket: str
    label: str
    draft: str
    final: str
    threads: Annotated[list[int], operator.add]


def ask(llm: ChatOpenAI, text: str) -> str:
    return str(llm.invoke([HumanMessage(text)]).content)


def pipeline_graph(llm: ChatOpenAI, name: str | None = "triage_pipeline") -> Graph:
    """classify -> draft -> review, one model call each, scripted by the ticket text."""

    def classify(state: Pipeline) -> Pipeline:
        return {"label": ask(llm, f"Label: {state['ticket']} [[reply:billing]]"), "threads": [threading.get_ident()]}

    def draft(state: Pipeline) -> Pipeline:
        return {"draft": ask(llm, f"Draft for {state['label']} [[reply:We will refund you.]] [[chunks:4]]")}

    def review(state: Pipeline) -> Pipeline:
        return {"final": ask(llm, f"Review: {state['draft']} [[reply:Approved.]]")}

    builder = StateGraph(Pipeline)
    builder.add_node("classify", classify)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", END)
    return builder.compile(name=name) if name is not None else builder.compile()


def async_pipeline_graph(llm: ChatOpenAI) -> Graph:
    """The pipeline with ``async def`` nodes calling ``ainvoke`` (the async openai client)."""

    async def aask(text: str) -> str:
        return str((await llm.ainvoke([HumanMessage(text)])).content)

    async def classify(state: Pipeline) -> Pipeline:
        return {"label": await aask(f"Label: {state['ticket']} [[reply:billing]]")}

    async def draft(state: Pipeline) -> Pipeline:
        return {"draft": await aask(f"Draft for {state['label']} [[reply:We will refund you.]] [[chunks:4]]")}

    builder = StateGraph(Pipeline)
    builder.add_node("classify", classify)
    builder.add_node("draft", draft)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "draft")
    return builder.compile(name="async_pipeline")


TOOL_THREADS: list[int] = []


@tool
def weather(city: str) -> str:
    """Current weather in a city."""
    TOOL_THREADS.append(threading.get_ident())
    return f"sunny in {city}"


@tool
async def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    await asyncio.sleep(0)
    return f"rain in {city}"


def tool_loop_graph(llm: ChatOpenAI, tools: list[BaseTool], *, use_async: bool = False, **tool_node: Any) -> Graph:
    """The canonical agent loop: ``agent`` calls the model with tools, ``tools`` runs them, until no tool call."""
    bound = llm.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", aagent if use_async else agent)
    builder.add_node("tools", ToolNode(tools, **tool_node))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name="weather_agent")


WEATHER_SCRIPT = '[[tool:weather {"city": "Paris"}]][[tool:weather {"city": "Paris"}]][[tool:weather {"city": "Rome"}]]'


# --- one task per run, one step per node ---------------------------------------------------


def test_invoke_is_one_task_and_each_node_a_step(llm: ChatOpenAI, server: LocalModelServer, rows: Rows) -> None:
    state = pipeline_graph(llm).invoke({"ticket": "charged twice"})

    assert (state["label"], state["draft"], state["final"]) == ("billing", "We will refund you.", "Approved.")
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert (task["task_name"], task["name"], task["status"], task["success"]) == (
        "triage_pipeline",
        "invoke_agent triage_pipeline",
        "ok",
        True,
    )
    steps = of_kind(recorded, "step")
    assert [step["step_name"] for step in steps] == ["classify", "draft", "review"]  # no LangGraph __start__
    assert all(step["parent_span_id"] == task["span_id"] and step["step_kind"] == "step" for step in steps)
    calls = of_kind(recorded, "model_call")
    for call, step in zip(calls, steps, strict=True):
        node = step["step_name"]
        assert (call["task_name"], call["step_name"], call["step_path"]) == ("triage_pipeline", node, node)
        assert call["parent_span_id"] == step["span_id"]
        assert call["task_id"] == step["task_id"] == task["span_id"]
    assert_calls_match_server(calls, server)


def test_tool_loop_records_each_tool_run_as_a_tool_step(llm: ChatOpenAI, server: LocalModelServer, rows: Rows) -> None:
    TOOL_THREADS.clear()
    state = tool_loop_graph(llm, [weather]).invoke({"messages": [HumanMessage(f"Weather? {WEATHER_SCRIPT}")]})

    tool_results = [message.content for message in state["messages"] if message.type == "tool"]
    assert tool_results == ["sunny in Paris", "sunny in Paris", "sunny in Rome"]
    assert state["messages"][-1].content == server.requests[-1].output_text
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["task_name"] == "weather_agent"
    (tools_step,) = steps_named(recorded, "tools")
    tool_steps = steps_named(recorded, "weather")
    assert len(tool_steps) == 3
    for step in tool_steps:
        assert (step["step_kind"], step["name"], step["step_path"]) == ("tool", "execute_tool weather", "tools/weather")
        assert step["parent_span_id"] == tools_step["span_id"] and step["task_id"] == task["span_id"]
    # ToolNode runs tool calls on worker threads: the copied context still carries the step.
    assert set(TOOL_THREADS) - {threading.get_ident()}
    # Same arguments and result hash alike though each call has its own id: the redundant-tool rule needs it.
    hashes = Counter((step["tool_args_hash"], step["tool_result_hash"]) for step in tool_steps)
    assert sorted(hashes.values()) == [1, 2]  # Paris twice, Rome once
    (paris_args, paris_result), (rome_args, rome_result) = sorted(hashes, key=hashes.__getitem__, reverse=True)
    assert paris_args != rome_args and paris_result != rome_result
    calls = of_kind(recorded, "model_call")
    assert [call["step_path"] for call in calls] == ["agent", "agent"]
    agent_steps = {step["span_id"] for step in steps_named(recorded, "agent")}
    assert len(agent_steps) == 2 and {call["parent_span_id"] for call in calls} == agent_steps
    assert_calls_match_server(calls, server)


def test_failing_tool_is_a_failed_tool_step_and_the_graph_goes_on(
    llm: ChatOpenAI, server: LocalModelServer, rows: Rows
) -> None:
    @tool
    def flaky(city: str) -> str:
        """Always fails."""
        raise RuntimeError(f"no data for {city}")

    state = tool_loop_graph(llm, [flaky], handle_tool_errors=True).invoke(
        {"messages": [HumanMessage('[[tool:flaky {"city": "Oslo"}]]')]}
    )

    (tool_message,) = [message for message in state["messages"] if message.type == "tool"]
    assert tool_message.status == "error"  # ToolNode turned the exception into an error message
    recorded = rows()
    (step,) = steps_named(recorded, "flaky")
    assert (step["step_kind"], step["status"], step["error_type"]) == ("tool", "error", "RuntimeError")
    (task,) = of_kind(recorded, "task")
    assert task["status"] == "ok" and task["success"] is True
    assert len(of_kind(recorded, "model_call")) == len(server.requests) == 2


# --- streaming -----------------------------------------------------------------------------


def test_stream_messages_mode_streams_tokens_and_records_the_stream(
    llm: ChatOpenAI, server: LocalModelServer, rows: Rows
) -> None:
    tokens: dict[str, list[str]] = {}
    events: Iterator[Any] = pipeline_graph(llm).stream({"ticket": "charged twice"}, stream_mode="messages")
    for chunk, metadata in events:
        if isinstance(chunk, AIMessageChunk) and chunk.content:
            tokens.setdefault(metadata["langgraph_node"], []).append(str(chunk.content))

    assert len(tokens["draft"]) == 4 and "".join(tokens["draft"]) == "We will refund you."
    assert "".join(tokens["review"]) == "Approved."
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["status"] == "ok"
    calls = of_kind(recorded, "model_call")
    assert [call["step_name"] for call in calls] == ["classify", "draft", "review"]
    assert all(call["stream"] is True and call["stream_complete"] is True for call in calls)
    assert all(exchange.stream for exchange in server.requests)
    assert_calls_match_server(calls, server)


def test_stream_messages_mode_runs_nodes_on_worker_threads_inside_their_steps(llm: ChatOpenAI, rows: Rows) -> None:
    events: list[Any] = list(pipeline_graph(llm).stream({"ticket": "x"}, stream_mode=["messages", "values"]))

    last_values = [data for mode, data in events if mode == "values"][-1]
    assert last_values["threads"] and threading.get_ident() not in last_values["threads"]
    calls = of_kind(rows(), "model_call")
    assert [call["step_path"] for call in calls] == ["classify", "draft", "review"]


def test_stream_closed_early_ends_the_task(llm: ChatOpenAI, server: LocalModelServer, rows: Rows) -> None:
    stream: Any = pipeline_graph(llm).stream({"ticket": "charged twice"}, stream_mode="updates")
    first = next(stream)
    stream.close()

    assert first["classify"]["label"] == "billing"
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["status"] == "ok"
    assert [step["step_name"] for step in of_kind(recorded, "step")] == ["classify"]
    assert len(of_kind(recorded, "model_call")) == len(server.requests) == 1


def test_stream_consumed_to_the_end_ends_the_task_after_the_last_node(llm: ChatOpenAI, rows: Rows) -> None:
    updates = list(pipeline_graph(llm).stream({"ticket": "charged twice"}))

    assert [next(iter(update)) for update in updates] == ["classify", "draft", "review"]
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["end_time_ns"] >= max(step["end_time_ns"] for step in of_kind(recorded, "step"))


# --- async ---------------------------------------------------------------------------------


async def test_ainvoke_with_async_nodes_and_async_and_sync_tools(
    llm: ChatOpenAI, server: LocalModelServer, rows: Rows
) -> None:
    graph = tool_loop_graph(llm, [weather, forecast], use_async=True)
    script = '[[tool:weather {"city": "Oslo"}]][[tool:forecast {"city": "Oslo"}]]'

    state = await graph.ainvoke({"messages": [HumanMessage(script)]})

    assert [message.content for message in state["messages"] if message.type == "tool"] == [
        "sunny in Oslo",
        "rain in Oslo",
    ]
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["task_name"] == "weather_agent" and task["status"] == "ok"
    tool_steps = {step["step_name"]: step for step in of_kind(recorded, "step") if step["step_kind"] == "tool"}
    assert set(tool_steps) == {"weather", "forecast"}  # sync tool via run_in_executor, async via arun
    (tools_step,) = steps_named(recorded, "tools")
    assert {step["parent_span_id"] for step in tool_steps.values()} == {tools_step["span_id"]}
    assert {step["step_path"] for step in tool_steps.values()} == {"tools/weather", "tools/forecast"}
    calls = of_kind(recorded, "model_call")
    assert [call["step_name"] for call in calls] == ["agent", "agent"]
    assert_calls_match_server(calls, server)


async def test_astream_messages_mode_streams_tokens_inside_async_node_steps(
    llm: ChatOpenAI, server: LocalModelServer, rows: Rows
) -> None:
    tokens: list[str] = []
    events: AsyncIterator[Any] = async_pipeline_graph(llm).astream({"ticket": "x"}, stream_mode="messages")
    async for chunk, metadata in events:
        if metadata["langgraph_node"] == "draft" and isinstance(chunk, AIMessageChunk) and chunk.content:
            tokens.append(str(chunk.content))

    assert len(tokens) == 4 and "".join(tokens) == "We will refund you."
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["task_name"] == "async_pipeline"
    steps = {step["step_name"]: step for step in of_kind(recorded, "step")}
    calls = of_kind(recorded, "model_call")
    assert [call["step_name"] for call in calls] == ["classify", "draft"]
    assert [call["parent_span_id"] for call in calls] == [steps["classify"]["span_id"], steps["draft"]["span_id"]]
    assert all(call["stream"] is True and call["stream_complete"] is True for call in calls)
    assert_calls_match_server(calls, server)


async def test_astream_closed_early_ends_the_task(llm: ChatOpenAI, server: LocalModelServer, rows: Rows) -> None:
    stream: Any = async_pipeline_graph(llm).astream({"ticket": "x"}, stream_mode="updates")
    first = await stream.__anext__()
    await stream.aclose()

    assert first == {"classify": {"label": "billing"}}
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["status"] == "ok"
    assert [step["step_name"] for step in of_kind(recorded, "step")] == ["classify"]
    assert len(server.requests) == 1


# --- failures ------------------------------------------------------------------------------


class NodeFailed(Exception):
    pass


def failing_graph(llm: ChatOpenAI, error: BaseException) -> Graph:
    def classify(state: Pipeline) -> Pipeline:
        return {"label": ask(llm, "[[reply:billing]]")}

    def explode(state: Pipeline) -> Pipeline:
        raise error

    builder = StateGraph(Pipeline)
    builder.add_node("classify", classify)
    builder.add_node("explode", explode)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "explode")
    return builder.compile(name="doomed")


@pytest.mark.parametrize("how", ["invoke", "stream", "ainvoke"])
async def test_exception_in_a_node_propagates_unchanged_and_fails_the_task(
    llm: ChatOpenAI, rows: Rows, how: str
) -> None:
    error = NodeFailed("kaput")
    graph = failing_graph(llm, error)

    with pytest.raises(NodeFailed) as caught:
        if how == "invoke":
            graph.invoke({"ticket": "x"})
        elif how == "stream":
            list(graph.stream({"ticket": "x"}))
        else:
            await graph.ainvoke({"ticket": "x"})

    assert caught.value is error
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert (task["status"], task["error_type"], task["success"]) == ("error", "NodeFailed", False)
    (classify,) = steps_named(recorded, "classify")
    (explode,) = steps_named(recorded, "explode")
    assert classify["status"] == "ok"
    assert (explode["status"], explode["error_type"]) == ("error", "NodeFailed")
    (call,) = of_kind(recorded, "model_call")
    assert call["step_name"] == "classify" and call["task_id"] == task["span_id"]


def test_interrupt_pauses_without_failing_and_resume_is_a_new_task(llm: ChatOpenAI, rows: Rows) -> None:
    def approve(state: Pipeline) -> Pipeline:
        return {"final": str(interrupt("approve?"))}

    builder = StateGraph(Pipeline)
    builder.add_node("classify", lambda state: {"label": ask(llm, "[[reply:billing]]")})
    builder.add_node("approve", approve)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "approve")
    graph = builder.compile(checkpointer=InMemorySaver(), name="approval")
    config: Any = {"configurable": {"thread_id": "t-1"}}

    paused = graph.invoke({"ticket": "x"}, config)
    resumed = graph.invoke(Command(resume="yes"), config)

    assert "__interrupt__" in paused and resumed["final"] == "yes"
    recorded = rows()
    tasks = of_kind(recorded, "task")
    assert [(task["task_name"], task["status"]) for task in tasks] == [("approval", "ok"), ("approval", "ok")]
    approvals = steps_named(recorded, "approve")
    assert [step["status"] for step in approvals] == ["ok", "ok"]  # GraphInterrupt is control flow
    assert [step["task_id"] for step in approvals] == [task["span_id"] for task in tasks]


# --- profiling changes nothing -------------------------------------------------------------


def normalised(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """Messages without LangChain's per-run random ids (the server's ids are deterministic)."""
    return [message.model_dump(exclude={"id"}) for message in messages]


def exercise(base_url: str) -> dict[str, Any]:
    """The framework's own test-style usage: a tool loop invoked and streamed, a token stream."""
    llm = chat_model(base_url)
    loop = tool_loop_graph(llm, [weather])
    invoked = loop.invoke({"messages": [HumanMessage(f"Weather? {WEATHER_SCRIPT}")]})
    updates = [
        {node: normalised(update["messages"]) for node, update in chunk.items()}
        for chunk in loop.stream({"messages": [HumanMessage('[[tool:weather {"city": "Rome"}]]')]})
    ]
    events: Iterator[Any] = pipeline_graph(llm).stream({"ticket": "x"}, stream_mode="messages")
    tokens = [(str(chunk.content), metadata["langgraph_node"]) for chunk, metadata in events]
    return {"invoked": normalised(invoked["messages"]), "updates": updates, "tokens": tokens}


def test_results_are_identical_with_and_without_agentprof(rows: Rows) -> None:
    integration.uninstrument()
    openai_integration.uninstrument()
    with LocalModelServer() as plain_server:
        plain = exercise(plain_server.openai_base_url)
    assert not rows(), "nothing is recorded while uninstrumented"
    openai_integration.instrument()
    integration.instrument()
    with LocalModelServer() as profiled_server:
        profiled = exercise(profiled_server.openai_base_url)

    assert profiled == plain
    assert plain["updates"] and plain["tokens"]
    assert [request.request_body for request in profiled_server.requests] == [
        request.request_body for request in plain_server.requests
    ]
    assert len(of_kind(rows(), "task")) == 3  # the profiled run really was profiled


# --- naming and nesting --------------------------------------------------------------------


def test_task_name_comes_from_config_metadata_then_the_graph_name(llm: ChatOpenAI, rows: Rows) -> None:
    pipeline_graph(llm).invoke({"ticket": "a"}, config={"metadata": {"agentprof_task": "refund_triage"}})
    pipeline_graph(llm).with_config(metadata={"agentprof_task": "configured"}).invoke({"ticket": "b"})
    pipeline_graph(llm, name=None).invoke({"ticket": "c"})

    recorded = rows()
    names = [task["task_name"] for task in of_kind(recorded, "task")]
    assert names == ["refund_triage", "configured", "LangGraph"]
    for task in of_kind(recorded, "task"):
        calls = [call for call in of_kind(recorded, "model_call") if call["task_id"] == task["span_id"]]
        assert len(calls) == 3 and {call["task_name"] for call in calls} == {task["task_name"]}


def test_graph_inside_a_user_task_is_a_step_not_a_second_task(
    llm: ChatOpenAI, server: LocalModelServer, rows: Rows
) -> None:
    with agentprof.task("support_ticket"):
        pipeline_graph(llm).invoke({"ticket": "charged twice"})

    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["task_name"] == "support_ticket"
    (graph_step,) = steps_named(recorded, "triage_pipeline")
    assert graph_step["parent_span_id"] == task["span_id"] and graph_step["step_path"] == "triage_pipeline"
    calls = of_kind(recorded, "model_call")
    assert [call["step_path"] for call in calls] == [
        f"triage_pipeline/{node}" for node in ("classify", "draft", "review")
    ]
    assert {call["task_name"] for call in calls} == {"support_ticket"}
    assert_calls_match_server(calls, server)


def test_subgraph_nodes_nest_under_the_parent_node(llm: ChatOpenAI, server: LocalModelServer, rows: Rows) -> None:
    child_builder = StateGraph(Pipeline)
    child_builder.add_node("lookup", lambda state: {"draft": ask(llm, "[[reply:found it]]")})
    child_builder.add_edge(START, "lookup")
    child = child_builder.compile(name="research")

    def summarize(state: Pipeline) -> Pipeline:
        looked_up = child.invoke({"ticket": state["ticket"]})  # a subgraph called from inside a node
        return {"final": ask(llm, f"{looked_up['draft']} [[reply:summary]]")}

    builder = StateGraph(Pipeline)
    builder.add_node("research", child)  # a subgraph as a node
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "research")
    builder.add_edge("research", "summarize")
    state = builder.compile(name="parent").invoke({"ticket": "x"})

    assert state["final"] == "summary"
    recorded = rows()
    (task,) = of_kind(recorded, "task")
    assert task["task_name"] == "parent"
    paths = [call["step_path"] for call in of_kind(recorded, "model_call")]
    assert paths == ["research/lookup", "summarize/lookup", "summarize"]
    steps = {step["step_path"]: step for step in of_kind(recorded, "step")}
    assert steps["research/lookup"]["parent_span_id"] == steps["research"]["span_id"]
    assert steps["summarize/lookup"]["parent_span_id"] == steps["summarize"]["span_id"]
    assert {row["task_id"] for row in recorded} == {task["span_id"]}
    assert_calls_match_server(of_kind(recorded, "model_call"), server)


def test_functional_api_tasks_are_steps_under_the_entrypoint(
    llm: ChatOpenAI, server: LocalModelServer, rows: Rows
) -> None:
    @graph_task
    def summarize(text: str) -> str:
        return ask(llm, f"{text} [[reply:short]]")

    @entrypoint()
    def workflow(texts: list[str]) -> list[str]:
        futures = [summarize(text) for text in texts]  # LangGraph runs them on its executor
        return [future.result() for future in futures]

    assert workflow.invoke(["a", "b"]) == ["short", "short"]
    recorded = rows()
    (run,) = of_kind(recorded, "task")
    (entry,) = steps_named(recorded, "workflow")
    tasks = steps_named(recorded, "summarize")
    assert [step["step_path"] for step in tasks] == ["workflow/summarize"] * 2
    assert {step["parent_span_id"] for step in tasks} == {entry["span_id"]}
    calls = of_kind(recorded, "model_call")
    assert sorted(call["parent_span_id"] for call in calls) == sorted(step["span_id"] for step in tasks)
    assert {call["task_id"] for call in calls} == {run["span_id"]}
    assert len(calls) == len(server.requests) == 2


def test_batch_is_one_task_per_input(llm: ChatOpenAI, rows: Rows) -> None:
    results = pipeline_graph(llm).batch([{"ticket": "a"}, {"ticket": "b"}])

    assert [result["final"] for result in results] == ["Approved.", "Approved."]
    recorded = rows()
    tasks = of_kind(recorded, "task")
    assert len(tasks) == 2
    for task in tasks:
        calls = [call for call in of_kind(recorded, "model_call") if call["task_id"] == task["span_id"]]
        assert sorted(call["step_name"] for call in calls) == ["classify", "draft", "review"]


def test_tools_outside_any_task_are_not_recorded(rows: Rows) -> None:
    assert weather.invoke({"city": "Lima"}) == "sunny in Lima"
    with agentprof.task("manual"):
        assert weather.invoke({"city": "Lima"}) == "sunny in Lima"

    steps = of_kind(rows(), "step")
    assert [(step["task_name"], step["step_name"], step["step_kind"]) for step in steps] == [
        ("manual", "weather", "tool")
    ]


# --- instrumentation lifecycle -------------------------------------------------------------


def test_uninstrument_restores_the_original_functions(llm: ChatOpenAI, rows: Rows) -> None:
    patched = [(Pregel, "stream"), (Pregel, "astream"), (BaseTool, "run"), (BaseTool, "arun")]
    runner_names = ["run_with_retry", "arun_with_retry"]
    integration.uninstrument()
    originals = [owner.__dict__[name] for owner, name in patched] + [vars(pregel_runner)[n] for n in runner_names]

    integration.instrument()
    integration.instrument()  # idempotent: wrapped once
    wrapped = [owner.__dict__[name] for owner, name in patched] + [vars(pregel_runner)[n] for n in runner_names]
    assert integration.is_instrumented()
    assert all(new is not old and new.__wrapped__ is old for new, old in zip(wrapped, originals, strict=True))

    integration.uninstrument()
    restored = [owner.__dict__[name] for owner, name in patched] + [vars(pregel_runner)[n] for n in runner_names]
    assert not integration.is_instrumented()
    assert all(new is old for new, old in zip(restored, originals, strict=True))
    pipeline_graph(llm).invoke({"ticket": "x"})
    recorded = rows()
    assert not of_kind(recorded, "task") and not of_kind(recorded, "step")
    assert {call["task_name"] for call in of_kind(recorded, "model_call")} == {"(untracked)"}


def test_after_shutdown_graph_runs_record_nothing_and_configure_nothing(llm: ChatOpenAI, rows: Rows) -> None:
    _runtime.shutdown()

    assert pipeline_graph(llm).invoke({"ticket": "x"})["final"] == "Approved."
    assert _runtime.get_runtime() is None  # a graph run never sets up a store on its own


# --- the example ---------------------------------------------------------------------------


def test_example_main_records_every_call_in_its_graph_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "example-store")
    langgraph_agent.main(db=store)

    out = capsys.readouterr().out
    assert "T-3: Yes, we do." in out and "support_agent" in out
    result = CliRunner().invoke(cli_main, ["report", "--db", store, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # T-1: classify + 2 agent turns; T-2: classify + 2 agent turns; T-3: classify + 1 agent turn.
    assert data["summary"]["tasks"] == len(langgraph_agent.TICKETS) == 3
    assert data["summary"]["model_calls"] == 8 and data["summary"]["unpriced_calls"] == 0
    steps = {(row["task"], row["step"]): row["model_calls"] for row in data["steps"]}
    assert steps == {("support_agent", "classify"): 3, ("support_agent", "agent"): 5}
    assert not integration.is_instrumented() and _runtime.get_runtime() is None
