"""``agentprof serve``: an OTLP/HTTP receiver that records any OpenTelemetry-instrumented agent."""

from __future__ import annotations

import ipaddress
import signal
import threading
from types import FrameType

import click

from agentprof.cli._errors import CliError, one_line
from agentprof.cli._options import db_option


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=4318, show_default=True, help="Port (0: any free).")
@click.option(
    "--token",
    envvar="AGENTPROF_SERVE_TOKEN",
    metavar="TOKEN",
    help="Require 'Authorization: Bearer TOKEN' (or set AGENTPROF_SERVE_TOKEN, which keeps it out of `ps`).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    metavar="N",
    help="Processes that decode and map spans, each for a share of the traces "
    "(default: one per CPU, at most 4; 0: all in this process).",
)
@click.option(
    "--ingest-every",
    type=click.FloatRange(min=0),
    default=60,
    show_default=True,
    metavar="SECONDS",
    help="Load what was received into the store this often, in a child process (0: never; "
    "reports and doctor then load it).",
)
@db_option
def serve(host: str, port: int, token: str | None, workers: int | None, ingest_every: float, db: str | None) -> None:
    """Receive OTLP/HTTP traces from any instrumented agent into the store.

    Listens for POST /v1/traces (protobuf or JSON, gzip too); point OTEL_EXPORTER_OTLP_ENDPOINT
    at it.
    """
    from agentprof._config import resolve_store_location
    from agentprof.cli._spool_loader import SpoolLoader
    from agentprof.ingest._intake import tune_gc_for_serving
    from agentprof.ingest._receiver import TRACES_PATH, OtlpReceiver
    from agentprof.ingest._workers import default_workers

    location = resolve_store_location(db)
    if workers is None:
        workers = default_workers()
    try:
        receiver = OtlpReceiver(location.spool_dir, host=host, port=port, token=token or None, workers=workers)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {one_line(exc)}") from None
    if not _is_loopback(host) and not token:
        click.secho(
            f"Warning: listening on {host} without --token: anyone who can reach it can write to the store.",
            fg="yellow",
            err=True,
        )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        receiver.start()
    except OSError as exc:
        raise CliError(f"cannot start the receiver's worker processes: {one_line(exc)} (try --workers 0)") from None
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    tune_gc_for_serving()
    loader = SpoolLoader(db, location.spool_dir, ingest_every, warn=_warn) if ingest_every else None
    if loader is not None:
        loader.start()
    click.echo(
        f"agentprof serve: receiving OTLP/HTTP traces on {receiver.url}{TRACES_PATH} into {location.display} "
        "(Ctrl-C to stop)",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if loader is not None:
            loader.stop()
        receiver.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = receiver.stats
    totals = receiver.totals
    click.echo(
        f"agentprof serve: stopped; {stats.spans_accepted} spans received ({stats.spans_rejected} rejected, "
        f"{stats.spans_duplicate} duplicates); {totals.tasks} tasks, {totals.steps} steps, "
        f"{totals.model_calls} model calls spooled ({totals.skipped} spans skipped)"
        + _cut_off(receiver.client_disconnects)
        + (loader.stats.summary() if loader is not None else ""),
        err=True,
    )
    if stats.write_failures:
        raise CliError(f"{stats.write_failures} batches could not be written to {location.spool_dir}")


def _warn(message: str) -> None:
    click.secho(f"agentprof serve: warning: {message}", fg="yellow", err=True)


def _cut_off(requests: int) -> str:
    """How many requests their client abandoned mid-way (each is sent again by a well-behaved exporter)."""
    return f"; {requests} request(s) cut off by the client" if requests else ""
