"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentprof import _runtime, _safety
from agentprof._context import current_frame
from agentprof.testserver import TestServer


@pytest.fixture(autouse=True)
def _no_leaked_frames() -> Iterator[None]:
    """Fail any test that leaves an agentprof task or step open in the current context."""
    assert current_frame.get() is None, "a previous test leaked an agentprof frame"
    yield
    assert current_frame.get() is None, "this test left an agentprof task/step open"


@pytest.fixture
def profiled(tmp_path: Path) -> Iterator[_runtime.Runtime]:
    """agentprof configured with a fresh store in ``tmp_path``; shut down afterwards."""
    _safety.reset_counters()
    runtime = _runtime.configure(db=str(tmp_path / "store"), schedule_delay_millis=60_000)
    yield runtime
    _runtime.shutdown()


@pytest.fixture
def spool_rows(profiled: _runtime.Runtime) -> Callable[[], list[dict[str, Any]]]:
    """Flush and return every spool row written so far, in start-time order."""

    def read() -> list[dict[str, Any]]:
        assert _runtime.flush()
        rows: list[dict[str, Any]] = []
        for segment in sorted(profiled.location.spool_dir.glob("seg-*.jsonl")):
            rows.extend(json.loads(line) for line in segment.read_text().splitlines())
        return sorted(rows, key=lambda row: row["start_time_ns"])

    return read


@pytest.fixture
def model_server() -> Iterator[TestServer]:
    """The local OpenAI/Anthropic-compatible model server, for one test."""
    with TestServer() as running:
        yield running
