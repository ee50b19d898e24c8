"""serve's spool loader: real child processes loading real segments into a real DuckDB file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentprof._config import StoreLocation, resolve_store_location
from agentprof.cli import main
from agentprof.cli._spool_loader import LoaderStats, SpoolLoader
from agentprof.store import open_store
from tests.ingest.helpers import S, request
from tests.ingest.test_receiver import AGENT, CALL
from tests.store.helpers import count_rows, model_calls, task_row, write_segments


@pytest.fixture
def location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreLocation:
    """A store directory in ``tmp_path`` (not yet created), with the store variables cleared."""
    monkeypatch.delenv("AGENTPROF_DB", raising=False)
    monkeypatch.delenv("AGENTPROF_SPOOL", raising=False)
    return resolve_store_location(tmp_path / "store")


def _loader(location: StoreLocation, warnings: list[str], every: float = 3600) -> SpoolLoader:
    assert location.db_path is not None
    return SpoolLoader(str(location.db_path.parent), location.spool_dir, every, warn=warnings.append)


def _segments(where: StoreLocation | Path) -> list[Path]:
    """The finished segments of a store's spool (or of a spool directory, which may not exist)."""
    spool = where.spool_dir if isinstance(where, StoreLocation) else where
    return sorted(spool.glob("seg-*.jsonl")) if spool.is_dir() else []


def test_a_load_ingests_every_segment_into_the_store(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [model_calls(0, 5), [task_row(100)]])
    warnings: list[str] = []
    loader = _loader(location, warnings)
    loader.load_now()
    assert loader.stats == LoaderStats(loads=1, rows=6)
    assert _segments(location) == [] and warnings == []
    with open_store(location, ingest=False) as store:
        assert count_rows(store.engine, "model_calls") == 5
        assert count_rows(store.engine, "tasks") == 1
    loader.load_now()  # nothing left: no child at all
    assert loader.stats.loads == 1


def test_a_store_locked_by_a_reader_defers_the_load_and_loses_nothing(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [model_calls(0, 3)])
    warnings: list[str] = []
    loader = _loader(location, warnings)
    with open_store(location, create=True, ingest=False):  # a report holding the file
        loader.load_now()
        assert loader.stats == LoaderStats(deferred=1)
        assert len(_segments(location)) == 1
    loader.load_now()
    assert loader.stats == LoaderStats(loads=1, rows=3, deferred=1)
    assert warnings == []


