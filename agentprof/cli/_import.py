"""``agentprof import``: load OTLP JSON trace files (or Collector JSON lines) into the store."""

from __future__ import annotations

from pathlib import Path

import click

from agentprof.cli._errors import CliError, one_line
from agentprof.cli._options import db_option


@click.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@db_option
def import_(files: tuple[str, ...], db: str | None) -> None:
    """Import traces from OTLP JSON or Collector JSON-lines files into the store.

    Plain or gzip-compressed files; already imported spans are not counted twice.
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

    from agentprof._config import resolve_store_location
    from agentprof._spool import SpoolWriter
    from agentprof.ingest._buffer import TraceBuffer
    from agentprof.ingest._files import FileProgress, TraceFileError, read_requests

    paths = [Path(name) for name in files]
    for path in paths:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    location = resolve_store_location(db)
    writer = SpoolWriter(location.spool_dir)
    written = 0

    def sink(rows: list[dict[str, object]]) -> None:
        nonlocal written
        written += writer.write_segment(rows)

    buffer = TraceBuffer(sink)
    received = rejected = 0
    done_files = 0
    console = Console(stderr=True)
    error: str | None = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        try:
            for path in paths:
                task = progress.add_task(path.name, total=path.stat().st_size)

                def advance(at: FileProgress, task: TaskID = task) -> None:
                    progress.update(task, completed=at.position)

                for decoded in read_requests(path, advance):
                    received += len(decoded.spans)
                    rejected += decoded.rejected
                    buffer.add(decoded.spans)
                buffer.flush_all()
                done_files += 1
        except TraceFileError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"cannot read: {one_line(exc)}"
        finally:
            buffer.flush_all()  # whatever was read before a bad line is kept
    stored = _load_into_store(location) if written else ""
    totals = buffer.totals
    summary = (
        f"Imported {received} spans from {done_files} of {len(paths)} files: {totals.tasks} tasks, "
        f"{totals.steps} steps, {totals.model_calls} model calls; skipped {totals.skipped} spans "
        f"(duplicate or aggregate model-call spans, spans inside a call) and rejected {rejected} invalid spans{stored}"
    )
    click.echo(summary, err=error is not None)
    if error is not None:
        raise CliError(error)


def _load_into_store(location: object) -> str:
    """Ingest the spool now; if the store is busy, the rows wait in the spool for the next reader."""
    from agentprof._config import StoreLocation
    from agentprof.exceptions import AgentprofError
    from agentprof.store import open_store

    assert isinstance(location, StoreLocation)
    try:
        with open_store(location, create=True):
            return f"; stored in {location.display}"
    except AgentprofError as exc:
        return f"; spooled for {location.display}, loaded by the next command ({one_line(exc)})"
