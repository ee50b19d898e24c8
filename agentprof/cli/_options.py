"""Options shared by the commands: ``--db``, ``--since``, ``--task`` and ``--format``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

SINCE_FORMS = "a duration like 30m, 2h, 7d or 1w, or an ISO date/time like 2025-01-31 or 2025-01-31T14:00 (UTC)"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """Parse ``--since``: a duration back from now, or an ISO date/time (UTC unless it has an offset).

    Returns:
        An aware UTC datetime.

    Raises:
        ValueError: The value is neither form.
    """
    match = _DURATION.match(value)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        return (now or datetime.now(UTC)) - timedelta(seconds=amount * _UNIT_SECONDS[unit])
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not {SINCE_FORMS}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SinceType(click.ParamType[datetime]):
    """Click type of ``--since``: a bad value is a usage error naming the accepted forms."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """Parse the value, failing with the accepted forms."""
        if isinstance(value, datetime):
            return value
        try:
            return parse_since(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def db_option(function: F) -> F:
    """``--db``: the store, overriding ``AGENTPROF_DB``."""
    return click.option(
        "--db",
        metavar="PATH|URL",
        help="Store: a directory, a .duckdb file or an SQLAlchemy URL (default: AGENTPROF_DB, then .agentprof/).",
    )(function)


def since_option(function: F) -> F:
    """``--since``: only what started after a moment."""
    return click.option(
        "--since",
        type=SinceType(),
        metavar="WHEN",
        help="Only tasks and calls since WHEN: 30m, 2h, 7d, 1w or an ISO date/time (UTC).",
    )(function)


def task_option(function: F) -> F:
    """``--task``: only one task name."""
    return click.option("--task", "task_name", metavar="NAME", help="Only tasks with this name.")(function)


def format_option(*choices: str) -> Callable[[F], F]:
    """``--format``: output format, the first choice being the default."""

    def decorate(function: F) -> F:
        return click.option(
            "--format",
            "output_format",
            type=click.Choice(choices),
            default=choices[0],
            show_default=True,
            help="Output format.",
        )(function)

    return decorate