def test_a_long_lock_is_warned_about_once(location: StoreLocation, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentprof.cli._spool_loader as spool_loader

    monkeypatch.setattr(spool_loader, "DEFERRALS_BEFORE_WARNING", 2)
    write_segments(location.spool_dir, [model_calls(0, 1)])
    warnings: list[str] = []
    loader = _loader(location, warnings)
    with open_store(location, create=True, ingest=False):
        for _ in range(3):
            loader.load_now()
    assert loader.stats.deferred == 3
    assert len(warnings) == 1
    assert warnings[0].startswith("the spool could not be loaded 2 times in a row: ")
    assert "is locked by another process (PID " in warnings[0]


def test_a_foreign_file_fails_the_load_with_one_warning_and_the_spool_keeps_everything(tmp_path: Path) -> None:
    database = tmp_path / "notes.duckdb"
    database.write_text("not a database\n" * 100)
    location = resolve_store_location(database)
    written = write_segments(location.spool_dir, [model_calls(0, 2)])
    warnings: list[str] = []
    loader = SpoolLoader(str(database), location.spool_dir, 3600, warn=warnings.append)
    loader.load_now()
    loader.load_now()
    assert loader.stats == LoaderStats(failures=2)
    assert len(warnings) == 1  # the same message is not repeated every interval
    assert "could not load the spool into the store: " in warnings[0]
    assert "is not a DuckDB database" in warnings[0] and "the spool keeps every span" in warnings[0]
    assert _segments(location) == written
    assert database.read_text() == "not a database\n" * 100


def test_the_loader_runs_on_its_interval_and_stops(location: StoreLocation) -> None:
    warnings: list[str] = []
    loader = _loader(location, warnings, every=0.05).start()
    try:
        write_segments(location.spool_dir, [model_calls(0, 4)])
        deadline = time.monotonic() + 60
        while loader.stats.loads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        loader.stop()
    assert loader.stats.loads == 1 and loader.stats.rows == 4
    assert _segments(location) == []


def test_a_child_answering_nonsense_is_a_counted_failure_and_loading_goes_on(location: StoreLocation) -> None:
    # Fault injection: a child that exits 0 but prints no counts (a loader bug, say) must not end
    # the loader's thread; the next interval, with the real child, loads the spool.
    write_segments(location.spool_dir, [model_calls(0, 3)])
    warnings: list[str] = []
    loader = _loader(location, warnings, every=0.05)
    real = loader._command
    loader._command = [sys.executable, "-c", "print('not counts')"]
    loader.start()
    try:
        deadline = time.monotonic() + 60
        while loader.stats.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        loader._command = real
        while loader.stats.loads == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        loader.stop()
    assert loader.stats.loads == 1 and loader.stats.rows == 3
    assert loader.stats.failures >= 1
    assert len(warnings) == 1 and "internal error: JSONDecodeError" in warnings[0]


def test_stop_ends_a_load_past_its_grace_without_counting_a_failure(
    location: StoreLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentprof.cli._spool_loader as spool_loader

    monkeypatch.setattr(spool_loader, "STOP_GRACE", 0.0)
    write_segments(location.spool_dir, [model_calls(0, 1)])
    warnings: list[str] = []
    loader = _loader(location, warnings, every=0.01)
    with open_store(location, create=True, ingest=False):  # every child waits a second for the lock
        loader.start()
        deadline = time.monotonic() + 60
        while loader._child is None and time.monotonic() < deadline:
            time.sleep(0.001)
        child = loader._child
        loader.stop()
    assert child is not None and child.returncode == -signal.SIGTERM  # ended, not waited for
    assert loader.stats.failures == 0 and loader.stats.loads == 0
    assert len(_segments(location)) == 1
    assert warnings == []


def test_stop_lets_a_load_in_progress_finish(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [model_calls(0, 2)])
    warnings: list[str] = []
    loader = _loader(location, warnings, every=0.01)
    with open_store(location, create=True, ingest=False):  # the first child waits for the lock...
        loader.start()
        deadline = time.monotonic() + 60
        while loader._child is None and time.monotonic() < deadline:
            time.sleep(0.001)
    loader.stop()  # ...which it gets now, within its second of waiting and serve's grace
    assert loader.stats == LoaderStats(loads=1, rows=2)
    assert _segments(location) == []


@contextmanager
def _serving(store: Path, *options: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``agentprof serve`` on a free port with ``options``: the process and its base URL (killed if the test fails)."""
    command = [sys.executable, "-c", "from agentprof.cli import main; main()", "serve", "--port", "0"]
    process = subprocess.Popen([*command, "--db", str(store), *options], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1/traces", banner)
        assert match, banner
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, as a service manager stops serve; its closing lines (it must exit 0)."""
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    return rest


def test_serve_loads_what_it_receives_while_it_runs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with _serving(store, "--ingest-every", "0.2") as (process, url):
        body = request([S(1, None, "invoke_agent support", AGENT), S(2, 1, "chat gpt-4o", CALL)]).SerializeToString()
        post = urllib.request.Request(url + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(post, timeout=10) as response:
            assert response.status == 200
        # The trace is spooled once it settles, then loaded; the store is written while serve runs.
        spool = store / "spool"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ((store / "agentprof.duckdb").exists() and not _segments(spool)):
            time.sleep(0.1)
        rest = _stop(process)
    assert "1 tasks, 0 steps, 1 model calls spooled" in rest
    assert re.search(r"; spool loaded into the store \d+ time\(s\) \(2 rows\)", rest), rest
    assert "Traceback" not in rest and "warning" not in rest
    assert _segments(spool) == []
    result = CliRunner().invoke(main, ["tasks", "--db", str(store), "--format", "json"], env={"AGENTPROF_DB": None})
    assert result.exit_code == 0, result.output
    assert "support" in result.output


def test_serve_with_ingest_every_0_only_writes_the_spool(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_segments(store / "spool", [model_calls(0, 2)])
    with _serving(store, "--ingest-every", "0") as (process, _):
        time.sleep(1)
        rest = _stop(process)
    assert "spool loaded" not in rest
    assert len(_segments(store / "spool")) == 1 and not (store / "agentprof.duckdb").exists()


def test_the_child_reads_the_store_from_the_environment_not_its_arguments(location: StoreLocation) -> None:
    # A store URL may carry a password: it must not show in `ps`.
    loader = _loader(location, [])
    assert str(location.spool_dir.parent) not in " ".join(loader._command)
    environment = loader._environment
    assert environment is not None and environment["AGENTPROF_DB"] == str(location.spool_dir.parent)
    assert set(os.environ) <= set(environment)


def test_the_child_imports_the_agentprof_serve_runs(
    location: StoreLocation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve started in a directory holding another `agentprof/` (a checkout of an older version,
    # say): the child must not import that one.
    impostor = tmp_path / "elsewhere" / "agentprof"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise ImportError('the wrong agentprof')\n")
    monkeypatch.chdir(impostor.parent)
    write_segments(location.spool_dir, [model_calls(0, 2)])
    warnings: list[str] = []
    loader = _loader(location, warnings)
    loader.load_now()
    assert warnings == []
    assert loader.stats == LoaderStats(loads=1, rows=2)
