"""``agentprof import``: OTLP JSON files and Collector JSON lines into the store."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from agentprof.cli import main
from agentprof.store import open_store
from tests.ingest.helpers import S, otlp_json, request
from tests.ingest.test_receiver import AGENT, CALL


def trace(digit: str, agent: str = "support") -> dict[str, object]:
    base = int(digit) * 100  # span ids are unique across traces, as real ones are (the store keys on them)
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    spans = [
        S(base + 1, None, f"invoke_agent {agent}", AGENT | {"gen_ai.agent.name": agent}, trace=digit * 32),
        S(base + 2, base + 1, "execute_tool search", tool, trace=digit * 32),
        S(base + 3, base + 2, "chat gpt-4o", CALL, trace=digit * 32),
    ]
    return otlp_json(request(spans))


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["import", *args])
    return result.exit_code, result.output


def model_calls(store: Path) -> list[tuple[str, str, str, int]]:
    with open_store(str(store)) as opened, opened.engine.connect() as conn:
        query = "SELECT trace_id, task_name, step_name, input_tokens FROM model_calls ORDER BY trace_id"
        return [tuple(row) for row in conn.execute(text(query))]  # type: ignore[misc]


def test_a_pretty_printed_otlp_json_file(tmp_path: Path) -> None:
    file = tmp_path / "trace.json"
    file.write_text(json.dumps(trace("1"), indent=2))
    code, output = run(str(file), "--db", str(tmp_path / "store"))
    assert code == 0, output
    assert output.startswith("Imported 3 spans from 1 of 1 files: 1 tasks, 1 steps, 1 model calls")
    assert model_calls(tmp_path / "store") == [("1" * 32, "support", "search", 1000)]


def test_collector_json_lines_gzipped_and_reimport_is_idempotent(tmp_path: Path) -> None:
    file = tmp_path / "traces.jsonl.gz"
    file.write_bytes(gzip.compress(b"\n".join(json.dumps(trace(d)).encode() for d in "123") + b"\n\n"))
    for _ in range(2):
        code, output = run(str(file), "--db", str(tmp_path / "store"))
        assert code == 0 and "3 model calls" in output, output
    assert [row[0][0] for row in model_calls(tmp_path / "store")] == ["1", "2", "3"]


def test_a_bad_line_is_one_error_and_keeps_what_came_before(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(trace("1")))
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps(trace("2")) + "\n" + '{"resourceSpans": 5}\n' + json.dumps(trace("3")) + "\n")
    code, output = run(str(good), str(lines), "--db", str(tmp_path / "store"))
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert last.startswith(f"Error: {lines}:2: not an OTLP JSON ExportTraceServiceRequest")
    assert "from 1 of 2 files" in output
    assert [row[0][0] for row in model_calls(tmp_path / "store")] == ["1", "2"]


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    code, output = run(str(tmp_path / "nope.json"), "--db", str(tmp_path / "store"))
    assert code == 1 and output == f"Error: {tmp_path / 'nope.json'}: no such file\n"
    assert not (tmp_path / "store").exists()


def test_not_json_at_all(tmp_path: Path) -> None:
    file = tmp_path / "trace.pb"
    file.write_bytes(request([S(1, None, "x", {})]).SerializeToString())
    code, output = run(str(file), "--db", str(tmp_path / "store"))
    assert code == 1 and f"Error: {file}: not JSON" in output
