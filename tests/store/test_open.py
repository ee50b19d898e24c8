from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from agentprof._config import StoreLocation, resolve_store_location
from agentprof.exceptions import StoreCorruptError, StoreLockedError, StoreNotFoundError
from agentprof.store import open_store

from .helpers import count_rows, model_calls, write_segments


def _fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size, stat.st_mtime_ns


def test_missing_store_without_data_is_not_found(location: StoreLocation) -> None:
    with pytest.raises(StoreNotFoundError, match="no agentprof data at .*store.*agentprof demo"):
        open_store(location)
    assert not location.spool_dir.parent.exists()  # nothing created when not creating


def test_missing_parent_directory_created_only_when_creating(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "agentprof.duckdb"
    with pytest.raises(StoreNotFoundError):
        open_store(str(target))
    assert not (tmp_path / "deep").exists()
    with open_store(str(target), create=True):
        pass
    assert target.is_file()


def test_spooled_data_creates_the_store(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [model_calls(0, 3)])
    with open_store(location) as store:
        assert count_rows(store.engine, "model_calls") == 3
    assert location.db_path is not None and location.db_path.is_file()


def test_agentprof_db_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "from-env.duckdb"
    monkeypatch.setenv("AGENTPROF_DB", str(target))
    write_segments(resolve_store_location().spool_dir, [model_calls(0, 2)])
    with open_store() as store:
        assert store.location.db_path == target
        assert count_rows(store.engine, "model_calls") == 2
    assert target.is_file()


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (bytes(range(256)) * 40, "unrecognised file header"),
        (b"just some notes, not a database\n" * 10, "unrecognised file header"),
        (b"", "not a valid DuckDB database"),
    ],
    ids=["random-bytes", "text-file", "empty-file"],
)
def test_non_duckdb_file_is_corrupt(tmp_path: Path, content: bytes, detail: str) -> None:
    target = tmp_path / "agentprof.duckdb"
    target.write_bytes(content)
    before = _fingerprint(target)
    with pytest.raises(StoreCorruptError) as caught:
        open_store(str(target), create=True)
    assert str(target) in str(caught.value) and detail in str(caught.value)
    assert _fingerprint(target) == before


def test_sqlite_file_is_corrupt_without_touching_it(tmp_path: Path) -> None:
    target = tmp_path / "agentprof.duckdb"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = _fingerprint(target)
    with pytest.raises(StoreCorruptError, match="is an SQLite database") as caught:
        open_store(str(target))
    assert str(target) in str(caught.value)
    assert _fingerprint(target) == before


def test_foreign_duckdb_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "theirs.duckdb"
    conn = duckdb.connect(str(target))
    conn.execute("CREATE TABLE orders (id INTEGER, total DECIMAL(10, 2))")
    conn.execute("INSERT INTO orders VALUES (1, 9.99)")
    conn.close()
    write_segments(target.with_name(target.name + ".spool"), [model_calls(0, 2)])
    before = _fingerprint(target)
    time.sleep(0.01)
    with pytest.raises(StoreCorruptError, match="is a DuckDB database but not an agentprof store") as caught:
        open_store(str(target), create=True)
    assert str(target) in str(caught.value)
    assert _fingerprint(target) == before
    assert not target.with_name(target.name + ".wal").exists()


_HOLD_LOCK = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


def _hold_lock(path: Path, seconds: float, *extra: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path), str(seconds), *extra], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_lock_held_by_another_process_names_its_pid(location: StoreLocation) -> None:
    with open_store(location, create=True):
        pass
    assert location.db_path is not None
    holder = _hold_lock(location.db_path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(StoreLockedError) as caught:
            open_store(location, lock_timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    # ... and its program (which says more than a number), without the arguments, which may hold secrets
    program = Path(sys.executable).name
    assert f"is locked by another process (PID {holder.pid}: {program} -c): wait" in str(caught.value)
    assert str(location.db_path) in str(caught.value)
    assert 0.5 <= elapsed < 3


def test_lock_held_by_serves_spool_loader_says_so(location: StoreLocation) -> None:
    with open_store(location, create=True):
        pass
    assert location.db_path is not None
    holder = _hold_lock(location.db_path, 30, "-m", "agentprof.cli._load_spool")  # its command line
    try:
        with pytest.raises(StoreLockedError) as caught:
            open_store(location, lock_timeout=0.1)
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert f"(PID {holder.pid}: agentprof serve loading its spool, for a few seconds)" in str(caught.value)


def test_lock_released_within_the_timeout_is_waited_for(location: StoreLocation) -> None:
    with open_store(location, create=True):
        pass
    assert location.db_path is not None
    write_segments(location.spool_dir, [model_calls(0, 2)])
    holder = _hold_lock(location.db_path, 0.3)
    try:
        with open_store(location, lock_timeout=10) as store:
            assert count_rows(store.engine, "model_calls") == 2
    finally:
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_two_stores_in_one_process_share_the_file(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [model_calls(0, 2)])
    with open_store(location) as first, open_store(location) as second:
        assert count_rows(second.engine, "model_calls") == count_rows(first.engine, "model_calls") == 2


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "/run/kernel.json"], "python3 -m ipykernel_launcher"),
        (["/venv/bin/python", "/venv/bin/agentprof", "report", "--db", "x"], "python agentprof report"),
        (["/venv/bin/agentprof", "serve", "--token", "s3cret"], "agentprof serve"),
        (["python", "agent.py", "--api-key", "sk-live"], "python agent.py"),
        (["python", "-c", "import os; KEY = 'sk-live'"], "python -c"),
    ],
)
def test_a_lock_holder_is_named_by_its_program_never_its_arguments(arguments: list[str], named: str) -> None:
    from agentprof.store._duckdb_file import _program

    assert " ".join(_program(arguments)) == named
