"""Shared building blocks of the analytics queries: the selection, exact money, percentiles.

Why a custom money type: duckdb-engine declares ``supports_native_decimal = False``, so
SQLAlchemy's ``Numeric`` result processor formats every value through a float
(``Decimal('0.1')`` comes back as ``Decimal('0.100000000000000006')``). Money expressions are
therefore coerced to :class:`ExactDecimal`, which hands the driver's own ``Decimal`` through
untouched (DuckDB and psycopg both return ``Decimal`` for ``NUMERIC``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import UserDefinedType

from agentprof.store.schema import model_calls, tasks

_PERCENTILE_DIGITS = Context(prec=12)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which part of the store a question is about.

    Attributes:
        since: Only tasks and model calls that started at or after this instant. A naive
            datetime is taken as UTC (the store's own convention).
        task: Only tasks (and their calls) with this task name. ``"(untracked)"`` selects the
            model calls made outside any task.
    """

    since: datetime | None = None
    task: str | None = None

    @property
    def since_utc(self) -> datetime | None:
        """``since`` as a naive UTC datetime, comparable with the store's ``start_time``."""
        if self.since is None or self.since.tzinfo is None:
            return self.since
        return self.since.astimezone(UTC).replace(tzinfo=None)


class ExactDecimal(UserDefinedType[Decimal]):
    """``NUMERIC(38, 18)`` whose results keep every digit the database returned."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """Return the DDL type; only used if someone creates a column of this type."""
        return "NUMERIC(38, 18)"

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """Convert to ``Decimal`` without passing through a float."""
        return to_decimal


def to_decimal(value: object) -> Decimal | None:
    """Return ``value`` as an exact ``Decimal`` (``None`` stays ``None``)."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def money(expression: ColumnElement[Any]) -> ColumnElement[Decimal]:
    """Mark a money expression so its result arrives as an exact ``Decimal``."""
    return sa.type_coerce(expression, ExactDecimal())


def priced_cost() -> ColumnElement[Any]:
    """A call's cost when it is priced, else NULL (an unpriced call never counts as $0)."""
    return sa.case((model_calls.c.priced, model_calls.c.cost_usd))


def unpriced_flag() -> ColumnElement[int]:
    """1 for an unpriced call, 0 otherwise: ``sum()`` of it counts unpriced calls."""
    return sa.case((sa.not_(model_calls.c.priced), 1), else_=0)


def percentile(fraction: float, expression: ColumnElement[Any]) -> ColumnElement[float]:
    """Interpolated percentile as a double; DuckDB and PostgreSQL both run this form."""
    return sa.func.percentile_cont(fraction).within_group(sa.cast(expression, sa.Double()))


def money_from_float(value: float | None) -> Decimal | None:
    """Turn a percentile of money (computed as a double) into a Decimal of 12 significant digits."""
    if value is None:
        return None
    return _PERCENTILE_DIGITS.create_decimal(repr(float(value)))


def task_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """WHERE conditions selecting rows of ``tasks``."""
    conditions: list[ColumnElement[bool]] = []
    since = filters.since_utc
    if since is not None:
        conditions.append(tasks.c.start_time >= since)
    if filters.task is not None:
        conditions.append(tasks.c.name == filters.task)
    return conditions


def call_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """WHERE conditions selecting rows of ``model_calls`` (untracked calls included)."""
    conditions: list[ColumnElement[bool]] = []
    since = filters.since_utc
    if since is not None:
        conditions.append(model_calls.c.start_time >= since)
    if filters.task is not None:
        conditions.append(model_calls.c.task_name == filters.task)
    return conditions


def model_name() -> ColumnElement[str]:
    """The model a call was answered by, or the one it asked for when the response did not say."""
    return sa.func.coalesce(model_calls.c.response_model, model_calls.c.request_model)


def sum_tokens(column: sa.Column[Any]) -> ColumnElement[int]:
    """Sum of a token column where unknown usage (NULL) adds nothing."""
    return sa.func.coalesce(sa.func.sum(column), 0)
