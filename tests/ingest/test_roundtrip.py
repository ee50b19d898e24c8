"""agentprof's own OTLP export received by ``agentprof serve`` reproduces the local store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

import agentprof
from agentprof.cli import main
from agentprof.ingest._receiver import OtlpReceiver
from agentprof.integrations import openai as openai_integration
from agentprof.testserver import TestServer


def _report(store: Path) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["report", "--db", str(store), "--format", "json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def _strip_store(value: Any) -> Any:
    """The report without what names the store itself (path, size) and when it was made."""
    if isinstance(value, dict):
        return {k: _strip_store(v) for k, v in value.items() if k not in ("store", "generated_at")}
    if isinstance(value, list):
        return [_strip_store(item) for item in value]
    return value


def test_serve_reproduces_the_local_store(
    tmp_path: Path, model_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "served"
    with OtlpReceiver(served / "spool", port=0) as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        agentprof.configure(db=str(tmp_path / "local"), otlp=True, schedule_delay_millis=10)
        openai_integration.instrument()
        try:
            client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-test", max_retries=0)
            for reply in ("billing", "refund", "billing"):  # the third task repeats the first's requests exactly
                with agentprof.task("support"):
                    with agentprof.step("classify"):
                        client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi [[reply:{reply}]]"}]
                        )
                    with agentprof.step("answer"):
                        client.chat.completions.create(
                            model="gpt-4o", messages=[{"role": "user", "content": f"answer {reply}"}]
                        )
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "untracked"}])
        finally:
            openai_integration.uninstrument()
            agentprof.shutdown()
    assert receiver.stats.spans_accepted == 3 * (1 + 2 + 2) + 1  # task, steps, calls; one untracked
    truth_in = sum((exchange.usage or {}).get("prompt_tokens", 0) for exchange in model_server.requests)
    local, remote = _report(tmp_path / "local"), _report(served)
    assert _strip_store(remote) == _strip_store(local)
    assert truth_in > 0 and str(truth_in) in json.dumps(remote)  # the totals are the server's own counts
    # The repeated requests are found in the served store too: their spans carried their fingerprints.
    found = {(r["kind"], r["step"]) for r in remote["recommendations"]}
    assert found == {("exact_cache", "classify"), ("exact_cache", "answer")}
    assert _analysis_columns(served) == _analysis_columns(tmp_path / "local")


def _analysis_columns(store: Path) -> list[tuple[Any, ...]]:
    """What the rules read of each model call beyond usage and cost, in time order."""
    from agentprof._config import resolve_store_location
    from agentprof.store import open_store

    columns = "request_fingerprint, prefix_fingerprints, cache_breakpoints, tool_count, response_format, "
    columns += "tool_choice, output_hash, output_chars, raw_usage"
    with open_store(resolve_store_location(store)) as opened, opened.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT {columns} FROM model_calls ORDER BY start_time_ns").all()
    assert rows and all(row[0] and row[1] and row[6] for row in rows)
    return [tuple(row) for row in rows]
