from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentprof.analytics import Filters
from agentprof.exceptions import ConfigError
from agentprof.reports.rules import _engine
from agentprof.reports.rules._base import CallRecord, Finding, ToolRecord
from agentprof.reports.rules._config import RulesConfig
from agentprof.reports.rules._engine import RULE_ORDER, load_rule, load_workload, run_rules, selected_kinds
from agentprof.store.schema import MONEY, metadata, model_calls, spans
from tests.analytics._data import BASE, populate
from tests.reports.rules._call_factory import call, run_engine, tool


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sa.Connection]:
    engine = sa.create_engine("duckdb:///" + str(tmp_path / "t.duckdb"))
    metadata.create_all(engine)
    with engine.begin() as connection:
        populate(connection)
        connection.execute(
            model_calls.update()
            .where(model_calls.c.span_id == "c1")
            .values(cost_usd=sa.cast(sa.literal("0.123456789012345678", sa.String()), MONEY))
        )
        for span_id, kind, step_kind in (("tool1", "step", "tool"), ("step1", "step", "step")):
            connection.execute(
                spans.insert().values(
                    span_id=span_id, trace_id="t", kind=kind, name="search", task_id="a1a1a1a1a1a1a1a1",
                    task_name="triage", step_name="search", step_kind=step_kind, start_time=BASE,
                    start_time_ns=5, end_time_ns=6, duration_ms=0.0, status="ok", tool_args_hash="a",
                    tool_result_hash="r",
                )
            )  # fmt: skip
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_rule_order_is_the_documented_one() -> None:
    assert RULE_ORDER == (
        "retry_storm", "exact_cache", "redundant_tool", "prompt_cache", "wasted_cache_write", "context_growth",
        "long_context_tier", "cheaper_model",
    )  # fmt: skip


@pytest.mark.parametrize("kind", RULE_ORDER)
def test_every_rule_module_exposes_its_rule(kind: str) -> None:
    assert load_rule(kind).kind == kind


def test_load_workload_reads_calls_in_order_with_exact_costs(conn: sa.Connection) -> None:
    workload = load_workload(conn, Filters())
    assert [c.span_id for c in workload.calls] == ["c8", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]  # by start
    first = workload.calls[1]
    assert isinstance(first, CallRecord)
    assert first.cost == Decimal("0.123456789012345678")
    assert (first.task_name, first.step_name, first.model, first.input_tokens) == (
        "triage",
        "classify",
        "gpt-4o-mini",
        1000,
    )
    assert workload.calls[3].model == "claude-sonnet-4-20250514"  # the response model wins
    assert [c.cost for c in workload.calls if c.span_id in ("c6", "c7")] == [None, None]  # unpriced, not $0
    assert [(t.span_id, t.args_hash, t.result_hash) for t in workload.tools] == [
        ("tool1", "a", "r"),
        ("s6", None, None),
    ]


def test_load_workload_honours_since_and_task(conn: sa.Connection) -> None:
    triage = load_workload(conn, Filters(task="triage"))
    assert {c.task_name for c in triage.calls} == {"triage"}
    assert [t.span_id for t in triage.tools] == ["tool1"]
    later = load_workload(conn, Filters(since=datetime(2025, 1, 1, 10, 30)))
    assert [c.span_id for c in later.calls] == ["c5", "c6", "c7"]
    assert [t.span_id for t in later.tools] == ["s6"]  # tool1 started before, step1 is no tool
    assert [t.span_id for t in load_workload(conn, Filters(task="research")).tools] == ["s6"]


def test_run_rules_on_a_store(conn: sa.Connection) -> None:
    findings = run_rules(conn, Filters(), rules=["exact_cache", "retry_storm"])
    assert findings == []  # the hand-made store repeats no request


def workload() -> tuple[list[CallRecord], list]:
    """Repeats in two steps, and a duplicate tool call issued by a call that is itself a repeat."""
    calls = [call(f"a{i}", at=i, task=f"t{i}", step="faq", fingerprint=f"q{i % 3}", cost="0.5") for i in range(6)]
    calls += [call(f"b{i}", at=10 + i, task=f"t{i}", step="label", fingerprint="same") for i in range(3)]
    calls += [call("d1", at=20, task="t9", step="agent", fingerprint="agent"),
              call("d2", at=22, task="t9", step="agent", fingerprint="agent")]  # fmt: skip
    tools = [tool("s1", at=21, task="t9"), tool("s2", at=23, task="t9")]
    return calls, tools


