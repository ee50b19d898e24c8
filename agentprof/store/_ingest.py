"""Exactly-once ingestion of spool segments into the store.

The protocol, which makes a crash at any point harmless:

1. list ``seg-*.jsonl`` in the spool (sorted, so older segments load first), and cut the list
   into batches of at most :data:`BATCH_BYTES`; for each batch in turn:
2. in one transaction: skip segments already recorded in ``ingested_segments``, load the rest,
   record their names, commit;
3. only then delete the batch's files. A crash between commit and delete leaves files that the next run
   finds recorded, skips and deletes, so no row is ever counted twice. A span exported twice (in
   two segments, twice in one, or again after it was stored) is stored once: each loader drops
   such copies before inserting (see :mod:`agentprof.store._ingest_duckdb` for DuckDB's way).

A segment that cannot be loaded (truncated by a crash of an old version, garbage) must not block
the others: when the bulk load fails for a reason blamed on a segment, each segment is retried on
its own and the culprits move to ``spool/bad/`` for inspection; nothing else is lost. Segments
deleted by a concurrent ingester between listing and reading are simply skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from agentprof._config import StoreLocation
from agentprof._spool import SEGMENT_GLOB
from agentprof.store._duckdb_file import first_line

logger = logging.getLogger("agentprof.store")

BAD_DIR_NAME = "bad"
_RACE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one :meth:`Store.ingest_spool` did.

    Attributes:
        segments: Segments loaded now (and deleted from the spool).
        rows: Spool rows read from those segments (a span seen twice counts twice here but is
            stored once).
        skipped_segments: Segments found already ingested (left behind by a crash after commit)
            and deleted without loading them again.
        bad_segments: Unreadable segments moved to ``spool/bad/``.
    """

    segments: int = 0
    rows: int = 0
    skipped_segments: int = 0
    bad_segments: int = 0


