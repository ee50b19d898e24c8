"""A support-ticket triage agent: classify, plan, then a tool loop that drafts the reply.

It uses the real ``openai`` and ``anthropic`` SDKs. ``agentprof demo`` runs it against the
local model server that ships with agentprof, so it needs no API key and no network:

    python -m agentprof.examples.support_triage      # or: agentprof demo

The local server plays the model. Each ticket carries a short *script* per step (``[[...]]``
directives the server obeys, see ``agentprof.testserver``) so answers are deterministic; drop
the scripts and point the clients at real providers to run it for real.

Things this agent does that cost money, on purpose, because real agents do them too:
classification on a frontier model, the same long policy re-sent to Claude on every ticket
without prompt caching, duplicate tickets classified again, and a tool loop that re-sends a
growing context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

import agentprof

POLICY = "\n".join(
    f"Policy {i}: when a customer reports a {topic}, confirm the account, check recent changes, "
    f"quote the relevant help-centre article, never promise refunds above $50 without approval, "
    f"and keep the tone calm and specific."
    for i, topic in enumerate(["billing error", "login problem", "bug", "data export", "cancellation"] * 12)
)

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_account",
            "description": "Fetch a customer's plan, status and recent invoices.",
            "parameters": {
                "type": "object",
                "properties": {"customer_id": {"type": "string"}},
                "required": ["customer_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_help_centre",
            "description": "Search help-centre articles.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    },
]

ACCOUNTS: dict[str, dict[str, Any]] = {
    "c-101": {"plan": "pro", "status": "active", "last_invoice": "$49.00 (charged twice)"},
    "c-202": {"plan": "team", "status": "locked", "last_invoice": "$120.00"},
    "c-303": {"plan": "free", "status": "active", "last_invoice": None},
}


@dataclass(frozen=True)
class Ticket:
    """A customer ticket, plus the local server's script for each step (empty for real providers)."""

    id: str
    customer_id: str
    text: str
    script: dict[str, str] = field(default_factory=dict)


def _tool_script(customer_id: str, query: str) -> str:
    return (
        f'[[tool:lookup_account {{"customer_id": "{customer_id}"}}]][[tool:search_help_centre {{"query": "{query}"}}]]'
    )


TICKETS = [
    Ticket(
        "T-1",
        "c-101",
        "I was charged twice for my Pro plan this month.",
        {"classify": "[[reply:billing]]", "resolve": _tool_script("c-101", "double charge")},
    ),
    Ticket(
        "T-2",
        "c-202",
        "My account is locked after I changed my password.",
        {"classify": "[[reply:account]]", "resolve": _tool_script("c-202", "locked account")},
    ),
    Ticket(
        "T-3",
        "c-303",
        "Export to CSV crashes with a 500 error.",
        {"classify": "[[reply:bug]]", "resolve": _tool_script("c-303", "csv export error")},
    ),
    # The same complaint again: classified (and paid for) a second time.
    Ticket(
        "T-4",
        "c-101",
        "I was charged twice for my Pro plan this month.",
        {"classify": "[[reply:billing]]", "resolve": _tool_script("c-101", "double charge")},
    ),
    Ticket("T-5", "c-303", "Do you have a dark mode?", {"classify": "[[reply:other]]"}),
    # The planner's provider fails on this one: the task fails, its spend still counts.
    Ticket(
        "T-6",
        "c-202",
        "Please cancel my subscription today.",
        {"classify": "[[reply:account]]", "plan": "[[status:500]]"},
    ),
]


@agentprof.step(name="classify")
def classify(llm: openai.OpenAI, ticket: Ticket) -> str:
    """Label the ticket (a one-word answer: a frontier model is overkill here)."""
    response = llm.chat.completions.create(
        model="gpt-4o",
        temperature=0,
        messages=[
            {"role": "system", "content": "Classify the ticket. Answer with one word: billing, account, bug, other."},
            {"role": "user", "content": ticket.text + ticket.script.get("classify", "")},
        ],
    )
    return (response.choices[0].message.content or "other").strip().lower()


@agentprof.step(name="plan")
def plan(claude: anthropic.Anthropic, ticket: Ticket, label: str) -> str:
    """Ask Claude for a plan, re-sending the long support policy every time (no cache_control)."""
    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=300,
        system=POLICY,
        messages=[{"role": "user", "content": f"[{label}] {ticket.text}{ticket.script.get('plan', '')}"}],
    )
    return "".join(block.text for block in message.content if block.type == "text")


@agentprof.step(name="lookup_account", kind="tool")
def lookup_account(customer_id: str) -> dict[str, Any]:
    """Tool: the account record."""
    return ACCOUNTS.get(customer_id, {"error": "unknown customer"})


@agentprof.step(name="search_help_centre", kind="tool")
def search_help_centre(query: str) -> list[str]:
    """Tool: matching help-centre article titles."""
    return [f"How we handle: {query}", "Contacting support"]


def _run_tool(name: str, arguments: dict[str, Any]) -> Any:
    if name == "lookup_account":
        return lookup_account(str(arguments.get("customer_id", "")))
    return search_help_centre(str(arguments.get("query", "")))


@agentprof.step(name="resolve")
def resolve(llm: openai.OpenAI, ticket: Ticket, plan_text: str) -> str:
    """Tool loop on a small model; the final answer is streamed to the customer."""
    messages: list[Any] = [
        {"role": "system", "content": "You are a support agent. Use tools, then answer the customer."},
        {"role": "user", "content": f"{ticket.text}\nPlan: {plan_text}{ticket.script.get('resolve', '')}"},
    ]
    for _ in range(4):
        response = llm.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        choice = response.choices[0].message
        if not choice.tool_calls:
            break
        messages.append(choice.model_dump(exclude_none=True))
        for call in choice.tool_calls:
            if call.type != "function":
                continue
            result = _run_tool(call.function.name, json.loads(call.function.arguments or "{}"))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    stream = llm.chat.completions.create(
        model="gpt-4o-mini",
        messages=[*messages, {"role": "user", "content": "Write the final reply."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


@agentprof.task(name="triage_ticket")
def triage(llm: openai.OpenAI, claude: anthropic.Anthropic, ticket: Ticket) -> str:
    """One ticket end to end. Tickets labelled "other" need a human: an explicit failed outcome."""
    label = classify(llm, ticket)
    if label == "other":
        agentprof.set_outcome(success=False)
        return "escalated to a human"
    return resolve(llm, ticket, plan(claude, ticket, label))


def run(openai_base_url: str, anthropic_base_url: str, rounds: int = 1) -> dict[str, int]:
    """Triage every ticket ``rounds`` times; return how many succeeded and failed."""
    llm = openai.OpenAI(base_url=openai_base_url, api_key="local", max_retries=0)
    claude = anthropic.Anthropic(base_url=anthropic_base_url, api_key="local", max_retries=0)
    outcome = {"ok": 0, "failed": 0}
    try:
        for _ in range(rounds):
            for ticket in TICKETS:
                try:
                    triage(llm, claude, ticket)
                    outcome["ok"] += 1
                except (openai.APIError, anthropic.APIError):
                    outcome["failed"] += 1
    finally:
        llm.close()
        claude.close()
    return outcome


def main() -> None:
    """Run the agent against a fresh local model server."""
    from agentprof.testserver import TestServer

    agentprof.instrument()
    with TestServer() as server:
        print(run(server.openai_base_url, server.anthropic_base_url))
    agentprof.shutdown()


if __name__ == "__main__":
    main()
