"""``agentprof doctor``: where what agentprof swallowed to keep an agent running becomes visible."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import agentprof
from agentprof import _calls, _runtime
from agentprof._config import resolve_store_location
from agentprof.cli import main
from agentprof.integrations import openai as openai_integration
from agentprof.store import open_store
from agentprof.store.schema import model_calls
from agentprof.testserver import TestServer


def doctor(store: Path, columns: int = 200) -> Result:
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(main, ["doctor", "--db", str(store)])


def lines_of(result: Result) -> dict[str, str]:
    """Each check's line (``mark name detail``, whitespace collapsed) by its name's first word pair."""
    found = {}
    for line in result.output.splitlines():
        words = line.split()
        if words and words[0] in {"ok", "problem", "info"}:
            found[" ".join(words[1:3])] = " ".join(words)
    return found


def record_calls(store: Path, server: TestServer, models: list[str]) -> None:
    agentprof.configure(db=str(store))
    openai_integration.instrument()
    try:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
            with agentprof.task("triage"):
                for model in models:
                    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    finally:
        openai_integration.uninstrument()
        _runtime.shutdown()


def test_a_healthy_store_is_ok_and_exits_zero(tmp_path: Path, model_server: TestServer) -> None:
    store = tmp_path / "store"
    record_calls(store, model_server, ["gpt-4o-mini", "gpt-4o-mini"])
    result = doctor(store)
    assert result.exit_code == 0, result.output
    checks = lines_of(result)
    assert checks["recording health"] == (
        "ok recording health 1 process(es) reported: 3 spans written, 0 lost, 0 internal errors"
    )
    assert checks["store 1"] == "ok store 1 tasks, 2 model calls"
    assert "problem" not in result.output


def test_an_unknown_model_is_a_problem_with_what_to_do(tmp_path: Path, model_server: TestServer) -> None:
    store = tmp_path / "store"
    record_calls(store, model_server, ["gpt-4o-mini", "my-private-model"])
    result = doctor(store)
    assert result.exit_code == 1
    [unpriced] = [line for line in result.output.splitlines() if "unpriced calls" in line]
    assert unpriced.split()[0] == "problem"
    assert "1 x unknown model" in unpriced and "my-private-model" in unpriced
    assert unpriced.rstrip().endswith("add a [tool.agentprof.prices] entry for it")


def overflow_the_queue(store: Path, spans: int = 2000) -> None:
    """Record ``spans`` tasks through a one-span queue, far faster than its batches can be written."""
    _runtime.configure(db=str(store), max_queue_size=1, schedule_delay_millis=10)
    try:
        for index in range(spans):
            with agentprof.task(f"t{index}"):
                pass
    finally:
        _runtime.shutdown()


def written_and_lost(result: Result) -> tuple[int, int]:
    health = lines_of(result)["recording health"]
    return int(health.split("reported: ")[1].split()[0]), int(health.split(" spans written, ")[1].split()[0])


def test_spans_the_full_queue_dropped_are_a_problem(tmp_path: Path) -> None:
    store = tmp_path / "store"
    overflow_the_queue(store)
    result = doctor(store)
    assert result.exit_code == 1
    assert lines_of(result)["recording health"].startswith("problem recording health 1 process(es) reported:")
    written, lost = written_and_lost(result)
    assert lost > 0 and written + lost == 2000


def test_a_second_runtime_does_not_report_the_first_ones_losses(tmp_path: Path, model_server: TestServer) -> None:
    # The health file took the process-wide counters: a process configuring agentprof again (another
    # store) reported the first runtime's dropped spans as the second store's.
    overflow_the_queue(tmp_path / "first")
    assert written_and_lost(doctor(tmp_path / "first"))[1] > 0
    record_calls(tmp_path / "second", model_server, ["gpt-4o-mini"])
    result = doctor(tmp_path / "second")
    assert result.exit_code == 0, result.output
    assert written_and_lost(result) == (2, 0)


def test_calls_recorded_without_their_request_bodies_are_a_problem(
    tmp_path: Path, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Request bodies wait for the exporter within a byte bound; one byte: a body waits alone, so
    # each call before the exporter's next run lets the previous call's body go.
    monkeypatch.setattr(_calls, "MAX_PENDING_BODY_BYTES", 1)
    store = tmp_path / "store"
    record_calls(store, model_server, ["gpt-4o-mini"] * 5)
    result = doctor(store)
    assert result.exit_code == 1
    line = lines_of(result)["request bodies"]
    assert line.startswith("problem request bodies ") and "without request fingerprints" in line
    dropped = int(line.split()[3])
    location = resolve_store_location(str(store))
    with open_store(location) as opened, opened.engine.connect() as conn:
        counts = conn.execute(
            sa.select(sa.func.count(), sa.func.count(model_calls.c.request_fingerprint)).select_from(model_calls)
        ).one()
    assert counts[0] == 5  # every call stored
    assert dropped >= 1 and counts[0] - counts[1] == dropped  # those without fingerprints are the ones counted


def test_a_missing_store_and_a_foreign_file_are_problems(tmp_path: Path) -> None:
    result = doctor(tmp_path / "nothing-here")
    assert result.exit_code == 1
    assert lines_of(result)["store no"].startswith("problem store no agentprof data at")
    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("my notes\n")
    result = doctor(foreign)
    assert result.exit_code == 1
    assert f"problem store {foreign} is not a DuckDB database" in " ".join(result.output.split())
    assert foreign.read_text() == "my notes\n"


def test_a_long_path_folds_on_an_80_column_terminal(tmp_path: Path, model_server: TestServer) -> None:
    # The detail column ended a long store URL in an ellipsis at 80 columns: it now folds, whole.
    store = tmp_path / ("a-store-with-a-rather-long-directory-name-" * 2).rstrip("-")
    record_calls(store, model_server, ["gpt-4o-mini"])
    result = doctor(store, columns=80)
    assert result.exit_code == 0, result.output
    assert max(map(len, result.output.splitlines())) <= 80
    assert "…" not in result.output
    assert f"duckdb:///{store}/agentprof.duckdb" in "".join(result.output.split())


def _calls_named(store: Path, calls: int, step_name: str) -> None:
    """``calls`` model calls in one task whose step name is ``step_name`` with ``{n}`` the call's number."""
    with open_store(resolve_store_location(store), create=True) as opened, opened.engine.begin() as conn:
        numbers = sa.func.range(calls).table_valued(sa.column("range", sa.BigInteger)).alias("numbers")
        n = numbers.c.range
        prefix, per_call, _ = step_name.partition("{n}")
        name = sa.literal(prefix) + sa.cast(n, sa.String) if per_call else sa.literal(prefix)
        rows = sa.select(
            sa.literal("s") + sa.cast(n, sa.String),
            sa.literal("t1"),
            sa.literal("ingest"),
            name,
            sa.func.make_timestamp(sa.literal(1_767_225_600_000_000) + n),
            sa.literal(1_767_225_600_000_000_000) + n * 1000,
            sa.literal(1_767_225_600_000_000_000) + n * 1000 + 500,
            sa.literal(0.5),
            sa.literal("ok"),
            sa.true(),
            sa.false(),
        )
        columns = ("span_id", "trace_id", "task_name", "step_name", "start_time", "start_time_ns", "end_time_ns")
        columns += ("duration_ms", "status", "usage_known", "priced")
        conn.execute(model_calls.insert().from_select(columns, rows))


def test_names_made_per_call_are_a_problem_saying_what_to_do(tmp_path: Path) -> None:
    per_call, shared = tmp_path / "per_call", tmp_path / "shared"
    _calls_named(per_call, 1500, "fetch-{n}")
    _calls_named(shared, 1500, "fetch")

    result = doctor(per_call, columns=400)
    assert result.exit_code == 1
    assert lines_of(result)["step names"] == (
        "problem step names 1,500 step names for 1,500 model calls: a step name that carries an id gives every call "
        "a row of its own, and the recommendations cannot compare calls; name steps by what they do (plan, classify)"
    )
    assert "task names" not in lines_of(result)
    assert "step names" not in lines_of(doctor(shared))
