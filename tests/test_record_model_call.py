"""``agentprof.record_model_call``: calls through clients agentprof does not wrap, treated like any other."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import agentprof
from agentprof import _runtime
from agentprof.analytics import Filters
from agentprof.reports.rules._engine import run_rules
from agentprof.store import open_store

Rows = Callable[[], list[dict[str, Any]]]


def calls_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["kind"] == "model_call"]


def test_a_manual_call_is_priced_attributed_and_fingerprinted(spool_rows: Rows) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with agentprof.task("support"), agentprof.step("classify"):
        with agentprof.record_model_call("openai", "gpt-4o", temperature=0) as call:
            call.set_request(body)
            call.set_usage(input_tokens=2_000, output_tokens=100, cache_read_tokens=1_024)
            call.set_response(model="gpt-4o-2024-08-06", finish_reasons=["stop"], output_text="billing")
    [row] = calls_of(spool_rows())
    assert (row["task_name"], row["step_name"], row["provider"]) == ("support", "classify", "openai")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (2_000, 100, 1_024)
    # gpt-4o: $2.50/M input, $1.25/M cached input, $10/M output.
    assert Decimal(row["cost_usd"]) == Decimal("976") * Decimal("2.5e-6") + Decimal("1024") * Decimal(
        "1.25e-6"
    ) + Decimal("100") * Decimal("10e-6")
    assert row["response_model"] == "gpt-4o-2024-08-06"
    assert row["request_fingerprint"] and json.loads(row["prefix_fingerprints"])
    assert row["output_chars"] == len("billing") and row["output_hash"]
    assert row["temperature"] == 0
    assert row.get("output_text") is None  # content capture is off by default


def test_without_usage_the_call_is_unpriced_not_free(spool_rows: Rows) -> None:
    with agentprof.record_model_call("openai", "gpt-4o"):
        pass
    [row] = calls_of(spool_rows())
    assert row["usage_known"] is False and row["cost_usd"] is None and row["priced"] is False


def test_an_exception_marks_the_call_failed_and_propagates_unchanged(spool_rows: Rows) -> None:
    error = TimeoutError("slow backend")
    with pytest.raises(TimeoutError) as raised, agentprof.record_model_call("vllm", "llama-3.1-8b"):
        raise error
    assert raised.value is error
    [row] = calls_of(spool_rows())
    assert (row["status"], row["error_type"]) == ("error", "TimeoutError")


def test_tiny_amounts_are_written_in_positional_notation(spool_rows: Rows) -> None:
    # gpt-4o-mini: one input token costs $1.5e-7, which str(Decimal) writes as "1.5E-7"; DuckDB
    # casts that notation to DECIMAL ~50x slower at ingestion, so the spool holds "0.00000015...".
    with agentprof.record_model_call("openai", "gpt-4o-mini") as call:
        call.set_usage(input_tokens=1, output_tokens=1)
    [row] = calls_of(spool_rows())
    amounts = [row["cost_usd"], row["input_cost_usd"], row["output_cost_usd"]]
    assert [Decimal(text) for text in amounts] == [Decimal("7.5e-7"), Decimal("1.5e-7"), Decimal("6e-7")]
    assert all(text.startswith("0.000000") and "E" not in text.upper() for text in amounts)


def test_user_prices_and_base_url_apply(spool_rows: Rows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.agentprof.prices."my-llama"]\ninput = 0.2\noutput = 0.6\n')
    monkeypatch.chdir(tmp_path)
    with agentprof.record_model_call("vllm", "my-llama", base_url="http://gpu-box:8000/v1") as call:
        call.set_usage(input_tokens=1_000_000, output_tokens=1_000_000)
    [row] = calls_of(spool_rows())
    assert Decimal(row["cost_usd"]) == Decimal("0.8")
    assert row["server_address"] == "gpu-box"


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ({"input_tokens": -1, "output_tokens": 0}, "input_tokens must be a non-negative integer"),
        ({"input_tokens": 10, "output_tokens": 1.5}, "output_tokens must be a non-negative integer"),
        ({"input_tokens": 10, "output_tokens": 0, "cache_read_tokens": 11}, "exceed input_tokens"),
        ({"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 6}, "reasoning_tokens exceed output_tokens"),
    ],
)
def test_wrong_counts_are_a_clear_error(profiled: _runtime.Runtime, usage: dict[str, Any], message: str) -> None:
    with agentprof.record_model_call("openai", "gpt-4o") as call, pytest.raises(ValueError, match=message):
        call.set_usage(**usage)


def test_manual_calls_feed_the_recommendations(profiled: _runtime.Runtime) -> None:
    body = {"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": "same question"}]}
    for _ in range(3):
        with agentprof.task("faq"), agentprof.step("answer"):
            with agentprof.record_model_call("openai", "gpt-4o", temperature=0) as call:
                call.set_request(body)
                call.set_usage(input_tokens=500, output_tokens=50)
                call.set_response(output_text="the same answer")
    assert _runtime.flush()
    with open_store(profiled.location) as store, store.engine.connect() as conn:
        findings = run_rules(conn, Filters())
    [finding] = [f for f in findings if f.kind == "exact_cache"]
    assert (finding.step, finding.evidence["repeats"], finding.confidence) == ("answer", 2, "high")
