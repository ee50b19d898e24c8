"""Opening the store: find it, refuse what is not ours, migrate, and ingest the spool.

Every reader (CLI command, analytics) goes through :func:`open_store`, so the checks that turn a
wrong path into one clear line happen in one place. For a DuckDB file the order matters:

1. no file: create it only if there is data to put in it (spool segments) or ``create=True``;
2. the header is checked without DuckDB (DuckDB would fetch an extension to open SQLite files);
3. the file is classified through a *read-only* connection, so a foreign database is never
   modified, and a newer schema is refused before anything is written;
4. the read-write connection (DuckDB's file lock, held until :meth:`Store.close`) is taken with a
   bounded retry, the classification is repeated under the lock, and migrations run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy import Connection, Engine, create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from agentprof._config import StoreLocation, resolve_store_location
from agentprof.exceptions import StoreError, StoreNotFoundError
from agentprof.store import schema
from agentprof.store._duckdb_file import (
    DEFAULT_LOCK_TIMEOUT,
    LIST_TABLES,
    READ_META,
    check_header,
    classify,
    first_line,
    inspect_read_only,
    not_duckdb_error,
    retry_while_locked,
)
from agentprof.store._ingest import IngestResult, has_segments, ingest_spool
from agentprof.store._migrations import check_meta, migrate, read_meta


class Store:
    """An open agentprof store: a migrated database plus the spool that feeds it.

    For a DuckDB file the store holds the file's write lock until :meth:`close`, so keep it open
    only as long as a command runs. Use it as a context manager.

    Attributes:
        location: Where the database and the spool live.
        engine: SQLAlchemy engine for queries (``duckdb-engine`` for ``duckdb:///`` URLs).
    """

    def __init__(self, location: StoreLocation, engine: Engine) -> None:
        self.location = location
        self.engine = engine

    def ingest_spool(self) -> IngestResult:
        """Load pending spool segments exactly once (see :mod:`agentprof.store._ingest`)."""
        return ingest_spool(self.engine, self.location)

    def close(self) -> None:
        """Release the database (and, for DuckDB, its file lock). Idempotent."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.location.display!r})"


def _create_engine(url: str) -> Engine:
    """``create_engine`` that keeps DuckDB money exact.

    duckdb-engine declares ``supports_native_decimal = False``, so SQLAlchemy would pass every
    ``DECIMAL(38, 18)`` result through a float (0.123456789012345678 reads back ...677). The
    DuckDB driver returns :class:`~decimal.Decimal` itself, so no conversion is needed.
    """
    engine = create_engine(url)
    if engine.dialect.name == "duckdb":
        engine.dialect.supports_native_decimal = True
    return engine


def _not_found(location: StoreLocation) -> StoreNotFoundError:
    return StoreNotFoundError(
        f"no agentprof data at {location.display}: run an instrumented agent first (see `agentprof demo`), "
        "or pass --db / set AGENTPROF_DB"
    )


def _migrate_duckdb(conn: Connection, file: str) -> None:
    def meta() -> dict[str, str]:
        return {str(key): str(value) for key, value in conn.exec_driver_sql(READ_META)}

    with conn.begin():
        # Repeated under the write lock: another process may have created the file meanwhile.
        classify([row[0] for row in conn.exec_driver_sql(LIST_TABLES)], meta, file)
        migrate(conn, file)


def _open_duckdb_file(location: StoreLocation, *, create: bool, lock_timeout: float) -> Engine:
    path = location.db_path
    assert path is not None
    file = str(path)
    deadline = time.monotonic() + lock_timeout
    wanted = create or has_segments(location.spool_dir)
    if path.exists():
        check_header(path)
        if inspect_read_only(path, deadline) == "empty" and not wanted:
            raise _not_found(location)
    elif not wanted:
        raise _not_found(location)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = _create_engine(location.url)
    try:
        try:
            conn = retry_while_locked(engine.connect, file, deadline)
        except SQLAlchemyError as exc:
            raise not_duckdb_error(file, first_line(exc)) from None
        with conn:
            try:
                _migrate_duckdb(conn, file)
            except SQLAlchemyError as exc:
                raise StoreError(f"{file} could not be migrated ({first_line(exc)}): report this bug") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _open_url(location: StoreLocation, *, create: bool) -> Engine:
    try:
        engine = _create_engine(location.url)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(
            f"cannot use {location.display} as a store ({first_line(exc)}): check --db/AGENTPROF_DB"
        ) from None
    try:
        with engine.connect() as conn, conn.begin():
            names = set(inspect(conn).get_table_names())
            if schema.meta_table.name in names:
                check_meta(read_meta(conn), location.display)
            elif not (create or has_segments(location.spool_dir)):
                raise _not_found(location)
            migrate(conn, location.display)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open {location.display} ({first_line(exc)}): check --db/AGENTPROF_DB") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def open_store(
    location: StoreLocation | str | None = None,
    *,
    create: bool = False,
    ingest: bool = True,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> Store:
    """Open (and if needed create and migrate) the store, then ingest the spool.

    Args:
        location: A resolved location, a path or SQLAlchemy URL, or ``None`` for ``AGENTPROF_DB``
            or the project's ``.agentprof/``.
        create: Create an empty store even when there is no data to put in it yet.
        ingest: Load pending spool segments before returning (what every reader wants).
        lock_timeout: Seconds to wait for another process holding a DuckDB file's lock.

    Raises:
        StoreNotFoundError: No store and no spooled data, and ``create`` is false.
        StoreCorruptError: The file is not a DuckDB database, or is one but not agentprof's
            (left unchanged).
        StoreSchemaError: A newer agentprof wrote the store.
        StoreError: Another process kept the database locked, or the URL cannot be opened.
    """
    if not isinstance(location, StoreLocation):
        location = resolve_store_location(location)
    if location.url.startswith("duckdb:") and location.db_path is not None:
        engine = _open_duckdb_file(location, create=create, lock_timeout=lock_timeout)
    else:
        engine = _open_url(location, create=create)
    store = Store(location, engine)
    if ingest:
        try:
            store.ingest_spool()
        except BaseException:
            store.close()
            raise
    return store


@contextmanager
def second_reader(conn: Connection) -> Iterator[Connection | None]:
    """Another connection reading what ``conn`` has committed, for queries run beside it; else ``None``.

    Only a DuckDB *file* qualifies: DuckDB keeps one database per file and process, so another
    connection of this process reads the same data, and the file's lock keeps other processes from
    writing it meanwhile. An in-memory database would be a new, empty one, and another server's
    connection could read at another moment than ``conn``: those get ``None``, and so does a store
    that refuses the connection (the caller then reads everything on ``conn``).
    """
    database = conn.engine.url.database or ""
    if conn.dialect.name != "duckdb" or not database or database.startswith(":memory:"):
        yield None
        return
    try:
        beside = conn.engine.connect()
    except SQLAlchemyError:
        yield None
        return
    with beside:
        yield beside
