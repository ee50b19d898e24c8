"""Turn agentprof's own errors into one red ``Error: ...`` line and exit code 1.

User errors never show a traceback: every :class:`~agentprof.exceptions.AgentprofError`
(``ConfigError`` included) and a database that cannot be reached (SQLAlchemy's
``OperationalError``) become :class:`CliError`. Usage errors keep click's exit code 2. Ctrl-C
during a DuckDB query is click's ``Aborted!`` as anywhere else. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from agentprof.exceptions import AgentprofError


class CliError(click.ClickException):
    """A user-facing error: printed as one red line, exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error: <message>`` in red on stderr."""
        click.secho(f"Error: {self.format_message()}", fg="red", err=file is None, file=file)


class AgentprofGroup(click.Group):
    """A click group whose commands report agentprof errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, translating user errors into :class:`CliError`."""
        try:
            return super().invoke(ctx)
        except AgentprofError as exc:
            raise CliError(one_line(exc)) from exc
        except Exception as exc:
            if _is_database_unreachable(exc):
                raise CliError(f"the store could not be read: {one_line(exc)}") from exc
            if _is_interrupted_query(exc):
                raise click.Abort from exc
            raise


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name if it has none)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_database_unreachable(exc: Exception) -> bool:
    # Checked through sys.modules so the CLI never imports SQLAlchemy just to handle errors.
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.OperationalError)


def _is_interrupted_query(exc: Exception) -> bool:
    """Whether ``exc`` is Ctrl-C arriving while DuckDB ran a query.

    DuckDB's Python client turns the ``KeyboardInterrupt`` into ``RuntimeError("Query interrupted")``
    (its own tests accept either), which would print a traceback; click prints ``Aborted!`` for
    Ctrl-C anywhere else, and this is the same user action.
    """
    return type(exc) is RuntimeError and str(exc) == "Query interrupted"
