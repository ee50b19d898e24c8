"""@task and @step on every function kind, as context managers, with exceptions and outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import agentprof
from agentprof._context import current_frame

Rows = Callable[[], list[dict[str, Any]]]


def by_kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["kind"] == kind]


def test_sync_task_with_nested_steps(spool_rows: Rows) -> None:
    @agentprof.task(name="triage", attributes={"customer": "acme", "priority": 2})
    def triage(ticket: str) -> str:
        with agentprof.step("plan"):
            with agentprof.step("search", kind="tool"):
                frame = current_frame.get()
                assert frame is not None
                assert (frame.task_name, frame.step_name, frame.step_path) == ("triage", "search", "plan/search")
        return ticket.upper()

    assert triage("t-1") == "T-1"
    rows = spool_rows()
    [task] = by_kind(rows, "task")
    steps = {row["step_name"]: row for row in by_kind(rows, "step")}
    assert task["name"] == "invoke_agent triage"
    assert task["success"] is True and task["outcome_explicit"] is False
    assert task["attributes"] == '{"customer": "acme", "priority": 2}'
    assert steps["plan"]["parent_span_id"] == task["span_id"]
    assert steps["search"]["parent_span_id"] == steps["plan"]["span_id"]
    assert steps["search"]["step_kind"] == "tool" and steps["search"]["name"] == "execute_tool search"
    assert {row["task_id"] for row in rows} == {task["span_id"]}
    assert {row["trace_id"] for row in rows} == {task["trace_id"]}


def test_bare_decorator_uses_qualname_and_exception_marks_failed(spool_rows: Rows) -> None:
    class Boom(Exception):
        pass

    error = Boom("kaput")

    @agentprof.task
    def agent() -> None:
        raise error

    with pytest.raises(Boom) as caught:
        agent()
    assert caught.value is error
    [task] = by_kind(spool_rows(), "task")
    assert task["task_name"].endswith("agent")
    assert (task["status"], task["error_type"], task["success"]) == ("error", "Boom", False)


def test_set_outcome_overrides_success(spool_rows: Rows) -> None:
    @agentprof.task
    def returns_but_fails() -> int:
        agentprof.set_outcome(False, score=0.25)
        return 7

    assert returns_but_fails() == 7
    [task] = by_kind(spool_rows(), "task")
    assert (task["status"], task["success"], task["score"], task["outcome_explicit"]) == ("ok", False, 0.25, True)


async def test_async_function_and_async_context_manager(spool_rows: Rows) -> None:
    @agentprof.step(kind="tool")
    async def lookup(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @agentprof.task
    async def agent() -> int:
        return await lookup(3) + await lookup(4)

    assert await agent() == 14
    async with agentprof.task("cm-task"):
        await asyncio.sleep(0)
    rows = spool_rows()
    assert sorted(row["task_name"].split(".")[-1] for row in by_kind(rows, "task")) == ["agent", "cm-task"]
    assert len(by_kind(rows, "step")) == 2


async def test_async_exception_is_reraised_unchanged(spool_rows: Rows) -> None:
    @agentprof.task(name="a")
    async def agent() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError, match="k"):
        await agent()
    [task] = by_kind(spool_rows(), "task")
    assert task["error_type"] == "KeyError" and task["success"] is False


def test_generator_task_frame_only_while_generator_runs(spool_rows: Rows) -> None:
    seen_in_consumer: list[object] = []

    @agentprof.task(name="gen")
    def produce() -> Iterator[int]:
        for i in range(3):
            frame = current_frame.get()
            assert frame is not None and frame.task_name == "gen"
            yield i

    for value in produce():
        seen_in_consumer.append(current_frame.get())
        assert value in range(3)
    assert seen_in_consumer == [None, None, None]
    [task] = by_kind(spool_rows(), "task")
    assert task["status"] == "ok"


def test_generator_send_throw_and_early_close(spool_rows: Rows) -> None:
    @agentprof.task(name="echo")
    def echo() -> Iterator[Any]:
        received = yield "ready"
        while True:
            try:
                received = yield f"got {received}"
            except ValueError:
                received = "recovered"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    assert gen.throw(ValueError("v")) == "got recovered"
    gen.close()

    @agentprof.task(name="failing-gen")
    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("late")

    with pytest.raises(RuntimeError, match="late"):
        list(failing())
    tasks = {row["task_name"]: row for row in by_kind(spool_rows(), "task")}
    assert tasks["echo"]["status"] == "ok"
    assert tasks["failing-gen"]["status"] == "error" and tasks["failing-gen"]["error_type"] == "RuntimeError"


async def test_async_generator_task(spool_rows: Rows) -> None:
    @agentprof.task(name="agen")
    async def produce() -> AsyncIterator[int]:
        for i in range(2):
            assert current_frame.get() is not None
            yield i

    @agentprof.task(name="agen-fail")
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("bad")

    assert [value async for value in produce()] == [0, 1]
    with pytest.raises(ValueError, match="bad"):
        async for _ in failing():
            assert current_frame.get() is None
    tasks = {row["task_name"]: row for row in by_kind(spool_rows(), "task")}
    assert tasks["agen"]["status"] == "ok"
    assert tasks["agen-fail"]["status"] == "error"


def test_step_outside_task_is_untracked(spool_rows: Rows) -> None:
    with agentprof.step("lonely"):
        pass
    [step] = by_kind(spool_rows(), "step")
    assert (step["task_name"], step["task_id"], step["step_name"]) == ("(untracked)", None, "lonely")


def test_invalid_step_kind_is_a_config_error() -> None:
    with pytest.raises(agentprof.ConfigError, match="step kind"):
        agentprof.step("x", kind="banana")


def test_set_outcome_outside_task_is_counted_not_raised(profiled: object) -> None:
    from agentprof import _safety

    agentprof.set_outcome(True)
    assert _safety.counters()["set_outcome_outside_task"] == 1


def test_public_api_is_exactly_all() -> None:
    import types

    public = sorted(
        name
        for name, value in vars(agentprof).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    )
    assert sorted(agentprof.__all__) == public


def test_tool_steps_record_argument_and_result_hashes_only(spool_rows: Rows) -> None:
    @agentprof.step(kind="tool")
    def lookup(customer: str) -> dict[str, str]:
        return {"plan": "pro", "secret": "s3cr3t"}

    with agentprof.task("t"):
        lookup("c-1")
        lookup("c-1")
        lookup("c-2")
    steps = by_kind(spool_rows(), "step")
    args = [step["tool_args_hash"] for step in steps]
    results = [step["tool_result_hash"] for step in steps]
    assert args[0] == args[1] != args[2]
    assert results[0] == results[1] == results[2]
    assert "s3cr3t" not in str(steps) and "c-1" not in str(steps)
