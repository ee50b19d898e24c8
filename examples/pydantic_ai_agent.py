"""A customer-support agent built with pydantic-ai, profiled by agentprof.

The agent answers product questions itself and looks invoices up with a tool for billing ones.
agentprof records each ``agent.run`` as a task named after the agent, the tool call as its step,
and the cost of every model call::

    python -m agentprof.examples.pydantic_ai_agent
    agentprof report

It runs against the local model server that ships with agentprof, so it needs no API key and no
network: ``SCRIPT`` is what that server answers, in order. Drop the script and point ``run`` at
``https://api.openai.com/v1`` with a real key to run it for real.
"""

from __future__ import annotations

import asyncio

import openai
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import agentprof
from agentprof.integrations import pydantic_ai
from agentprof.testserver import ScriptedReply, TestServer

INVOICES = {"INV-1001": "$49.00, charged twice on 3 March", "INV-1002": "$120.00, paid"}

QUESTIONS = [
    "Do you have a dark mode?",
    "I was charged twice on invoice INV-1001.",
]

#: The local server's answers, in the order the agent asks (one model call each).
SCRIPT = [
    ScriptedReply(text="Yes: Settings > Appearance > Dark."),  # the first question needs no tool
    ScriptedReply(tool_calls=[("lookup_invoice", {"invoice_id": "INV-1001"})]),  # the second one does
    ScriptedReply(text="You were charged twice for INV-1001; the duplicate $49.00 is being refunded."),
]


def build_agent(model: OpenAIChatModel) -> Agent[None, str]:
    """The support agent, with its invoice tool."""
    agent = Agent(
        model,
        name="support",
        instructions="Answer product questions; look invoices up before answering billing questions.",
    )

    @agent.tool_plain
    def lookup_invoice(invoice_id: str) -> str:
        """Amount and status of an invoice."""
        return INVOICES.get(invoice_id, "no such invoice")

    return agent


async def run(openai_base_url: str, api_key: str = "local") -> list[str]:
    """Answer every question, one agent run (one agentprof task) each; return the answers."""
    client = openai.AsyncOpenAI(base_url=openai_base_url, api_key=api_key, max_retries=0)
    try:
        agent = build_agent(OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client)))
        return [(await agent.run(question)).output for question in QUESTIONS]
    finally:
        await client.close()


def main() -> None:
    """Run the agent against a fresh local model server, then point at ``agentprof report``."""
    agentprof.instrument()  # records the openai calls
    pydantic_ai.instrument()  # maps agent runs and tool calls onto tasks and steps (idempotent)
    with TestServer() as server:
        server.enqueue(*SCRIPT)
        for question, answer in zip(QUESTIONS, asyncio.run(run(server.openai_base_url)), strict=True):
            print(f"Q: {question}\nA: {answer}\n")
    agentprof.shutdown()
    print("Now run `agentprof report` to see where the money went.")


if __name__ == "__main__":
    main()
