"""The local store: DuckDB (or any SQLAlchemy URL) fed from per-process spool segments.

Instrumented processes only ever append segments to the spool; :func:`open_store` opens (creating
and migrating when there is data) the database and ingests pending segments exactly once.
``agentprof.store.schema`` describes the tables for queries.
"""

from __future__ import annotations

from agentprof.store._duckdb_file import DEFAULT_LOCK_TIMEOUT
from agentprof.store._ingest import IngestResult
from agentprof.store._migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from agentprof.store._store import Store, open_store, second_reader

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "IngestResult",
    "MIGRATIONS",
    "Migration",
    "SCHEMA_VERSION",
    "Store",
    "open_store",
    "second_reader",
]
