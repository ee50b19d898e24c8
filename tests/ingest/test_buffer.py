"""Trace assembly: when traces are mapped, and that their rows reach the sink in few, bounded batches."""

from __future__ import annotations

import json
from typing import Any

from agentprof._records import SpoolRow
from agentprof.ingest import FlatSpan, decode_protobuf
from agentprof.ingest._buffer import TraceBuffer, release_content
from agentprof.ingest._decode import SPAN_OVERHEAD, value_weight, weigh
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


# --- memory: bounded by bytes, content released once written -------------------------------------
HISTORY = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "the ticket, again " * 300}]}])
#: A chat span as instrumentations with content capture send it: the markers, and kilobytes of content.
HEAVY_CALL = {
    **CALL,
    "gen_ai.agent.name": "support",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.input.messages": HISTORY,
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be careful. " * 200}]),
    "gen_ai.response.finish_reasons": ["stop"],
    "llm.invocation_parameters": json.dumps({"temperature": 0, "padding": "x" * 600}),
}


TRACE_ID = "ab" * 16


def heavy_trace(trace_id: str) -> list[FlatSpan]:
    """An agent, a step under it, and a heavy chat call in that step."""
    step = {"traceloop.span.kind": "task", "traceloop.entity.name": "lookup"}
    spans = [
        S(1, None, "invoke_agent support", AGENT, trace=trace_id),
        S(2, 1, "lookup", step, trace=trace_id),
        S(3, 2, "chat gpt-4o", HEAVY_CALL, trace=trace_id),
    ]
    return decode_protobuf(request(spans).SerializeToString()).spans


def straggler(trace_id: str, number: int) -> list[FlatSpan]:
    """A tool call in the step, arriving after its trace was written."""
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    spans = [S(number, 2, "execute_tool search", tool, trace=trace_id, start=9)]
    return decode_protobuf(request(spans).SerializeToString()).spans


def test_weight_counts_content() -> None:
    light, heavy = trace(1)[1], heavy_trace(TRACE_ID)[2]
    assert weigh(light) < SPAN_OVERHEAD + 200
    assert weigh(heavy) > SPAN_OVERHEAD + len(HISTORY) + 2400
    assert value_weight({"ab": ["xyz", {"k": "vv"}]}) == 2 + 3 + (1 + 2) + 2 * 8


def test_a_written_span_keeps_what_attribution_reads_and_not_its_content() -> None:
    buf, batches, clock = buffer(settle_s=1.0, retain_s=10.0)
    buf.add(heavy_trace(TRACE_ID))
    held_before = buf.pending_bytes
    clock.now = 1.5
    buf.flush_ready()
    assert [row["kind"] for row in batches[-1]] == ["task", "step", "model_call"]
    call_row = batches[-1][2]
    assert call_row["request_fingerprint"] and call_row["prefix_fingerprints"]  # mapped with its content
    assert buf.pending_spans == 3 and buf.pending_bytes < held_before - len(HISTORY)
    # what the straggler is mapped against: the same rows as from the whole trace held with its content
    buf.add(straggler(TRACE_ID, 4))
    clock.now = 3.0
    buf.flush_ready()
    late = batches[-1]
    whole, whole_batches, _ = buffer()
    whole.add(heavy_trace(TRACE_ID) + straggler(TRACE_ID, 4))
    whole.flush_all()
    assert late == [row for row in whole_batches[0] if row["span_id"] == f"{4:016x}"]
    assert (late[0]["task_name"], late[0]["step_name"], late[0]["step_path"]) == ("support", "search", "lookup/search")


def test_released_attributes_keep_markers_usage_and_blocks() -> None:
    span = heavy_trace(TRACE_ID)[2]
    assert release_content(span)
    kept = span.attributes
    assert "gen_ai.input.messages" not in kept and "gen_ai.system_instructions" not in kept
    assert "gen_ai.response.finish_reasons" not in kept  # a list: content-like, never read for context
    assert kept["gen_ai.operation.name"] == "chat" and kept["gen_ai.usage.input_tokens"] == 100
    assert kept["gen_ai.response.id"] == "chatcmpl-1" and kept["gen_ai.agent.name"] == "support"
    assert "llm.invocation_parameters" in kept  # flattened by prepare(): kept whatever its size
    assert not release_content(span)  # nothing left to drop


def test_held_bytes_are_bounded_and_nothing_is_lost() -> None:
    limit = 5 * weigh(heavy_trace(TRACE_ID)[2])
    buf, batches, _ = buffer(max_bytes=limit)
    spans = 0
    for number in range(1, 41):
        heavy = [span for span in heavy_trace(f"{number:032x}") if span.parent_span_id is not None]
        buf.add(heavy)  # no root: would wait max_wait_s (30 s) if bytes did not force it out
        spans += len(heavy)
        assert buf.pending_bytes <= limit
    assert batches, "the oldest traces were written early"
    buf.flush_all()
    assert sum(map(len, batches)) == spans and buf.pending_bytes == 0 and buf.pending_spans == 0
