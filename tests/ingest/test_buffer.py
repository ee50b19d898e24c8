"""Trace assembly: when traces are mapped, and that their rows reach the sink in few, bounded batches."""

from __future__ import annotations

from typing import Any

from agentprof._records import SpoolRow
from agentprof.ingest import FlatSpan, decode_protobuf
from agentprof.ingest._buffer import TraceBuffer
from tests.ingest.helpers import CHAT_CALL, S, request

AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}
CALL = CHAT_CALL


def trace(number: int, *, root: bool = True) -> list[FlatSpan]:
    trace_id = f"{number:032x}"
    spans = [S(2, 1, "chat gpt-4o", CALL, trace=trace_id)]
    if root:
        spans.insert(0, S(1, None, "invoke_agent support", AGENT, trace=trace_id))
    return decode_protobuf(request(spans).SerializeToString()).spans


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def buffer(**options: Any) -> tuple[TraceBuffer, list[list[SpoolRow]], Clock]:
    batches: list[list[SpoolRow]] = []
    clock = Clock()
    return TraceBuffer(batches.append, clock=clock, **options), batches, clock


def test_traces_flushed_together_are_one_batch() -> None:
    buf, batches, _ = buffer()
    for number in range(1, 51):
        buf.add(trace(number))
    assert batches == []  # waiting to settle
    buf.flush_all()
    assert len(batches) == 1 and len(batches[0]) == 100
    assert (buf.totals.tasks, buf.totals.model_calls) == (50, 50)


def test_batches_are_bounded() -> None:
    buf, batches, _ = buffer(segment_rows=7)
    for number in range(1, 11):
        buf.add(trace(number))
    buf.flush_all()
    assert [len(batch) for batch in batches] == [7, 7, 6]


def test_settled_traces_are_written_and_a_straggler_only_adds_its_own_row() -> None:
    buf, batches, clock = buffer(settle_s=1.0, retain_s=10.0)
    buf.add(trace(1))
    buf.add(trace(2, root=False))  # no root yet: waits for max_wait_s
    clock.now = 1.5
    buf.flush_ready()
    assert [row["trace_id"] for row in batches[-1]] == [f"{1:032x}"] * 2
    straggler = decode_protobuf(request([S(3, 1, "chat gpt-4o", CALL, trace=f"{1:032x}")]).SerializeToString()).spans
    buf.add(straggler)
    clock.now = 3.0
    buf.flush_ready()
    assert [row["span_id"] for row in batches[-1]] == [f"{3:016x}"]
    assert buf.pending_spans == 4  # trace 1 retained, trace 2 still waiting
    clock.now = 40.0
    buf.flush_ready()  # trace 2 written after max_wait_s, trace 1 forgotten after retain_s
    assert [row["trace_id"] for row in batches[-1]] == [f"{2:032x}"]
    clock.now = 60.0
    buf.flush_ready()
    assert buf.pending_spans == 0 and len(batches) == 3


def test_agentprof_spans_are_written_on_arrival() -> None:
    buf, batches, _ = buffer()
    native = {"agentprof.kind": "task", "agentprof.task.name": "job"}
    buf.add(decode_protobuf(request([S(1, None, "job", native)]).SerializeToString()).spans)
    assert [(row["kind"], row["task_name"]) for row in batches[0]] == [("task", "job")]
