"""A customer-support agent built with the OpenAI Agents SDK, profiled by agentprof.

A triage agent answers simple questions itself and hands billing questions to a billing agent,
which looks the invoice up with a tool. agentprof records each ``Runner.run`` as a task and the
agents, the handoff and the tool call as its steps, with the cost of every model call::

    python -m agentprof.examples.openai_agents_agent
    agentprof report

It runs against the local model server that ships with agentprof, so it needs no API key and no
network: ``SCRIPT`` is what that server answers, in order. Drop the script and point ``run`` at
``https://api.openai.com/v1`` with a real key to run it for real.
"""

from __future__ import annotations

import asyncio

import agents
import openai
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool

import agentprof
from agentprof.integrations import openai_agents
from agentprof.testserver import ScriptedReply, TestServer

INVOICES = {"INV-1001": "$49.00, charged twice on 3 March", "INV-1002": "$120.00, paid"}

QUESTIONS = [
    "Do you have a dark mode?",
    "I was charged twice on invoice INV-1001.",
]

#: The local server's answers, in the order the agents ask (one model call each).
SCRIPT = [
    ScriptedReply(text="Yes: Settings > Appearance > Dark."),  # triage answers the first question itself
    ScriptedReply(tool_calls=[("transfer_to_billing", {})]),  # ...and hands the second one to billing,
    ScriptedReply(tool_calls=[("lookup_invoice", {"invoice_id": "INV-1001"})]),  # which checks the invoice
    ScriptedReply(text="You were charged twice for INV-1001; the duplicate $49.00 is being refunded."),
]


@function_tool
def lookup_invoice(invoice_id: str) -> str:
    """Amount and status of an invoice."""
    return INVOICES.get(invoice_id, "no such invoice")


def build_triage(model: OpenAIChatCompletionsModel) -> Agent[None]:
    """The entry agent, with a billing specialist to hand off to."""
    billing = Agent[None](
        name="Billing",
        instructions="Resolve billing problems. Look invoices up before answering.",
        model=model,
        tools=[lookup_invoice],
    )
    return Agent[None](
        name="Triage",
        instructions="Answer product questions; hand billing questions to Billing.",
        model=model,
        handoffs=[billing],
    )


async def run(openai_base_url: str, api_key: str = "local") -> list[str]:
    """Answer every question, one agent run (one agentprof task) each; return the answers."""
    client = openai.AsyncOpenAI(base_url=openai_base_url, api_key=api_key, max_retries=0)
    try:
        triage = build_triage(OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client))
        answers = []
        for question in QUESTIONS:
            result = await Runner.run(triage, question, run_config=RunConfig(workflow_name="support question"))
            answers.append(str(result.final_output))
        return answers
    finally:
        await client.close()


def main() -> None:
    """Run the agent against a fresh local model server, then point at ``agentprof report``."""
    agents.set_trace_processors([])  # keep the SDK from uploading this demo's traces to OpenAI
    agentprof.instrument()  # records the openai calls
    openai_agents.instrument()  # maps runs, agents, handoffs and tools onto tasks and steps (idempotent)
    with TestServer() as server:
        server.enqueue(*SCRIPT)
        for question, answer in zip(QUESTIONS, asyncio.run(run(server.openai_base_url)), strict=True):
            print(f"Q: {question}\nA: {answer}\n")
    agentprof.shutdown()
    print("Now run `agentprof report` to see where the money went.")


if __name__ == "__main__":
    main()