class Loader(Protocol):
    """How one database family loads segments.

    ``already_ingested`` and ``load`` run inside the caller's transaction, and all the
    transactions of one ingest run inside ``session``.
    """

    def session(self, conn: Connection) -> AbstractContextManager[None]:
        """What this database needs around the transactions of one ingest (locks, settings)."""

    def already_ingested(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """The subset of ``names`` recorded in ``ingested_segments``."""

    def load(
        self, conn: Connection, paths: Sequence[Path], now: datetime, *, isolating: bool = False
    ) -> dict[str, int]:
        """Load ``paths`` and record them; return rows read per loaded segment name.

        A span already stored, or repeated within ``paths``, is stored once. A segment missing
        from the result vanished before it was read and is neither loaded nor recorded.
        ``isolating`` is set when segments are loaded one at a time after a bulk load failed: a
        loader with a fast reader and a more tolerant one then uses the tolerant one, so only it
        can condemn a segment.
        """

    def is_segment_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is blamed on a segment rather than on the database."""


def loader_for(engine: Engine) -> Loader:
    """The bulk DuckDB loader for DuckDB engines, the portable one for everything else."""
    if engine.dialect.name == "duckdb":
        from agentprof.store._ingest_duckdb import DuckDBLoader

        return DuckDBLoader()
    from agentprof.store._ingest_generic import GenericLoader

    return GenericLoader()


def list_segments(spool_dir: Path) -> list[Path]:
    """Finished segments in ``spool_dir``, oldest name first (temporaries are never listed)."""
    try:
        return sorted(spool_dir.glob(SEGMENT_GLOB))
    except OSError:
        return []


def has_segments(spool_dir: Path) -> bool:
    """Whether the spool holds at least one finished segment."""
    return spool_dir.is_dir() and next(spool_dir.glob(SEGMENT_GLOB), None) is not None


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _quarantine(path: Path, reason: str) -> bool:
    """Move an unloadable segment to ``bad/``; False if it vanished first."""
    bad_dir = path.parent / BAD_DIR_NAME
    try:
        bad_dir.mkdir(exist_ok=True)
        os.replace(path, bad_dir / path.name)
    except FileNotFoundError:
        return False
    logger.warning("agentprof: moved unreadable spool segment %s to %s (%s)", path.name, bad_dir, reason)
    return True


@dataclass(slots=True)
class _Outcome:
    loaded: list[Path]
    skipped: list[Path]
    bad: int
    rows: int


def _load_one_by_one(conn: Connection, loader: Loader, paths: Sequence[Path]) -> _Outcome:
    outcome = _Outcome([], [], 0, 0)
    for path in paths:
        try:
            with conn.begin():
                if loader.already_ingested(conn, [path.name]):
                    outcome.skipped.append(path)
                    continue
                counts = loader.load(conn, [path], _utcnow(), isolating=True)
        except Exception as exc:
            if not loader.is_segment_error(exc):
                raise
            if path.exists() and _quarantine(path, first_line(exc)):
                outcome.bad += 1
            continue
        if path.name in counts:
            outcome.loaded.append(path)
            outcome.rows += counts[path.name]
    return outcome


def _load_all(conn: Connection, loader: Loader, paths: Sequence[Path]) -> _Outcome:
    with conn.begin():
        # Read under the same transaction (and, for DuckDB, the file lock) as the load, so a
        # concurrent ingester that got here first is seen.
        done = loader.already_ingested(conn, [path.name for path in paths])
        skipped = [path for path in paths if path.name in done]
        todo = [path for path in paths if path.name not in done and path.exists()]
        counts = loader.load(conn, todo, _utcnow()) if todo else {}
    loaded = [path for path in todo if path.name in counts]
    return _Outcome(loaded, skipped, 0, sum(counts.values()))


def _load(conn: Connection, loader: Loader, paths: Sequence[Path]) -> _Outcome:
    try:
        return _load_all(conn, loader, paths)
    except Exception as exc:
        if not loader.is_segment_error(exc):
            raise
        logger.info("agentprof: bulk ingest failed (%s); loading segments one by one", first_line(exc))
        return _load_one_by_one(conn, loader, paths)


#: Segment bytes loaded in one transaction at most. DuckDB stages a batch's rows in memory (about
#: 1.4 times their JSON size), so a backlog of millions of rows (a service no one reported on for
#: a week) is loaded batch after batch in bounded memory: 2,000,000 rows in one go took 2.9 GB.
BATCH_BYTES = 512 * 1024 * 1024


def _batches(paths: Sequence[Path], limit: int) -> Iterator[list[Path]]:
    """``paths`` in order, cut into runs of at most ``limit`` bytes (a larger segment is a run alone)."""
    batch: list[Path] = []
    size = 0
    for path in paths:
        try:
            length = path.stat().st_size
        except OSError:  # gone already (a concurrent ingester): the loader skips it
            length = 0
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += length
    if batch:
        yield batch


def ingest_spool(engine: Engine, location: StoreLocation, *, batch_bytes: int = BATCH_BYTES) -> IngestResult:
    """Load every pending segment of ``location.spool_dir`` into ``engine``'s database, once.

    Segments load oldest first in batches of at most ``batch_bytes`` (:data:`BATCH_BYTES`), each
    committed and then deleted before the next is read, so the protocol above holds per batch.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The database itself failed; nothing of the batch being
            loaded was committed and none of its segments was deleted or moved (earlier batches
            are stored, and their segments gone).
    """
    paths = list_segments(location.spool_dir)
    if not paths:
        return IngestResult()
    loader = loader_for(engine)
    total = IngestResult()
    with engine.connect() as conn, loader.session(conn):
        for batch in _batches(paths, batch_bytes):
            outcome = _load_batch(conn, loader, batch)
            for path in (*outcome.skipped, *outcome.loaded):
                path.unlink(missing_ok=True)
            total = IngestResult(
                segments=total.segments + len(outcome.loaded),
                rows=total.rows + outcome.rows,
                skipped_segments=total.skipped_segments + len(outcome.skipped),
                bad_segments=total.bad_segments + outcome.bad,
            )
    return total


def _load_batch(conn: Connection, loader: Loader, paths: Sequence[Path]) -> _Outcome:
    attempt = 1
    while True:
        try:
            return _load(conn, loader, paths)
        except IntegrityError:
            # A concurrent ingester (PostgreSQL) recorded the same segments first: look again.
            if attempt == _RACE_RETRIES:
                raise
            attempt += 1
