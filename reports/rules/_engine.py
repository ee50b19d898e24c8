"""Load the selection once, run the rules in a fixed order on one ledger, rank the findings.

Why a fixed order: rules overlap (an exact duplicate also missed prompt caching; a retried call is
also a duplicate), and each one claims its savings per call from a shared
:class:`~._base.ResidualLedger`. Running them in :data:`RULE_ORDER` makes the claims, and so the
totals, the same on every run: the most certain, cheapest-to-apply fixes claim first, the
speculative ones (``cheaper_model``) get what is left.

Loading is the only part that touches the database: two SQLAlchemy Core selects (model calls,
tool steps), only the columns :class:`~._base.CallRecord` needs, built positionally. 100,000 calls
load in a fraction of a second (``benchmarks/rules.py``).
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agentprof.analytics import Filters
from agentprof.analytics._sql import call_conditions, model_name, priced_cost
from agentprof.exceptions import ConfigError
from agentprof.store.schema import model_calls, spans

from ._base import CallRecord, Finding, ResidualLedger, Rule, RuleContext, ToolRecord, Workload
from ._config import RulesConfig

#: The order rules run (and claim savings) in; see the module docstring for why it is fixed.
RULE_ORDER: tuple[str, ...] = (
    "retry_storm",
    "exact_cache",
    "redundant_tool",
    "prompt_cache",
    "wasted_cache_write",
    "context_growth",
    "long_context_tier",
    "cheaper_model",
)


def _tokens(column: sa.Column[Any]) -> ColumnElement[int]:
    return sa.func.coalesce(column, 0)


# In CallRecord's field order: records are built positionally from these rows.
_CALL_COLUMNS: tuple[ColumnElement[Any], ...] = (
    model_calls.c.span_id,
    model_calls.c.trace_id,
    model_calls.c.parent_span_id,
    model_calls.c.task_id,
    model_calls.c.task_name,
    model_calls.c.step_name,
    model_calls.c.step_kind,
    model_calls.c.provider,
    model_name(),
    model_calls.c.request_model,
    model_calls.c.start_time_ns,
    model_calls.c.end_time_ns,
    model_calls.c.status,
    model_calls.c.error_type,
    model_calls.c.usage_known,
    _tokens(model_calls.c.input_tokens),
    _tokens(model_calls.c.output_tokens),
    _tokens(model_calls.c.cache_read_tokens),
    _tokens(model_calls.c.cache_write_tokens),
    model_calls.c.cache_write_5m_tokens,
    model_calls.c.cache_write_1h_tokens,
    _tokens(model_calls.c.reasoning_tokens),
    priced_cost(),
    model_calls.c.request_fingerprint,
    model_calls.c.prefix_fingerprints,
    model_calls.c.cache_breakpoints,
    model_calls.c.tool_count,
    model_calls.c.response_format,
    model_calls.c.tool_choice,
    model_calls.c.output_hash,
    model_calls.c.output_chars,
    model_calls.c.temperature,
    model_calls.c.attempts,
    model_calls.c.finish_reasons,
    model_calls.c.server_address,
    model_calls.c.operation,
)

_TOOL_COLUMNS: tuple[ColumnElement[Any], ...] = (
    spans.c.span_id,
    spans.c.parent_span_id,
    spans.c.task_id,
    spans.c.task_name,
    spans.c.step_name,
    spans.c.start_time_ns,
    spans.c.end_time_ns,
    spans.c.status,
    spans.c.tool_args_hash,
    spans.c.tool_result_hash,
)


def _tool_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """The selection on ``spans``: the same meaning as :func:`agentprof.analytics._sql.call_conditions`."""
    conditions: list[ColumnElement[bool]] = [spans.c.kind == "step", spans.c.step_kind == "tool"]
    since = filters.since_utc
    if since is not None:
        conditions.append(spans.c.start_time >= since)
    if filters.task is not None:
        conditions.append(spans.c.task_name == filters.task)
    return conditions


def load_workload(conn: Connection, filters: Filters) -> Workload:
    """Read the selection's model calls and tool steps, ordered by (start time, span id).

    Costs arrive as exact ``Decimal`` (``None`` for unpriced calls, never $0); token counts the
    provider did not report are 0 (``usage_known`` says whether they are real).
    """
    calls_query = (
        sa.select(*_CALL_COLUMNS)
        .where(*call_conditions(filters))
        .order_by(model_calls.c.start_time_ns, model_calls.c.span_id)
    )
    tools_query = (
        sa.select(*_TOOL_COLUMNS).where(*_tool_conditions(filters)).order_by(spans.c.start_time_ns, spans.c.span_id)
    )
    with _no_cyclic_gc():
        calls = list(map(CallRecord._make, _driver_rows(conn, calls_query)))
        tools = list(map(ToolRecord._make, _driver_rows(conn, tools_query)))
    return Workload(calls=calls, tools=tools)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while records are built and rules run.

    Both only allocate (records, dictionaries, no reference cycles that need collecting), and with
    100,000+ live records every automatic collection of the oldest generation walks all of them:
    pausing it makes loading and the rules a third to a half faster.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _driver_rows(conn: Connection, query: sa.Select[Any]) -> list[Any]:
    """The driver's own row tuples, skipping SQLAlchemy's per-row ``Row`` objects and processors.

    That halves the load time of 100,000 calls, and it is safe for these columns: both DuckDB and
    psycopg return ``NUMERIC`` as an exact ``Decimal`` and integers, strings and booleans as such
    (SQLAlchemy's ``Numeric`` processor is what would have passed money through a float).
    """
    with conn.execute(query) as result:
        return list(result.cursor.fetchall())


def load_rule(kind: str) -> Rule:
    """Import ``reports/rules/<kind>.py`` and return its ``RULE``.

    Raises:
        ValueError: ``kind`` is not one of :data:`RULE_ORDER`.
    """
    if kind not in RULE_ORDER:
        raise ValueError(f"unknown rule {kind!r} (known: {', '.join(RULE_ORDER)})")
    module = importlib.import_module(f"{__package__}.{kind}")
    return cast(Rule, module.RULE)


def selected_kinds(config: RulesConfig, rules: Sequence[str] | None = None) -> list[str]:
    """The rules to run, in :data:`RULE_ORDER`: ``rules`` (default all) that ``config.enabled`` allows.

    Raises:
        ValueError: A name in ``rules`` is not a rule.
        ConfigError: A name in ``[tool.agentprof.rules] enabled`` is not a rule.
    """
    known = ", ".join(RULE_ORDER)
    for name in rules or ():
        if name not in RULE_ORDER:
            raise ValueError(f"unknown rule {name!r} (known: {known})")
    for name in config.enabled or ():
        if name not in RULE_ORDER:
            raise ConfigError(f"[tool.agentprof.rules] enabled: unknown rule {name!r} (known: {known})")
    wanted = set(RULE_ORDER if rules is None else rules)
    if config.enabled is not None:
        wanted &= set(config.enabled)
    return [kind for kind in RULE_ORDER if kind in wanted]


def run_workload(
    workload: Workload, config: RulesConfig | None = None, *, rules: Sequence[str] | None = None
) -> list[Finding]:
    """Run the selected rules on an already loaded workload (see :func:`run_rules`)."""
    config = config or RulesConfig()
    context = RuleContext(workload=workload, config=config, ledger=ResidualLedger(workload.calls))
    findings: list[Finding] = []
    with _no_cyclic_gc():
        for kind in selected_kinds(config, rules):
            findings.extend(load_rule(kind).run(context))
    return sorted(findings, key=lambda finding: finding.rank_key)


def run_rules(
    conn: Connection, filters: Filters, config: RulesConfig | None = None, *, rules: Sequence[str] | None = None
) -> list[Finding]:
    """Load the selection and return every rule's findings, most valuable first.

    Args:
        conn: An open connection to the store.
        filters: The selection (``since``, ``task``) as in the rest of the report.
        config: Thresholds; default :class:`RulesConfig` defaults (the CLI passes ``RulesConfig.load()``).
        rules: Only these rule kinds (still run in :data:`RULE_ORDER`); default all.

    Returns:
        Findings sorted by :attr:`Finding.rank_key` (savings x confidence weight, then names): the
        same records always give the same list.
    """
    return run_workload(load_workload(conn, filters), config, rules=rules)
