"""Opening the store for a command, and refusing empty selections with a useful message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from agentprof.cli._errors import CliError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Connection

    from agentprof._config import StoreLocation
    from agentprof.analytics import Filters

_SHOWN_NAMES = 10


@contextmanager
def store_connection(db: str | None) -> Iterator[tuple[StoreLocation, Connection]]:
    """Open the store named by ``--db`` (else ``AGENTPROF_DB``, else ``.agentprof/``) and connect.

    Imports the store lazily so ``agentprof --help`` never loads DuckDB or SQLAlchemy.
    """
    from agentprof._config import resolve_store_location
    from agentprof.store import open_store

    with open_store(resolve_store_location(db)) as store, store.engine.connect() as conn:
        yield store.location, conn


def ensure_selection(conn: Connection, filters: Filters, display: str) -> None:
    """Fail with one line when the selection holds neither tasks nor model calls.

    Raises:
        CliError: Unknown ``--task`` (naming the known ones) or nothing since ``--since``.
        StoreNotFoundError: The store holds no data at all.
    """
    from agentprof.analytics import selection_size, task_names
    from agentprof.exceptions import StoreNotFoundError

    if not selection_size(conn, filters).empty:
        return
    since = f" since {filters.since:%Y-%m-%d %H:%M} UTC" if filters.since is not None else ""
    known = task_names(conn)
    if not known:
        raise StoreNotFoundError(f"no tasks or model calls recorded in {display} yet")
    if filters.task is None:
        raise CliError(f"no tasks or model calls{since} in {display}")
    if filters.task in known:
        raise CliError(f"no tasks named {filters.task}{since}")
    shown = ", ".join(known[:_SHOWN_NAMES]) + (", ..." if len(known) > _SHOWN_NAMES else "")
    raise CliError(f"no tasks named {filters.task} (known: {shown})")


def make_console() -> Console:
    """The console commands print text output to (stdout; no automatic number highlighting)."""
    from rich.console import Console

    return Console(highlight=False)
