"""A LangGraph support agent profiled by agentprof: each graph run a task, each node a step, each tool a tool step.

The graph is plain LangGraph with ``ChatOpenAI`` (the real ``langchain-openai`` over the real
``openai`` SDK): ``classify`` labels the ticket, then ``agent`` and ``tools`` loop until the
model stops calling tools. Nothing in it knows about agentprof; ``main()`` only turns the two
integrations on. It runs against the local model server that ships with agentprof, so it
needs no API key and no network::

    pip install langgraph langchain-openai
    python -m agentprof.examples.langgraph_agent     # then: agentprof report

The local server plays the model. Each ticket carries a short *script* per node (``[[...]]``
directives the server obeys, see ``agentprof.testserver``) so answers are deterministic; drop
the scripts and the ``base_url`` to run it against OpenAI for real.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

import agentprof
from agentprof.integrations import langgraph as langgraph_integration

MODEL = "gpt-4o-mini"
GRAPH_NAME = "support_agent"

ORDERS: dict[str, dict[str, Any]] = {
    "A-100": {"status": "shipped", "carrier": "DHL", "eta_days": 2},
    "A-200": {"status": "delayed", "carrier": "UPS", "eta_days": 9},
}


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Fetch an order's status, carrier and expected delivery."""
    return ORDERS.get(order_id, {"error": "unknown order"})


@tool
def refund_policy(category: str) -> str:
    """The refund policy that applies to a ticket category."""
    return f"Refunds for {category} issues: full refund within 30 days, store credit after."


TOOLS = [lookup_order, refund_policy]


@dataclass(frozen=True)
class Ticket:
    """A customer ticket, plus the local server's script for each node (empty for real providers)."""

    id: str
    text: str
    script: dict[str, str] = field(default_factory=dict)


TICKETS = [
    Ticket(
        "T-1",
        "Where is my order A-100?",
        {"classify": "[[reply:shipping]]", "agent": '[[tool:lookup_order {"order_id": "A-100"}]]'},
    ),
    Ticket(
        "T-2",
        "Order A-200 is late, I want my money back.",
        {
            "classify": "[[reply:refund]]",
            "agent": '[[tool:lookup_order {"order_id": "A-200"}]][[tool:refund_policy {"category": "refund"}]]',
        },
    ),
    Ticket("T-3", "Do you ship to Iceland?", {"classify": "[[reply:other]]", "agent": "[[reply:Yes, we do.]]"}),
]


class SupportState(TypedDict):
    """The graph's state: the ticket, its label and the agent's conversation."""

    ticket: Ticket
    category: str
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(openai_base_url: str | None = None, api_key: str = "local") -> CompiledStateGraph[Any, Any, Any, Any]:
    """The support graph: ``classify`` -> ``agent`` <-> ``tools``, compiled under the name ``support_agent``."""
    llm = ChatOpenAI(model=MODEL, base_url=openai_base_url, api_key=api_key, max_retries=0)
    agent_llm = llm.bind_tools(TOOLS)

    def classify(state: SupportState) -> dict[str, Any]:
        ticket = state["ticket"]
        answer = llm.invoke(
            [
                SystemMessage("Label the ticket with one word: shipping, refund or other."),
                HumanMessage(ticket.text + ticket.script.get("classify", "")),
            ]
        )
        return {"category": str(answer.content).strip().lower()}

    def agent(state: SupportState) -> dict[str, Any]:
        messages = state["messages"]
        if not messages:
            ticket = state["ticket"]
            messages = [
                SystemMessage(f"You are a support agent for {state['category']} tickets. Use tools, then answer."),
                HumanMessage(ticket.text + ticket.script.get("agent", "")),
            ]
            return {"messages": [*messages, agent_llm.invoke(messages)]}
        return {"messages": [agent_llm.invoke(messages)]}

    builder = StateGraph(SupportState)
    builder.add_node("classify", classify)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name=GRAPH_NAME)


def run(openai_base_url: str | None = None, tickets: list[Ticket] | None = None) -> list[str]:
    """Answer every ticket with one graph run each; return the final answers."""
    graph = build_graph(openai_base_url)
    answers = []
    for ticket in tickets if tickets is not None else TICKETS:
        state = graph.invoke({"ticket": ticket, "category": "", "messages": []})
        answers.append(str(state["messages"][-1].content))
    return answers


def main(db: str | None = None) -> None:
    """Run the agent against a fresh local model server, then print ``agentprof report`` for the store."""
    from agentprof.cli import main as cli
    from agentprof.testserver import TestServer

    agentprof.configure(db=db, service_name="langgraph-example")
    agentprof.instrument()
    langgraph_integration.instrument()
    try:
        with TestServer() as server:
            answers = run(server.openai_base_url)
    finally:
        langgraph_integration.uninstrument()
        agentprof.uninstrument()
        agentprof.shutdown()
    for ticket, answer in zip(TICKETS, answers, strict=True):
        print(f"{ticket.id}: {answer}")
    print()
    cli.main(["report", *(["--db", db] if db else [])], standalone_mode=False)
    print("\nExplore further: agentprof tasks   then   agentprof show TASK_ID")


if __name__ == "__main__":
    main()