def test_findings_are_ranked_and_deterministic() -> None:
    calls, tools = workload()
    findings = run_engine(calls, tools, rules=["exact_cache", "redundant_tool"])
    assert [(f.kind, f.step) for f in findings] == [
        ("exact_cache", "faq"), ("exact_cache", "label"), ("exact_cache", "agent"), ("redundant_tool", "search")
    ]  # fmt: skip
    assert [f.rank_key for f in findings] == sorted(f.rank_key for f in findings)
    assert run_engine(calls, tools, rules=["exact_cache", "redundant_tool"]) == findings
    assert run_engine(list(reversed(calls)), tools, rules=["exact_cache", "redundant_tool"]) == findings


def test_one_ledger_never_saves_a_call_twice() -> None:
    calls, tools = workload()
    alone = run_engine(calls, tools, rules=["redundant_tool"])
    assert alone[0].estimated_savings_usd == Decimal("0.0001")  # 10 output tokens of gpt-4o
    together = run_engine(calls, tools, rules=["redundant_tool", "exact_cache"])  # still run in RULE_ORDER
    by_kind: dict[str, Finding] = {f.kind: f for f in together}
    assert by_kind["redundant_tool"].estimated_savings_usd == 0  # exact_cache claimed d2 in full first
    assert by_kind["redundant_tool"].confidence == "low"
    assert sum(f.estimated_savings_usd for f in together) == Decimal("1.53")  # 3 x $0.50 + 2 x $0.01 + $0.01


def test_config_enabled_and_unknown_names() -> None:
    calls, tools = workload()
    only_tools = RulesConfig(enabled=("redundant_tool",))
    assert {f.kind for f in run_engine(calls, tools, config=only_tools)} == {"redundant_tool"}
    assert selected_kinds(RulesConfig(enabled=("cheaper_model", "retry_storm"))) == ["retry_storm", "cheaper_model"]
    assert selected_kinds(only_tools, ["exact_cache"]) == []
    with pytest.raises(ValueError, match="unknown rule 'nope'"):
        selected_kinds(RulesConfig(), ["nope"])
    with pytest.raises(ConfigError, match=r"\[tool.agentprof.rules\] enabled: unknown rule 'nope'"):
        selected_kinds(RulesConfig(enabled=("nope",)))


def test_prompt_cache_and_context_growth_never_claim_the_same_caching_twice() -> None:
    from tests.reports.rules.test_context_growth import loop

    calls = loop("t1") + loop("t2")
    alone = {kind: sum(f.estimated_savings_usd for f in run_engine(calls, rules=[kind]))
             for kind in ("prompt_cache", "context_growth")}  # fmt: skip
    together = run_engine(calls, rules=["prompt_cache", "context_growth"])
    total = sum(f.estimated_savings_usd for f in together)
    assert alone["prompt_cache"] > 0 and alone["context_growth"] > 0
    assert max(alone.values()) <= total < alone["prompt_cache"] + alone["context_growth"]


# Rows that exercise every kind of value the loader converts: NULLs, empty and non-ASCII strings, money at
# the edges of DECIMAL(38, 18) and with trailing zeros, -0.0, equal start times, rows out of time order.
ODD_CALLS: list[dict[str, Any]] = [
    {"span_id": "z9", "start_time_ns": 30, "cost_usd": "12345678901234567890.123456789012345678", "provider": "openai",
     "response_model": "gpt-4o", "status": "ok", "task_id": "t1", "temperature": -0.0, "attempts": 2},
    {"span_id": "b2", "start_time_ns": 20, "cost_usd": "0", "priced": True, "step_name": "", "task_name": "ünïcode",
     "error_type": "E", "status": "error", "usage_known": False, "finish_reasons": '["stop"]'},
    {"span_id": "a1", "start_time_ns": 20, "cost_usd": "-0.000000000000000001", "request_model": "claude",
     "tool_count": 3, "prefix_fingerprints": '[{"hash":"h","tokens":1,"index":0,"role":"user"}]', "input_tokens": 7},
    {"span_id": "c3", "start_time_ns": 10, "cost_usd": "1.500000000000000000", "priced": False, "operation": "chat",
     "server_address": "api.example.com", "cache_write_5m_tokens": 4, "reasoning_tokens": 2},
    {"span_id": "日本", "start_time_ns": 5, "cost_usd": None, "task_id": None, "task_name": "(untracked)",
     "response_format": "json_schema", "tool_choice": "required", "output_hash": "o", "temperature": 0.7},
]  # fmt: skip


