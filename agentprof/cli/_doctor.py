"""``agentprof doctor``: check configuration, store, spool and recording health in one go.

Every problem agentprof swallows to keep an agent running (dropped spans, a full disk, an
internal error, an invalid price table) is counted somewhere; this command is where a user
sees them. Each check prints one line; the exit code is 1 when any check found a problem.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import click

_STALE_TEMP_SECONDS = 3600
_PER_CALL_NAMES = (
    "{names:,} {kind} names for {calls:,} model calls: a {kind} name that carries an id gives every call a "
    "row of its own, and the recommendations cannot compare calls; name {kind}s by what they do (plan, classify)"
)


@dataclass(frozen=True, slots=True)
class Check:
    """Outcome of one check: ``ok`` is False for problems, ``None`` for information."""

    name: str
    ok: bool | None
    detail: str


def _version(package: str) -> str | None:
    import importlib.metadata  # ~20 ms: paid by `agentprof doctor`, not by every command's start

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _health_totals(spool_dir: Path) -> tuple[dict[str, int], int]:
    totals: dict[str, int] = {}
    files = 0
    for path in spool_dir.glob("health-*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        files += 1
        for key, value in data.items():
            if isinstance(value, int) and key not in {"pid", "updated_ns"}:
                totals[key] = totals.get(key, 0) + value
    return totals, files


def run_checks(db: str | None) -> list[Check]:
    """Run every check against the store ``db`` resolves to."""
    from agentprof._config import load_project_config, resolve_store_location
    from agentprof.exceptions import AgentprofError

    checks: list[Check] = []
    location = resolve_store_location(db)
    checks.append(Check("store location", None, f"{location.display} ({location.url})"))
    try:
        _, config_file = load_project_config()
        checks.append(Check("project config", None, str(config_file) if config_file else "none (defaults)"))
        from agentprof.pricing import UserPrices

        UserPrices.load()
        checks.append(Check("user prices", True, "valid"))
    except AgentprofError as exc:
        checks.append(Check("project config", False, str(exc)))

    checks.append(Check("price data", None, f"genai-prices {_version('genai-prices') or 'missing'}"))
    sdks = ", ".join(f"{name} {_version(name) or 'not installed'}" for name in ("openai", "anthropic"))
    checks.append(Check("provider SDKs", None, sdks))
    if os.environ.get("AGENTPROF_OTLP", "").strip().lower() in {"1", "true", "yes", "on"}:
        endpoint = (
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4318 (default)"
        )
        checks.append(Check("OTLP export config", None, f"on (AGENTPROF_OTLP): {endpoint}"))

    spool = location.spool_dir
    segments = list(spool.glob("seg-*.jsonl")) if spool.is_dir() else []
    bad = list((spool / "bad").glob("*")) if (spool / "bad").is_dir() else []
    now = time.time()
    stale = [p for p in spool.glob(".tmp-*") if now - p.stat().st_mtime > _STALE_TEMP_SECONDS] if spool.is_dir() else []
    checks.append(Check("spool", None, f"{spool}: {len(segments)} segment(s) waiting to be ingested"))
    if bad:
        checks.append(Check("bad segments", False, f"{len(bad)} unreadable segment(s) set aside in {spool / 'bad'}"))
    if stale:
        checks.append(Check("stale temp files", False, f"{len(stale)} half-written segment(s) from crashed processes"))

    totals, processes = _health_totals(spool) if spool.is_dir() else ({}, 0)
    lost = totals.get("spans_lost", 0) + totals.get("spans_dropped_queue_full", 0)
    errors = totals.get("internal_errors", 0)
    written = totals.get("spans_written", 0)
    summary = f"{processes} process(es) reported: {written} spans written, {lost} lost, {errors} internal errors"
    checks.append(Check("recording health", (lost == 0 and errors == 0) if processes else None, summary))
    delivered, failed = totals.get("otlp_spans_exported", 0), totals.get("otlp_spans_failed", 0)
    abandoned = totals.get("otlp_final_flush_abandoned", 0)
    dropped = totals.get("otlp_spans_dropped", 0)
    if delivered or failed or abandoned or dropped:
        detail = f"{delivered} spans delivered to the OTLP collector, {failed} refused or undeliverable"
        if dropped:
            detail += f", {dropped} dropped (export queue full)"
        if abandoned:
            detail += f"; {abandoned} process(es) exited before the collector answered"
        checks.append(Check("OTLP export", failed == 0 and abandoned == 0 and dropped == 0, detail))
    if totals.get("payloads_dropped"):
        from agentprof._calls import MAX_PENDING_BODY_BYTES

        checks.append(
            Check(
                "request bodies",
                False,
                f"{totals['payloads_dropped']} call(s) recorded without request fingerprints: the exporter fell "
                f"behind and their bodies passed the {MAX_PENDING_BODY_BYTES // 2**20} MiB held for it "
                "(cache rules cannot see them)",
            )
        )
    if totals.get("spool_write_failures"):
        checks.append(
            Check("spool writes", False, f"{totals['spool_write_failures']} batch(es) could not be written (disk?)")
        )

    try:
        from sqlalchemy import func, select

        from agentprof.store import open_store
        from agentprof.store.schema import model_calls, tasks

        with open_store(location) as store, store.engine.connect() as conn:
            calls = conn.execute(select(func.count()).select_from(model_calls)).scalar_one()
            unpriced = conn.execute(
                select(func.count()).select_from(model_calls).where(model_calls.c.priced.is_(False))
            ).scalar_one()
            task_count = conn.execute(select(func.count()).select_from(tasks)).scalar_one()
            reasons: list[tuple[object, int]] = []
            if unpriced:
                reasons = [
                    tuple(row)
                    for row in conn.execute(
                        select(model_calls.c.unpriced_reason, func.count())
                        .where(model_calls.c.priced.is_(False))
                        .group_by(model_calls.c.unpriced_reason)
                        .order_by(func.count().desc())
                        .limit(5)
                    )
                ]
            names = conn.execute(
                select(func.count(model_calls.c.task_name.distinct()), func.count(model_calls.c.step_name.distinct()))
            ).one()
        checks.append(Check("store", True, f"{task_count} tasks, {calls} model calls"))
        from agentprof.reports._cut import per_call_names  # type: ignore[import-not-found]

        for kind, distinct in zip(("task", "step"), names, strict=True):
            if per_call_names(distinct, calls):
                detail = _PER_CALL_NAMES.format(kind=kind, names=distinct, calls=calls)
                checks.append(Check(f"{kind} names", False, detail))
        for reason, count in reasons:
            unknown_model = bool(reason) and str(reason).startswith("unknown model")
            hint = "add a [tool.agentprof.prices] entry for it" if unknown_model else "its cost is unknown, not $0"
            checks.append(Check("unpriced calls", False if unknown_model else None, f"{count} x {reason}: {hint}"))
    except AgentprofError as exc:
        checks.append(Check("store", False, str(exc)))
    return checks


@click.command()
@click.option("--db", envvar="AGENTPROF_DB", help="Store: directory, .duckdb file or SQLAlchemy URL.")
def doctor(db: str | None) -> None:
    """Check configuration, store, spool and recording health."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    checks = run_checks(db)
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a long path or URL folds instead of ending in an ellipsis
    for check in checks:
        mark = {True: Text("ok", "green"), False: Text("problem", "bold red"), None: Text("info", "dim")}[check.ok]
        table.add_row(mark, Text(check.name, "bold"), Text(check.detail))
    console.print(table)
    if any(check.ok is False for check in checks):
        raise SystemExit(1)
