"""Recommendations against a workload with known waste, then the same workload with the fixes applied.

The wasteful run (real openai and anthropic SDKs against the local model server) has exactly
three kinds of waste: a one-word classification on a frontier model, a FAQ step where a third
of the requests repeat earlier ones, and an Anthropic loop re-sending a long policy without
prompt caching. It also has steps that must not be flagged: long varied drafts and unique
cheap embeddings. The fixed run applies each suggestion (the suggested cheaper model, a
response cache, ``cache_control`` on the policy); the measured saving of each step must match
the estimate within ±20%.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import agentprof
from agentprof import _runtime
from agentprof._config import resolve_store_location
from agentprof.analytics import Filters
from agentprof.reports.rules._base import Finding
from agentprof.reports.rules._engine import run_rules
from agentprof.store import open_store
from agentprof.store.schema import model_calls
from agentprof.testserver import TestServer

TASKS = 24
LABELS = ("billing", "account", "bug")
FAQS = [f"How do I change setting number {i} in my workspace?" for i in range(16)]
POLICY = "\n".join(
    f"Rule {i}: verify the customer's identity, check the account history, cite the help-centre article, "
    "escalate refunds above fifty dollars, and answer in a calm and specific tone."
    for i in range(120)
)


@dataclass(frozen=True)
class Fixes:
    classify_model: str = "gpt-4o"
    response_cache: bool = False
    prompt_caching: bool = False


def run_workload(server: TestServer, db: Path, fixes: Fixes) -> None:
    """Run TASKS support tasks; every step's waste is deliberate (see the module docstring)."""
    agentprof.configure(db=str(db))
    agentprof.instrument()
    llm = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    claude = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0)
    faq_cache: dict[str, str] = {}
    system: Any = POLICY
    if fixes.prompt_caching:
        system = [{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}]
    try:
        for i in range(TASKS):
            with agentprof.task("support"):
                with agentprof.step("classify"):
                    llm.chat.completions.create(
                        model=fixes.classify_model,
                        temperature=0,
                        messages=[
                            {"role": "system", "content": "Answer with one word: billing, account or bug."},
                            {"role": "user", "content": f"Ticket {i}: my issue #{i}[[reply:{LABELS[i % 3]}]]"},
                        ],
                    )
                with agentprof.step("lookup_faq"):
                    question = FAQS[i % len(FAQS)]  # 24 requests over 16 questions: a third repeat
                    if not (fixes.response_cache and question in faq_cache):
                        answer = llm.chat.completions.create(
                            model="gpt-5-nano", temperature=0, messages=[{"role": "user", "content": question}]
                        )
                        faq_cache[question] = answer.choices[0].message.content or ""
                with agentprof.step("plan"):
                    claude.messages.create(
                        model="claude-sonnet-4-6",
                        max_tokens=1000,
                        system=system,
                        messages=[{"role": "user", "content": f"Plan for ticket {i}[[output_tokens:400]]"}],
                    )
                with agentprof.step("draft"):
                    llm.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": f"Draft a detailed reply {i}[[output_tokens:600]]"}],
                    )
                with agentprof.step("embed"):
                    llm.embeddings.create(model="text-embedding-3-small", input=f"ticket {i} body")
    finally:
        llm.close()
        claude.close()
        agentprof.uninstrument()
        _runtime.shutdown()


def step_costs(db: Path) -> dict[str, Decimal]:
    from sqlalchemy import func, select

    with open_store(resolve_store_location(str(db))) as store, store.engine.connect() as conn:
        rows = conn.execute(
            select(model_calls.c.step_name, func.sum(model_calls.c.cost_usd)).group_by(model_calls.c.step_name)
        ).all()
    return {step: Decimal(str(cost)) for step, cost in rows}


def findings(db: Path) -> list[Finding]:
    with open_store(resolve_store_location(str(db))) as store, store.engine.connect() as conn:
        return run_rules(conn, Filters())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("recommendations")
    with TestServer() as server:
        run_workload(server, base / "wasteful", Fixes())
        found = findings(base / "wasteful")
        cheaper = next(f for f in found if f.kind == "cheaper_model")
        candidate = str(cheaper.evidence["candidate_model"])
        server.prompt_cache.clear()
        run_workload(server, base / "fixed", Fixes(classify_model=candidate, response_cache=True, prompt_caching=True))
    yield {
        "findings": found,
        "wasteful": step_costs(base / "wasteful"),
        "fixed": step_costs(base / "fixed"),
        "db": base / "wasteful",
    }


def test_exactly_the_expected_findings(runs: dict[str, Any]) -> None:
    kinds = sorted((f.kind, f.step) for f in runs["findings"])
    assert kinds == [("cheaper_model", "classify"), ("exact_cache", "lookup_faq"), ("prompt_cache", "plan")]
    by_kind = {f.kind: f for f in runs["findings"]}
    assert by_kind["cheaper_model"].confidence == "low"
    assert by_kind["exact_cache"].evidence["repeats"] == TASKS - len(FAQS)
    assert by_kind["prompt_cache"].model == "claude-sonnet-4-6"


@pytest.mark.parametrize(
    ("kind", "step"), [("cheaper_model", "classify"), ("exact_cache", "lookup_faq"), ("prompt_cache", "plan")]
)
def test_estimates_match_measured_savings_within_20_percent(runs: dict[str, Any], kind: str, step: str) -> None:
    finding = next(f for f in runs["findings"] if f.kind == kind)
    measured = runs["wasteful"][step] - runs["fixed"][step]
    assert measured > 0
    low, high = finding.savings_range_usd
    assert low <= finding.estimated_savings_usd <= high
    assert abs(finding.estimated_savings_usd - measured) <= Decimal("0.2") * measured, (kind, finding, measured)


def test_same_records_give_the_same_findings_in_the_same_order(runs: dict[str, Any]) -> None:
    assert findings(runs["db"]) == runs["findings"]
    assert findings(runs["db"]) == runs["findings"]
