"""Recognising and waiting for a DuckDB database file before agentprof writes to it.

DuckDB lets one process hold a file read-write at a time and reports a conflict as an IO error
naming the holder's PID. CLI readers are short-lived, so a conflict is retried with backoff for a
bounded time before it becomes one clear :class:`~agentprof.exceptions.StoreLockedError`.

A file is classified *read-only* before it is opened for writing, so a foreign DuckDB database
(or one with a pending write-ahead log) is never modified, and its header is checked first because
DuckDB would try to download its SQLite extension (a network call) to open an SQLite file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

import duckdb

from agentprof.exceptions import StoreCorruptError, StoreError, StoreLockedError
from agentprof.store._migrations import check_meta

T = TypeVar("T")

#: How long to wait for another process to release the database (readers are short-lived).
DEFAULT_LOCK_TIMEOUT = 5.0
_FIRST_BACKOFF = 0.02
_MAX_BACKOFF = 0.4

_LOCK_TEXT = "Could not set lock on file"
_PID = re.compile(r"\(PID (\d+)\)")
_SPOOL_LOADER = "agentprof.cli._load_spool"  # serve's child (see agentprof.cli._spool_loader)
_OTHER_CONFIGURATION = "different configuration"
_DUCKDB_MAGIC = b"DUCK"
_MAGIC_OFFSET = 8
_SQLITE_MAGIC = b"SQLite format 3\x00"

StoreState = Literal["empty", "agentprof", "unknown"]
"""What a database file holds: nothing yet, an agentprof store, or not inspectable right now."""

LIST_TABLES = """
SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND database_name = current_database()
UNION ALL
SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary AND database_name = current_database()
"""
READ_META = "SELECT key, value FROM agentprof_meta"


def driver_error(exc: BaseException) -> BaseException:
    """Return the DuckDB exception behind an SQLAlchemy wrapper (or ``exc`` itself)."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def lock_conflict(exc: BaseException) -> str | None:
    """Return DuckDB's lock-conflict message if ``exc`` is one, else ``None``."""
    error = driver_error(exc)
    if isinstance(error, duckdb.IOException) and _LOCK_TEXT in str(error):
        return str(error)
    return None


def locked_error(file: str, message: str) -> StoreLockedError:
    """The user-facing error for a database another process keeps locked, naming that process if it can."""
    match = _PID.search(message)
    holder = f"PID {match.group(1)}{_command_of(int(match.group(1)))}" if match else "an unknown PID"
    return StoreLockedError(
        f"{file} is locked by another process ({holder}): wait for it to finish, or use another --db"
    )


def _command_of(pid: int) -> str:
    """``": <program>"`` of a process (Linux ``/proc``), or ``""`` where it cannot be read.

    A PID alone says little; the holder is usually a report still running, a Python shell or
    notebook with the store open, or ``agentprof serve`` loading its spool (a child that exits
    within seconds). Only the program is named, never its other arguments: they may hold secrets.
    """
    try:
        arguments = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return ""
    if any(_SPOOL_LOADER in argument for argument in arguments):
        return ": agentprof serve loading its spool, for a few seconds"
    return f": {' '.join(_program(arguments))}" if arguments else ""


def _program(arguments: list[str]) -> list[str]:
    """The words that name a program: ``python -m module``, ``python script.py``, ``agentprof report``."""
    name, rest = Path(arguments[0]).name, arguments[1:]
    if name == "agentprof":
        return [name, *rest[:1]]  # the command, a word of agentprof's own
    if rest[:1] == ["-m"]:
        return [name, *rest[:2]]
    if rest and rest[0].startswith("-"):
        return [name, rest[0]]  # "-c" and the like, without the code that follows
    if rest:
        script = Path(rest[0]).name
        return [name, script, *rest[1:2]] if script == "agentprof" else [name, script]
    return [name]


def retry_while_locked(action: Callable[[], T], file: str, deadline: float) -> T:
    """Run ``action``, retrying with backoff while another process holds the file's lock.

    Raises:
        StoreLockedError: The lock was still held at ``deadline`` (a ``time.monotonic()`` value).
    """
    delay = _FIRST_BACKOFF
    while True:
        try:
            return action()
        except Exception as exc:
            message = lock_conflict(exc)
            if message is None:
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise locked_error(file, message) from None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_BACKOFF)


def not_duckdb_error(file: str, detail: str) -> StoreCorruptError:
    """The user-facing error for a file DuckDB cannot open as a database."""
    return StoreCorruptError(
        f"{file} is not a DuckDB database ({detail}): move it away, or point --db/AGENTPROF_DB at another store"
    )


def check_header(path: Path) -> None:
    """Reject files that are plainly not DuckDB databases without letting DuckDB open them.

    A short or all-zero header is left to DuckDB: it may be a database another process is
    creating right now, which DuckDB reports as a lock conflict (it locks before reading).

    Raises:
        StoreCorruptError: The header is an SQLite header or another non-DuckDB header.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{path} cannot be read ({exc.strerror}): check its permissions") from None
    if header.startswith(_SQLITE_MAGIC):
        raise not_duckdb_error(str(path), "it is an SQLite database")
    end = _MAGIC_OFFSET + len(_DUCKDB_MAGIC)
    if len(header) >= end and any(header) and header[_MAGIC_OFFSET:end] != _DUCKDB_MAGIC:
        raise not_duckdb_error(str(path), "unrecognised file header")


def classify(table_names: Iterable[str], read_meta: Callable[[], Mapping[str, str]], file: str) -> StoreState:
    """Decide whether a database is empty or an agentprof store; refuse anything else.

    Raises:
        StoreCorruptError: The database holds tables but is not an agentprof store.
        StoreSchemaError: A newer agentprof wrote it.
    """
    names = set(table_names)
    if not names:
        return "empty"
    if "agentprof_meta" not in names:
        raise StoreCorruptError(
            f"{file} is a DuckDB database but not an agentprof store; it was left unchanged: "
            "point --db/AGENTPROF_DB at another file"
        )
    check_meta(read_meta(), file)
    return "agentprof"


def _inspect_once(path: Path) -> StoreState:
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.ConnectionException as exc:
        if _OTHER_CONFIGURATION in str(exc):
            # This process already holds the file read-write (another Store): inspect under that lock.
            return "unknown"
        raise
    try:
        names = [row[0] for row in conn.execute(LIST_TABLES).fetchall()]
        return classify(names, lambda: {str(k): str(v) for k, v in conn.execute(READ_META).fetchall()}, str(path))
    finally:
        conn.close()


def inspect_read_only(path: Path, deadline: float) -> StoreState:
    """Classify the database at ``path`` through a read-only connection, waiting out locks.

    Raises:
        StoreCorruptError: DuckDB cannot open the file, or it is a foreign database.
        StoreSchemaError: A newer agentprof wrote it.
        StoreError: Another process kept it locked past ``deadline``.
    """
    try:
        return retry_while_locked(lambda: _inspect_once(path), str(path), deadline)
    except duckdb.Error as exc:
        raise not_duckdb_error(str(path), first_line(exc)) from None


def first_line(exc: BaseException) -> str:
    """The first line of an error message (DuckDB appends hints and links on later lines)."""
    text = str(driver_error(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
