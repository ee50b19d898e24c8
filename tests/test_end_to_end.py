"""End to end: real SDKs over real HTTP, many processes, one store, totals equal ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from genai_prices import Usage, calc_price

import agentprof
from agentprof import _runtime
from agentprof.cli import main
from agentprof.examples import support_triage
from agentprof.testserver import RecordedExchange, TestServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as running:
        yield running


def independent_cost(exchange: RecordedExchange) -> Decimal:
    """Price one exchange from the usage the server sent, without any agentprof code."""
    usage = exchange.usage
    assert usage is not None
    if exchange.api == "openai":
        details = usage.get("prompt_tokens_details") or {}
        canonical = Usage(
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            cache_read_tokens=details.get("cached_tokens") or 0,
        )
        provider = "openai"
    else:
        read = usage.get("cache_read_input_tokens") or 0
        write = usage.get("cache_creation_input_tokens") or 0
        canonical = Usage(
            input_tokens=usage["input_tokens"] + read + write,
            output_tokens=usage["output_tokens"],
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
        provider = "anthropic"
    assert exchange.model is not None
    return calc_price(canonical, exchange.model, provider_id=provider).total_price


def report_json(db: Path) -> dict[str, object]:
    result = CliRunner().invoke(main, ["report", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data, dict)
    return data


def test_report_totals_equal_cost_of_server_ground_truth(tmp_path: Path, server: TestServer) -> None:
    db = tmp_path / "store"
    agentprof.configure(db=str(db))
    agentprof.instrument()
    try:
        outcome = support_triage.run(server.openai_base_url, server.anthropic_base_url, rounds=2)
    finally:
        agentprof.uninstrument()
        _runtime.shutdown()
    exchanges = server.requests
    billed = [exchange for exchange in exchanges if exchange.usage is not None]
    expected = sum((independent_cost(exchange) for exchange in billed), Decimal(0))

    data = report_json(db)
    summary = data["summary"]
    assert isinstance(summary, dict)
    assert summary["model_calls"] == len(exchanges)
    assert summary["unpriced_calls"] == len(exchanges) - len(billed)  # the scripted 500s: no usage, never $0
    assert summary["tasks"] == 2 * len(support_triage.TICKETS)
    assert summary["failed_tasks"] == outcome["failed"] + 2  # raised, plus the explicit "other" escalations
    total = Decimal(str(summary["total_cost_usd"]))
    assert abs(total - expected) <= expected * Decimal("1e-9")
    steps = {(row["task"], row["step"]): row for row in data["steps"]}  # type: ignore[union-attr]
    assert set(steps) == {("triage_ticket", name) for name in ("classify", "plan", "resolve")}
    step_total = sum(Decimal(str(row["cost_usd"])) for row in steps.values())
    assert abs(step_total - total) <= total * Decimal("1e-9")
    assert steps[("triage_ticket", "classify")]["models"] == ["gpt-4o"]


def test_eight_processes_into_one_store_lose_nothing(tmp_path: Path, server: TestServer) -> None:
    db = tmp_path / "shared-store"
    workers, tasks_each = 8, 200
    processes = [
        subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "multiprocess_worker.py"), server.openai_base_url, str(db)]
            + [str(tasks_each), str(worker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for worker in range(workers)
    ]
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err.decode()
    assert len(server.requests) == workers * tasks_each

    data = report_json(db)
    summary = data["summary"]
    assert isinstance(summary, dict)
    assert summary["tasks"] == workers * tasks_each
    assert summary["model_calls"] == workers * tasks_each
    assert summary["unpriced_calls"] == 0
    expected = sum((independent_cost(exchange) for exchange in server.requests), Decimal(0))
    assert abs(Decimal(str(summary["total_cost_usd"])) - expected) <= expected * Decimal("1e-9")
    # Every segment was ingested exactly once: reading again changes nothing.
    assert report_json(db)["summary"] == summary
    assert not list((db / "spool").glob("seg-*.jsonl"))
