"""The report's tables (call groups, summary, steps, models), read beside the rules when a store allows.

Why: at ten million calls the tables' queries take about 1.5 s of DuckDB work and the rules about
4 s of Python on their sample of the latest calls. DuckDB runs a query without holding the GIL, so
on a second connection the two overlap on a machine with two cores (``benchmarks/report.py``:
5.78 -> 5.19 s median at 10,000,000 calls; nothing to gain at 100,000, where the queries take 0.07 s).

Only with a connection :func:`agentprof.store.second_reader` vouches for: one that sees the same
data as the rules' connection (another connection of this process to the same DuckDB file). Without
one, the tables are read first on the rules' own connection, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from agentprof import analytics
from agentprof.analytics import CallGroup, Filters, ModelRow, StepRow, Summary


@dataclass(frozen=True, slots=True)
class Tables:
    """Everything the report reads with SQL alone: one scan of the calls by group, and what adds up from it."""

    groups: list[CallGroup]
    summary: Summary
    steps: list[StepRow]
    models: list[ModelRow]


def read_tables(conn: Connection, filters: Filters) -> Tables:
    """Read the tables on ``conn`` (the calls are scanned once by group for all of them)."""
    groups = analytics.call_groups(conn, filters)
    return Tables(
        groups=groups,
        summary=analytics.summary(conn, filters, groups),
        steps=analytics.steps(conn, filters, groups),
        models=analytics.models(conn, filters, groups),
    )


@contextmanager
def tables_beside(conn: Connection, filters: Filters, beside: Connection | None) -> Iterator[Callable[[], Tables]]:
    """Start reading the tables, and give a function that waits for them.

    With ``beside``, they are read on it in a worker thread while the body runs (the rules, on
    ``conn``); without it, they are read on ``conn`` before the body runs. An error of the queries
    is raised by the function the body calls, so the body must call it.

    Leaving the block waits for the worker, so no thread outlives the report. If the body fails
    (a bad rule setting, Ctrl-C), the worker's query is interrupted first, so that wait is short.
    """
    if beside is None:
        tables = read_tables(conn, filters)
        yield lambda: tables
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentprof-report-tables") as worker:
        future: Future[Tables] = worker.submit(read_tables, beside, filters)
        try:
            yield future.result
        except BaseException:
            _interrupt(beside)  # the body's error is the one raised; the worker's, if any, is moot
            raise


def _interrupt(conn: Connection) -> None:
    """Stop the query running on ``conn`` (DuckDB's ``interrupt``), if its driver can."""
    with suppress(Exception):
        interrupt = getattr(conn.connection.dbapi_connection, "interrupt", None)
        if callable(interrupt):
            interrupt()