@pytest.fixture
def odd_store(tmp_path: Path) -> Iterator[sa.Connection]:
    engine = sa.create_engine("duckdb:///" + str(tmp_path / "odd.duckdb"))
    metadata.create_all(engine)
    with engine.begin() as connection:
        for row in ODD_CALLS:
            values: dict[str, Any] = {"trace_id": "tr", "task_name": "triage", "step_name": "classify", "status": "ok",
                                      "usage_known": True, "priced": True, "start_time": BASE, "end_time_ns": 99,
                                      "duration_ms": 1.0, **row}  # fmt: skip
            if values["cost_usd"] is not None:
                values["cost_usd"] = sa.cast(sa.literal(values["cost_usd"], sa.String()), MONEY)
            connection.execute(model_calls.insert().values(**values))
        for span_id, start in (("tool-b", 7), ("tool-a", 7), ("tool-c", 3)):
            connection.execute(
                spans.insert().values(
                    span_id=span_id, trace_id="tr", kind="step", name="search", task_id="t1", task_name="triage",
                    step_name="search", step_kind="tool", start_time=BASE, start_time_ns=start, end_time_ns=9,
                    duration_ms=0.0, status="ok", tool_args_hash="a", tool_result_hash=None,
                )
            )  # fmt: skip
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _exactly(records: Sequence[tuple[Any, ...]]) -> list[tuple[tuple[type, str], ...]]:
    """Records compared value by value, with types and Decimal exponents (``repr`` shows both)."""
    return [tuple((type(value), repr(value)) for value in record) for record in records]


def _plain(conn: sa.Connection, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    with monkeypatch.context() as patched:
        patched.setattr(_engine, "_MAX_SHAPES", 0)  # more combinations than allowed: the plain ordered select
        workload = load_workload(conn, Filters())
    return list(workload.calls), list(workload.tools)


def test_loading_shared_fields_once_gives_the_plain_selects_records(
    odd_store: sa.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shaped: list[bool] = []
    load_shaped = _engine._load_shaped

    def spy(*args: Any) -> list[Any] | None:
        records = load_shaped(*args)
        shaped.append(records is not None)
        return records

    with monkeypatch.context() as patched:
        patched.setattr(_engine, "_load_shaped", spy)
        workload = load_workload(odd_store, Filters())
    assert shaped == [True, True]  # calls and tools both took the shared-fields path
    calls, tools = _plain(odd_store, monkeypatch)
    assert [c.span_id for c in calls] == ["日本", "c3", "a1", "b2", "z9"]  # start time, then span id
    assert [t.span_id for t in tools] == ["tool-c", "tool-a", "tool-b"]
    assert _exactly(workload.calls) == _exactly(calls)
    assert _exactly(workload.tools) == _exactly(tools)
    assert all(type(c) is CallRecord for c in workload.calls) and all(type(t) is ToolRecord for t in workload.tools)
    costs = {c.span_id: c.cost for c in workload.calls}
    assert repr(costs["b2"]) == "Decimal('0E-18')"  # exponent kept
    assert costs["c3"] is None  # unpriced, not $1.5
    assert costs["z9"] == Decimal("12345678901234567890.123456789012345678")


def test_a_hash_collision_or_a_missing_combination_falls_back_to_the_plain_select(
    odd_store: sa.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected_calls, expected_tools = _plain(odd_store, monkeypatch)
    fetch = _engine._driver_rows
    for change in ("collide", "drop"):

        def altered(conn: sa.Connection, query: sa.Select[Any], change: str = change) -> list[Any]:
            rows = fetch(conn, query)
            if "DISTINCT" not in str(query) or not rows:
                return rows
            if change == "collide":  # a second combination with the first one's hash
                return [*rows, (rows[0][0], *(None for _ in rows[0][1:]))]
            return rows[:-1]  # a combination the DISTINCT did not see (written in between)

        with monkeypatch.context() as patched:
            patched.setattr(_engine, "_driver_rows", altered)
            workload = load_workload(odd_store, Filters())
        assert _exactly(workload.calls) == _exactly(expected_calls), change
        assert _exactly(workload.tools) == _exactly(expected_tools), change


def test_the_paused_collector_comes_back_and_still_collects_cycles_made_meanwhile() -> None:
    """The rules run with the cyclic collector paused; afterwards it is on again and nothing is leaked."""

    class Node:
        other: object

    assert gc.isenabled()
    with _engine._no_cyclic_gc():
        assert not gc.isenabled()
        node = Node()
        node.other = node  # a cycle: only the cyclic collector can free it
        alive = weakref.ref(node)
        del node
    assert gc.isenabled()
    assert not gc.get_freeze_count()  # frozen objects would never be collected
    assert alive() is not None
    gc.collect()
    assert alive() is None
